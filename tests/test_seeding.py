"""One seeding function: every seed derived from other values is ``derive_seed`` of them."""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

import pytest
from conftest import make_scenario

from counteroffer.agents.base import TurnRequest, turn_seed
from counteroffer.agents.scripted.phrases import pick
from counteroffer.game import Negotiation, Role
from counteroffer.rollout.mixture import draw
from counteroffer.rollout.runner import episode_seed
from counteroffer.seeding import derive_seed
from counteroffer.train.config import TrainConfig
from counteroffer.train.stage import training_scenarios


def blake2b_64(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def test_a_seed_is_a_stable_hash_of_its_parts() -> None:
    assert derive_seed(0, "B000", 0) == 7024432320773584910  # the same on every machine, process and session
    assert derive_seed(0, "B000", 0) == derive_seed("0", "B000", "0")  # parts are written with str
    assert derive_seed(0, "B000", 1) != derive_seed(0, "B000", 0) != derive_seed(1, "B000", 0)
    assert derive_seed("a", "b") != derive_seed("b", "a")  # the order of the parts matters
    assert derive_seed(5, "turn", 1) != derive_seed(5, "phrase", 1)  # a name keeps two uses independent


@pytest.mark.parametrize("bits", [1, 31, 63, 64])
def test_bits_bound_the_seed(bits: int) -> None:
    seeds = [derive_seed("bits", i, bits=bits) for i in range(200)]
    assert all(0 <= seed < 2**bits for seed in seeds)
    assert max(seeds) >= 2 ** (bits - 2)  # the top bits are used, not just the low ones
    assert derive_seed("x", bits=bits) == blake2b_64("x") >> (64 - bits)


@pytest.mark.parametrize("bits", [0, 65])
def test_bits_outside_1_to_64_are_refused(bits: int) -> None:
    with pytest.raises(ValueError, match="bits"):
        derive_seed("x", bits=bits)


def test_episode_seeds_and_seller_draws_keep_the_values_recorded_runs_have() -> None:
    """A resumed run compares each stored episode's seed with the one it would play: the formula must not move."""
    for base, scenario_id, rollout in [(0, "B000", 0), (7, "cl-1f2e", 3), (123456789, "amz-0a1b2c", 11)]:
        assert episode_seed(base, scenario_id, rollout) == blake2b_64(f"{base}|{scenario_id}|{rollout}") >> 1
    options = ["a", "b", "c"]
    for key in ("product-1", "grpo|3|B000"):
        assert draw(options, key, 0, "seller") == options[blake2b_64(f"0|seller|{key}") % 3]


def test_the_held_out_validation_products_do_not_move(shared_data: Path) -> None:
    config = TrainConfig.model_validate({"data_root": str(shared_data), "validation_products": 50, "seed": 3})
    training, validation = training_scenarios(config)
    everything = sorted([*training, *validation], key=lambda s: blake2b_64(f"3|validation|{s.scenario_id}"))
    assert {s.scenario_id for s in validation} == {s.scenario_id for s in everything[:50]}


def test_turn_seeds_differ_across_turns_and_episodes_and_replay() -> None:
    scenario = make_scenario()
    game = Negotiation(scenario)
    view = game.view(Role.BUYER)
    seeds = {turn_seed(TurnRequest(view, seed)) for seed in range(1000)}
    assert len(seeds) == 1000 and all(0 <= s < 2**31 for s in seeds)  # fits an endpoint's int32 seed
    assert turn_seed(TurnRequest(view, 42)) == turn_seed(TurnRequest(view, 42)) == derive_seed(42, "turn", 1, bits=31)


def test_scripted_phrases_vary_across_turns_as_well_as_episodes() -> None:
    """The old ``(seed * 2654435761 + turn * 40503) % n`` picked the same phrase at every turn of an episode when
    ``n`` was a multiple of 3 (40503 is); a hash of (seed, turn) varies with both."""
    options = ("one", "two", "three")
    varied = [len({pick(options, seed, turn) for turn in range(1, 7)}) > 1 for seed in range(100)]
    assert sum(varied) > 90
    counts = Counter(pick(options, seed, 1) for seed in range(3000))
    assert all(850 < counts[option] < 1150 for option in options)  # about uniform
    assert pick(options, 5, 2) == pick(options, 5, 2)  # and reproducible
