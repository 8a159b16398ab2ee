"""The prompt settings: one model for an LLM agent spec, a training config's ``prompts`` section, the verifiers
environment and a trained checkpoint's agent defaults.

- ``templates_dir``: a folder of Jinja templates overriding the packaged ones by file name (``buyer.j2``,
  ``seller.j2``, ``opening.j2``, ``reply.j2``, ``personas/<name>.j2``); none = the packaged templates. The same
  key everywhere: ``hf:MODEL?templates_dir=DIR``, ``prompts: {templates_dir: DIR}`` in a training YAML,
  ``load_environment(templates_dir=DIR)``. Its old name in agent specs, the verifiers environment and checkpoint
  files, ``prompts``, is still read (with a :class:`DeprecationWarning`), so older specs and the
  ``counteroffer_agent.json`` of checkpoints trained before the rename load as they did.
- ``description_chars`` (600) and ``features_chars`` (400): caps on the product text; ``none`` (or ``full``, or
  null in YAML) for the full text.
- ``thousands_separator`` (true): false writes every dollar amount the role reads as ``$1299.50``.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

TEMPLATES_KEY = "templates_dir"
OLD_TEMPLATES_KEY = "prompts"  # the key's name in agent specs and checkpoint files before the settings were merged

# Written next to a checkpoint trained by ``counteroffer train``: the prompt settings and turn length it learned,
# which an ``hf:`` agent loading that folder uses as its defaults, so it is evaluated on the format it was trained on.
AGENT_DEFAULTS_FILE = "counteroffer_agent.json"


def rename_old_keys(params: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` with the old key ``prompts`` read as ``templates_dir`` (a ``None`` under either means unset)."""
    params = dict(params)
    if OLD_TEMPLATES_KEY not in params:
        return params
    old = params.pop(OLD_TEMPLATES_KEY)
    if old is None:
        return params
    warnings.warn(
        f"prompt settings: {OLD_TEMPLATES_KEY!r} is the old name of {TEMPLATES_KEY!r}; write {TEMPLATES_KEY}",
        DeprecationWarning,
        stacklevel=3,
    )
    if params.get(TEMPLATES_KEY) is not None:
        raise ValueError(f"give {TEMPLATES_KEY} only ({OLD_TEMPLATES_KEY} is its old name)")
    params[TEMPLATES_KEY] = old
    return params


def _query_value(value: object) -> object:
    """A parameter as an agent spec's query writes it: ``none``, ``true``/``false``, or the value."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    return value


class PromptSettings(BaseModel):
    """How a role's prompt is rendered (see the module docstring); every default is written here only."""

    model_config = ConfigDict(extra="forbid")

    templates_dir: Path | None = Field(
        None,
        description="folder of Jinja templates overriding the packaged ones by file name (buyer.j2, seller.j2, "
        "opening.j2, reply.j2, personas/NAME.j2); null = the packaged templates (old name: prompts)",
    )
    description_chars: int | None = Field(
        600, ge=0, description="cap on the product description; none (null) = the full text"
    )
    features_chars: int | None = Field(400, ge=0, description="cap on the feature list; none (null) = the full text")
    thousands_separator: bool = Field(
        True,
        description="false: every dollar amount the role reads, and its demonstrations, written without thousands "
        "separators ($1299.50, not $1,299.50), for a small model whose arithmetic on $1,299.50 loses the comma's "
        "place",
    )

    @model_validator(mode="before")
    @classmethod
    def _old_key(cls, data: object) -> object:
        return rename_old_keys(data) if isinstance(data, Mapping) else data

    @field_validator("description_chars", "features_chars", mode="before")
    @classmethod
    def _none_means_full(cls, value: object) -> object:
        return None if isinstance(value, str) and value.lower() in ("none", "full") else value

    def prompt_settings(self) -> PromptSettings:
        """Just the prompt settings (of a model that extends them: an agent spec's, the verifiers environment's)."""
        return PromptSettings.model_validate(self.model_dump(include=set(PromptSettings.model_fields)))

    def agent_params(self) -> dict[str, str | int | None]:
        """These settings as an LLM agent's parameters (``hf:`` spec query, a checkpoint's agent defaults);
        ``None`` = the packaged templates or the full text."""
        return {
            TEMPLATES_KEY: str(self.templates_dir.resolve()) if self.templates_dir is not None else None,
            "description_chars": self.description_chars,
            "features_chars": self.features_chars,
            "thousands_separator": self.thousands_separator,
        }

    def spec_query(self) -> str:
        """These settings as the query of an ``hf:`` or ``openai:`` agent spec (``none`` = the full text). The
        packaged templates and the default money style are left out, so the spec, which names the agent in episode
        records, reads as it did before those settings existed."""
        defaults = {TEMPLATES_KEY: None, "thousands_separator": True}
        params = {
            key: _query_value(value)
            for key, value in self.agent_params().items()
            if key not in defaults or value != defaults[key]
        }
        return urlencode(params, safe="/")


DEFAULT_PROMPTS = PromptSettings()


def agent_defaults(model: str) -> dict[str, str]:
    """The ``hf:`` parameters a trained checkpoint folder asks for (none for any other model)."""
    path = Path(model) / AGENT_DEFAULTS_FILE
    if not path.is_file():
        return {}
    defaults = rename_old_keys(json.loads(path.read_text()))
    if defaults.get(TEMPLATES_KEY) is None:
        defaults.pop(TEMPLATES_KEY, None)  # the packaged templates
    return {key: "none" if value is None else str(value) for key, value in defaults.items()}
