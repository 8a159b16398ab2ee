"""The project's own errors: what the command line reports as one line, and what stays a bug."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, Field

from counteroffer.agents.base import AgentFailure, AgentSpecError
from counteroffer.catalog.download import DataDownloadError
from counteroffer.catalog.loaders import CatalogError
from counteroffer.catalog.locate import DataNotFoundError
from counteroffer.config_file import ConfigError as ConfigFileConfigError
from counteroffer.config_file import validate_settings
from counteroffer.errors import ConfigError, CounterofferError, InputError, InputNotFoundError
from counteroffer.game import GameOver
from counteroffer.models.bundled import BundledModelError
from counteroffer.models.endpoint import MalformedResponse
from counteroffer.rollout.store import EpisodeStoreError
from counteroffer.serve.guard import ExposureError
from counteroffer.serve.vllm import VLLMServerError
from counteroffer.train import ConfigError as TrainConfigError
from counteroffer.train.tokens import TemplateDriftError
from counteroffer.web.play import GameStateError


@pytest.mark.parametrize(
    ("error", "builtin"),
    [
        (ConfigError, ValueError),
        (InputError, ValueError),
        (InputNotFoundError, FileNotFoundError),
        (AgentSpecError, ValueError),
        (CatalogError, ValueError),
        (DataNotFoundError, FileNotFoundError),
        (DataDownloadError, RuntimeError),
        (EpisodeStoreError, RuntimeError),
        (ExposureError, ValueError),
        (GameStateError, ValueError),
        (BundledModelError, RuntimeError),
        (VLLMServerError, RuntimeError),
        (TemplateDriftError, RuntimeError),
    ],
)
def test_the_projects_errors_share_one_base_and_keep_their_builtin_one(error: type, builtin: type) -> None:
    assert issubclass(error, CounterofferError)
    assert issubclass(error, builtin)  # ``except ValueError`` (or FileNotFoundError, RuntimeError) still catches it


def test_config_error_is_one_class_wherever_it_is_imported_from() -> None:
    assert ConfigFileConfigError is TrainConfigError is ConfigError
    assert issubclass(AgentSpecError, ConfigError) and issubclass(ExposureError, ConfigError)


@pytest.mark.parametrize("internal", [AgentFailure, GameOver, MalformedResponse, ValueError, RuntimeError])
def test_internal_exceptions_are_not_user_errors(internal: type) -> None:
    """An agent's failure is recorded per episode, a move into a finished game is a bug, a malformed endpoint answer
    is asked again: none of them is a message for the user, so the command line shows their traceback."""
    assert not issubclass(internal, CounterofferError)


class Settings(BaseModel):
    turns: int = Field(1, ge=1)
    name: str


def test_a_validation_error_in_the_users_settings_is_a_config_error() -> None:
    assert validate_settings(Settings, {"name": "x", "turns": 2}) == Settings(name="x", turns=2)
    with pytest.raises(ConfigError) as error:
        validate_settings(Settings, {"turns": 0}, "--options: ")
    assert str(error.value) == ("--options: turns: Input should be greater than or equal to 1; name: Field required")
