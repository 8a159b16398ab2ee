"""YAML config files validated by a pydantic model: one reader for training recipes and evaluation suites, with
errors that name the file and the dotted field."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

ModelT = TypeVar("ModelT", bound=BaseModel)


class ConfigError(ValueError):
    """A config file that cannot be read or does not validate; the message names the file and the fields."""


def validation_problems(error: ValidationError) -> str:
    """A pydantic error as one line: ``field.sub: message; other: message``."""
    return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())


def load_yaml_model(path: Path, model: type[ModelT], overrides: dict[str, object] | None = None) -> ModelT:
    """Read ``path`` as YAML and validate it as ``model``; ``overrides`` are dotted keys (``grpo.steps``) set on
    top of the file."""
    try:
        raw = yaml.safe_load(Path(path).read_text()) or {}
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of settings")
    for dotted, value in (overrides or {}).items():
        node = raw
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {validation_problems(exc)}") from None


def parse_overrides(items: list[str] | None) -> dict[str, object]:
    """``--set a.b=value`` options as dotted keys with YAML values (for :func:`load_yaml_model`)."""
    values = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set {item!r}: write it as FIELD=VALUE, e.g. grpo.steps=2")
        values[key.strip()] = yaml.safe_load(value)
    return values
