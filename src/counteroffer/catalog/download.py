"""Fetch the catalogue datasets from their pinned upstream commits, verified by sha256.

Users outside this checkout have no ``../shared/data``; ``counteroffer data download`` fills the user cache
from the upstream GitHub repositories instead. Every file is pinned by commit *and* checksum
(``checksums.json`` beside this module), so a moved branch, a bad mirror or a truncated transfer is caught
before a file lands where the loaders read it: a file reaches its final path only through ``os.replace`` of a
fully written, verified temporary file in the same folder.

Provenance of ``checksums.json`` (no network here except package registries, so nothing was fetched):

* The sha256 and size of every file are those of the project's shared copies (``../shared/data``), taken
  as the expected values.
* CraigslistBargain (GeneralCoder365/agreemate): the stored public index holds
  ``data/craigslist_bargains/README.md`` and ``reformatter.py`` (at commit ead08fa, not the pinned 72365ba),
  but not the ``raw/*.json`` files themselves. ``reformatter.py`` reads ``raw/{split}.json`` with
  ``json.loads(line) for line in f``, so the upstream ``.json`` files are JSON lines, the same form as the
  local ``.jsonl`` copies, and the README's split sizes (test 838, validation 597) equal the local line
  counts. Byte identity with upstream is NOT verified.
* AmazonHistoryPrice (TianXiaSJTU/AmazonPriceHistory): the index holds the repository at the pinned commit,
  but only its README (which says the dataset is in ``data/AmazonHistoryPrice``), plots and a notebook; the
  18 ``<category>.json`` files are not stored, so neither their names nor their bytes could be compared.
  The local copies are pretty-printed JSON arrays (2-space indent, no final newline).

If upstream bytes differ from the shared copies (line endings, a final newline, renamed files), the first real
download fails with a ``DataDownloadError`` that shows both digests; nothing wrong is saved.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Literal

import httpx

from counteroffer.catalog.locate import DATA_ENV_VAR, user_cache_dir
from counteroffer.errors import ConfigError, CounterofferError

DEFAULT_BASE_URL = "https://raw.githubusercontent.com"
BASE_URL_ENV_VAR = "COUNTEROFFER_DATA_URL"
DATASETS: tuple[str, ...] = ("amazon", "craigslist")
_CHUNK = 1 << 16

log = logging.getLogger(__name__)

ProgressEvent = Literal["skipped", "downloading", "downloaded"]
ProgressCallback = Callable[["DataFile", ProgressEvent], None]


@dataclass(frozen=True)
class DataFile:
    """One pinned file: where it lives upstream (relative to a base URL) and where it is saved."""

    dataset: str
    url_path: str  # "<owner>/<repo>/<commit>/<path in repo>", the raw.githubusercontent.com layout
    local_path: str  # relative to the data root, e.g. "craigslist_bargain/test.jsonl"
    sha256: str
    size: int

    def url(self, base_url: str) -> str:
        return f"{base_url.rstrip('/')}/{self.url_path}"


@dataclass
class DownloadReport:
    """What ``download_data`` did, so the CLI can summarise it."""

    dest: Path
    downloaded: list[DataFile] = field(default_factory=list)
    skipped: list[DataFile] = field(default_factory=list)


class DataDownloadError(CounterofferError, RuntimeError):
    """A file could not be fetched or failed its checksum; the message says which, from where, what next."""

    def __init__(self, message: str, *, file: DataFile, url: str) -> None:
        super().__init__(message)
        self.file = file
        self.url = url


def load_manifest(datasets: Iterable[str] = DATASETS) -> list[DataFile]:
    """The pinned files of ``datasets``, in manifest order."""
    wanted = list(datasets)
    if unknown := sorted(set(wanted) - set(DATASETS)):
        raise ConfigError(f"unknown dataset(s) {', '.join(unknown)}; known: {', '.join(DATASETS)}")
    manifest = json.loads(resources.files("counteroffer.catalog").joinpath("checksums.json").read_text("utf-8"))
    files: list[DataFile] = []
    for name, spec in manifest["datasets"].items():
        if name not in wanted:
            continue
        prefix = f"{spec['repo']}/{spec['commit']}"
        files.extend(
            DataFile(
                dataset=name,
                url_path=f"{prefix}/{entry['upstream_path']}",
                local_path=entry["local_path"],
                sha256=entry["sha256"],
                size=entry["size"],
            )
            for entry in spec["files"]
        )
    return files


def resolve_base_url(explicit: str | None = None) -> str:
    """``--base-url`` if given, else ``$COUNTEROFFER_DATA_URL``, else GitHub's raw host."""
    return explicit or os.environ.get(BASE_URL_ENV_VAR) or DEFAULT_BASE_URL


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _problem(root: Path, data_file: DataFile) -> str | None:
    """Why the saved copy of ``data_file`` under ``root`` is unusable, or None when it is verified."""
    path = root / data_file.local_path
    if not path.is_file():
        return f"{data_file.local_path}: missing"
    size = path.stat().st_size
    if size != data_file.size:
        return f"{data_file.local_path}: size {size} bytes, expected {data_file.size}"
    actual = sha256_of(path)
    if actual != data_file.sha256:
        return f"{data_file.local_path}: sha256 {actual}, expected {data_file.sha256}"
    return None


def verify_data(root: Path, datasets: Sequence[str] = DATASETS) -> list[str]:
    """One line per missing or altered file under ``root``; an empty list means the data is as pinned."""
    return [problem for f in load_manifest(datasets) if (problem := _problem(root, f)) is not None]


def download_data(
    dest: Path | None = None,
    *,
    base_url: str = DEFAULT_BASE_URL,
    datasets: Sequence[str] = DATASETS,
    force: bool = False,
    timeout: float = 60.0,
    retries: int = 3,
    backoff: float = 1.0,
    progress: ProgressCallback | None = None,
) -> DownloadReport:
    """Fetch the pinned files of ``datasets`` into ``dest`` (default: the user cache).

    Files already saved with the right checksum are skipped unless ``force``, so an interrupted run resumes.
    Connection errors and 5xx answers are retried ``retries`` times, waiting ``backoff * 2**attempt``
    seconds; any other failure stops at once with a ``DataDownloadError``, leaving verified files in place.
    """
    root = dest if dest is not None else user_cache_dir()
    report = DownloadReport(dest=root)
    notify = progress or (lambda _file, _event: None)
    with httpx.Client(timeout=timeout, follow_redirects=True) as client:
        for data_file in load_manifest(datasets):
            if not force and _problem(root, data_file) is None:
                report.skipped.append(data_file)
                notify(data_file, "skipped")
                continue
            notify(data_file, "downloading")
            _fetch_with_retries(client, data_file, root, base_url, retries=retries, backoff=backoff)
            report.downloaded.append(data_file)
            notify(data_file, "downloaded")
    return report


class _Transient(Exception):
    """A failure worth retrying: the connection broke or the server answered 5xx."""


def _fetch_with_retries(
    client: httpx.Client, data_file: DataFile, root: Path, base_url: str, *, retries: int, backoff: float
) -> None:
    url = data_file.url(base_url)
    for attempt in range(retries + 1):
        try:
            _fetch(client, data_file, base_url, root)
            return
        except _Transient as exc:
            if attempt == retries:
                raise DataDownloadError(
                    f"could not download {data_file.local_path} after {retries + 1} attempt(s): {exc}\n"
                    f"  url: {url}\n"
                    f"{_advice(root, base_url)}",
                    file=data_file,
                    url=url,
                ) from exc
            delay = backoff * 2**attempt
            log.warning("%s: %s; retrying in %.1f s", url, exc, delay)
            time.sleep(delay)


def _fetch(client: httpx.Client, data_file: DataFile, base_url: str, root: Path) -> None:
    """Stream the file into a temporary file beside the target, verify it, then move it into place."""
    url = data_file.url(base_url)
    final = root / data_file.local_path
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=final.parent, prefix=f".{final.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as handle:
            try:
                with client.stream("GET", url) as response:
                    if response.status_code >= 500:
                        raise _Transient(f"HTTP {response.status_code} {response.reason_phrase}")
                    if response.status_code != 200:
                        raise DataDownloadError(
                            f"could not download {data_file.local_path}: "
                            f"HTTP {response.status_code} {response.reason_phrase}\n"
                            f"  url: {url}\n"
                            f"{_advice(root, base_url)}",
                            file=data_file,
                            url=url,
                        )
                    for chunk in response.iter_bytes(_CHUNK):
                        digest.update(chunk)
                        handle.write(chunk)
            except httpx.TransportError as exc:
                raise _Transient(f"{type(exc).__name__}: {exc}") from exc
            handle.flush()
            os.fsync(handle.fileno())
        size = tmp.stat().st_size
        if digest.hexdigest() != data_file.sha256:
            raise DataDownloadError(
                f"checksum mismatch for {data_file.local_path}; the download was discarded\n"
                f"  url: {url}\n"
                f"  expected sha256 {data_file.sha256} ({data_file.size} bytes)\n"
                f"  actual   sha256 {digest.hexdigest()} ({size} bytes)\n"
                "The server did not return the pinned file. If you use a mirror, make sure it serves the "
                "pinned commit unchanged; otherwise the upstream file has changed: please report it.\n"
                f"{_advice(root, base_url)}",
                file=data_file,
                url=url,
            )
        tmp.chmod(0o644)  # mkstemp makes it owner-only; the data is public
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _advice(root: Path, base_url: str) -> str:
    return (
        f"Files already verified in {root} were kept; rerun `counteroffer data download` to resume. "
        f"To use another source, pass --base-url or set ${BASE_URL_ENV_VAR} (now {base_url}); "
        f"to use an existing copy, set ${DATA_ENV_VAR} or pass --data PATH."
    )
