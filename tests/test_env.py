"""The Gymnasium-style buyer environment with a regulated seller inside."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import make_scenario, message

from counteroffer.agents import TurnRequest, make_agent
from counteroffer.catalog import load_scenarios
from counteroffer.game import Outcome, Role, buyer_reward
from counteroffer.rollout.env import NegotiationEnv


def test_an_episode_step_by_step_matches_the_reward_formula(shared_data: Path) -> None:
    scenarios = load_scenarios("amazon", "test", data_root=shared_data, limit=5).scenarios
    env = NegotiationEnv(scenarios, seller="scripted:boulware")
    policy = make_agent("scripted:anchor", Role.BUYER)
    observation, info = env.reset(seed=3)
    assert observation.role is Role.BUYER and observation.turn == 1
    assert info["chat"][0]["role"] == "system" and f"${observation.private_value:,.2f}" in info["chat"][0]["content"]
    rewards, done = [], False
    while not done:
        [text] = policy.act([TurnRequest(observation, seed=3)])
        observation, reward, terminated, truncated, info = env.step(text)
        rewards.append(reward)
        done = terminated or truncated
    record = info["record"]
    assert all(r == 0.0 for r in rewards[:-1])
    scenario = record.scenario
    assert rewards[-1] == buyer_reward(record.outcome, record.price, scenario.budget, scenario.cost)
    assert truncated == (record.outcome is Outcome.TURN_LIMIT)
    assert record.buyer == "env:buyer" and record.seller == "scripted:boulware"


def test_reset_is_seeded_and_can_pick_a_scenario() -> None:
    scenarios = [make_scenario(), make_scenario(asking=300.0, budget=240.0, cost=150.0)]
    env = NegotiationEnv(scenarios)
    first = env.reset(seed=11)[0].asking_price
    assert env.reset(seed=11)[0].asking_price == first
    assert env.reset(options={"scenario_id": "s-1"})[0].scenario_id == "s-1"
    with pytest.raises(ValueError, match="no scenario"):
        env.reset(options={"scenario_id": "nope"})


def test_a_garbled_buyer_message_terminates_with_minus_one() -> None:
    env = NegotiationEnv([make_scenario()])
    env.reset(seed=0)
    _, reward, terminated, truncated, info = env.step("I would like it cheaper please")
    assert (reward, terminated, truncated) == (-1.0, True, False)
    assert info["record"].outcome is Outcome.BUYER_FORMAT_ERROR


def test_the_seller_inside_is_regulated() -> None:
    env = NegotiationEnv([make_scenario(cost=100.0)], seller="scripted:linear")
    env.reset(seed=0)
    for _ in range(6):
        view, reward, terminated, truncated, info = env.step(message("[BUY] $1"))
        shown = [m.action.price for m in view.history if m.role is Role.SELLER and m.action.price is not None]
        assert all(price >= 100.0 for price in shown)
        if terminated or truncated:
            break
    assert info["record"].outcome is Outcome.TURN_LIMIT and reward == 0.0


def test_step_before_reset_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="reset"):
        NegotiationEnv([make_scenario()]).step(message("[BUY] $5"))
