"""Where the catalogue files live.

Resolution order: an explicit path, else ``$COUNTEROFFER_DATA``, else a ``shared/data`` folder beside the
working directory or the source checkout (how tests and CI find ``../shared/data``), else the user cache
(``$XDG_CACHE_HOME/counteroffer/data``, filled by ``counteroffer data download``).
"""

from __future__ import annotations

import os
from pathlib import Path

from counteroffer.errors import InputNotFoundError

DATA_ENV_VAR = "COUNTEROFFER_DATA"
AMAZON_DIR = "amazon_history_price"
CRAIGSLIST_DIR = "craigslist_bargain"


class DataNotFoundError(InputNotFoundError):
    """No catalogue data where we looked; the message says where and how to get it."""


def user_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "counteroffer" / "data"


def _candidates() -> list[tuple[str, Path]]:
    found: list[tuple[str, Path]] = []
    checkout_root = Path(__file__).resolve().parents[3]  # src/counteroffer/catalog/locate.py -> checkout
    for base in (Path.cwd(), checkout_root):
        found.append(("shared data beside the project", base.parent / "shared" / "data"))
    found.append(("user cache", user_cache_dir()))
    return found


def resolve_data_root(explicit: str | Path | None = None) -> Path:
    """The folder holding ``amazon_history_price/`` and ``craigslist_bargain/``."""
    if explicit is not None:
        path = Path(explicit).expanduser()
        if not path.is_dir():
            raise DataNotFoundError(f"data folder {path} does not exist")
        return path
    if env := os.environ.get(DATA_ENV_VAR):
        # Set on purpose, so a wrong value is an error, not a silent fall-back to other data.
        path = Path(env).expanduser()
        if not path.is_dir():
            raise DataNotFoundError(f"${DATA_ENV_VAR} is {path}, which does not exist; fix or unset it")
        return path
    tried = []
    for label, path in _candidates():
        if (path / AMAZON_DIR).is_dir() or (path / CRAIGSLIST_DIR).is_dir():
            return path
        tried.append(f"{label}: {path}")
    raise DataNotFoundError(
        "no catalogue data found; tried\n  "
        + "\n  ".join(tried)
        + f"\nRun `counteroffer data download`, set ${DATA_ENV_VAR}, or pass --data PATH."
    )
