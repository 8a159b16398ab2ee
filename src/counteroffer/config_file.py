"""YAML config files validated by a pydantic model: one reader for training recipes and evaluation suites, with
errors that name the file and the dotted field."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from counteroffer.errors import ConfigError

__all__ = ["ConfigError", "load_yaml_model", "parse_overrides", "validate_settings", "validation_problems"]

ModelT = TypeVar("ModelT", bound=BaseModel)


def validation_problems(error: ValidationError) -> str:
    """A pydantic error as one line: ``field.sub: message; other: message``."""
    return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())


def validate_settings(model: type[ModelT], data: object, where: str = "") -> ModelT:
    """``model.model_validate(data)`` for settings the user gave (command-line options, keyword arguments): a
    validation error becomes a :class:`ConfigError` with the fields' problems, prefixed by ``where``."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{where}{validation_problems(exc)}") from None


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
    return validate_settings(model, raw, f"{path}: ")


def parse_overrides(items: list[str] | None) -> dict[str, object]:
    """``--set a.b=value`` options as dotted keys with YAML values (for :func:`load_yaml_model`)."""
    values = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: write it as FIELD=VALUE, e.g. grpo.steps=2")
        values[key.strip()] = yaml.safe_load(value)
    return values
