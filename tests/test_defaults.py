"""One place for the defaults that several entry points share (counteroffer.defaults)."""

from __future__ import annotations

import inspect

from counteroffer.agents.scripted import Persona
from counteroffer.cli import app as cli
from counteroffer.defaults import (
    BASELINE_MAX_TURNS,
    BASELINE_SELLERS,
    DEFAULT_BUYER,
    DEFAULT_MAX_TURNS,
    DEFAULT_PERSONA,
    DEFAULT_SELLER,
)
from counteroffer.evaluate.baselines import BaselineSearch
from counteroffer.evaluate.bench import BenchConfig
from counteroffer.game import GameConfig
from counteroffer.rollout.env import NegotiationEnv, make_env
from counteroffer.rollout.mixture import SellerChoice
from counteroffer.train.config import TrainConfig


def default(function: object, name: str) -> object:
    return inspect.signature(function).parameters[name].default  # type: ignore[arg-type]


def test_one_default_seller_everywhere() -> None:
    assert DEFAULT_SELLER == "scripted:linear"
    assert BenchConfig.model_fields["seller"].default == DEFAULT_SELLER
    assert default(cli.bench, "seller") == default(cli.play, "seller") == DEFAULT_SELLER
    assert default(make_env, "seller") == default(NegotiationEnv, "seller") == DEFAULT_SELLER
    config = TrainConfig()
    for section in (config.sft, config.grpo, config.evaluation):
        assert [(c.spec, c.persona) for c in section.sellers] == [(DEFAULT_SELLER, DEFAULT_PERSONA)]
    single = TrainConfig.model_validate({"grpo": {"persona": "begging"}})
    assert [(c.spec, c.persona) for c in single.grpo.sellers] == [(DEFAULT_SELLER, "begging")]


def test_one_default_persona_turn_limit_and_buyer() -> None:
    assert DEFAULT_PERSONA == Persona.NEUTRAL
    assert SellerChoice(spec=DEFAULT_SELLER).persona == BenchConfig.model_fields["persona"].default == DEFAULT_PERSONA
    assert default(cli.bench, "persona") == default(make_env, "persona") == DEFAULT_PERSONA
    assert GameConfig().max_turns == BenchConfig.model_fields["max_turns"].default == DEFAULT_MAX_TURNS
    assert default(cli.bench, "max_turns") == default(cli.play, "max_turns") == default(make_env, "max_turns")
    assert default(cli.play, "buyer") == DEFAULT_BUYER
    assert default(cli.baselines, "max_turns") == BaselineSearch.model_fields["max_turns"].default == BASELINE_MAX_TURNS
    assert BASELINE_SELLERS[0] == DEFAULT_SELLER
