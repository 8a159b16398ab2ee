"""The Gymnasium buyer environment with a regulated seller inside: a real ``gymnasium.Env``, registered."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import gymnasium
import pytest
from conftest import FailsOnce, make_scenario, message
from gymnasium.utils.env_checker import check_env

import counteroffer
from counteroffer.agents import AgentFailure, TurnRequest, make_agent
from counteroffer.catalog import load_scenarios
from counteroffer.defaults import DEFAULT_SELLER
from counteroffer.game import Outcome, Role, buyer_reward
from counteroffer.rollout.env import ENV_ID, NegotiationEnv, UnicodeText
from counteroffer.rollout.registration import ENTRY_POINT, register_envs
from counteroffer.rollout.turns import TurnFailure

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def python(code: str) -> subprocess.CompletedProcess[str]:
    """``code`` in a fresh interpreter (this one has imported Gymnasium and counteroffer long ago)."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)


def test_import_counteroffer_imports_neither_gymnasium_nor_torch() -> None:
    result = python("import sys, counteroffer; print(sorted({'gymnasium', 'torch'} & set(sys.modules)))")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_environment_is_registered_by_the_registration_function() -> None:
    register_envs()
    register_envs()  # a second call changes nothing
    assert gymnasium.spec(ENV_ID).entry_point == ENTRY_POINT == "counteroffer.rollout.env:make_env"
    assert counteroffer.register_envs is register_envs
    # Gymnasium 1.x loads no plugin entry points, so the package declares none: registering is up to the code above.
    assert "gymnasium.envs" not in tomllib.loads(PYPROJECT.read_text())["project"].get("entry-points", {})


@pytest.mark.parametrize(
    ("setup", "env_id"),
    [
        ("import gymnasium", "counteroffer:counteroffer/Negotiation-v0"),  # Gymnasium imports the package
        ("import gymnasium, counteroffer", "counteroffer/Negotiation-v0"),  # Gymnasium loaded: the import registers
        ("import counteroffer, gymnasium; counteroffer.register_envs()", "counteroffer/Negotiation-v0"),
        ("import counteroffer.rollout.env, gymnasium", "counteroffer/Negotiation-v0"),
    ],
)
def test_gymnasium_make_finds_the_environment(setup: str, env_id: str, shared_data: Path) -> None:
    code = f"{setup}\nenv = gymnasium.make({env_id!r}, split='test', limit=2, data_root={str(shared_data)!r})\n"
    code += "print(type(env.unwrapped).__name__, len(env.unwrapped.scenarios), env.unwrapped.seller.spec)"
    result = python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["NegotiationEnv", "2", DEFAULT_SELLER]


def test_an_episode_step_by_step_matches_the_reward_formula(shared_data: Path) -> None:
    scenarios = load_scenarios("amazon", "test", data_root=shared_data, limit=5).scenarios
    env = NegotiationEnv(scenarios, seller="scripted:boulware")
    policy = make_agent("scripted:anchor", Role.BUYER)
    observation, info = env.reset(seed=3)
    view = info["view"]
    assert view.role is Role.BUYER and view.turn == 1
    assert info["chat"][0]["role"] == "system" and f"${view.private_value:,.2f}" in info["chat"][0]["content"]
    assert observation.startswith("[system]\n") and info["chat"][-1]["content"] in observation
    assert env.observation_space.contains(observation)
    rewards, done = [], False
    while not done:
        [text] = policy.act([TurnRequest(info["view"], seed=3)])
        observation, reward, terminated, truncated, info = env.step(text)
        rewards.append(reward)
        done = terminated or truncated
    record = info["record"]
    assert all(r == 0.0 for r in rewards[:-1])
    scenario = record.scenario
    assert rewards[-1] == buyer_reward(record.outcome, record.price, scenario.budget, scenario.cost)
    assert truncated == (record.outcome is Outcome.TURN_LIMIT)
    assert record.buyer == "env:buyer" and record.seller == "scripted:boulware"
    with pytest.raises(RuntimeError, match="over"):
        env.step(text)


def test_gymnasium_make_builds_it_from_kwargs_and_it_passes_the_env_checker(shared_data: Path) -> None:
    env = gymnasium.make(
        ENV_ID, seller="scripted:titfortat", persona="insulting", split="test", max_turns=4, limit=8,
        data_root=str(shared_data), render_mode="ansi",
    )  # fmt: skip
    assert isinstance(env.unwrapped, NegotiationEnv) and len(env.unwrapped.scenarios) == 8
    assert env.unwrapped.config.max_turns == 4 and env.unwrapped.seller.spec == "scripted:titfortat"
    check_env(env.unwrapped)  # spaces, seeded reset, step determinism, render modes, close
    observation, info = env.reset(seed=1)
    observation, reward, terminated, truncated, info = env.step(message("[BUY] $1.00", "Would you take $1?"))
    assert "[buyer 1]" in env.render() and "insulting" not in observation  # the persona shows in words only
    assert isinstance(env.observation_space, UnicodeText) and isinstance(env.action_space, UnicodeText)
    wrapped = gymnasium.wrappers.RecordEpisodeStatistics(env)  # Gymnasium's own wrappers apply
    wrapped.reset(seed=2)
    done = False
    while not done:
        _, _, terminated, truncated, info = wrapped.step(message("[BUY] $1.00"))
        done = terminated or truncated
    assert info["episode"]["l"] == 4  # the scripted seller never takes $1: the turn limit
    env.close()


def test_reset_is_seeded_and_can_pick_a_scenario() -> None:
    scenarios = [make_scenario(), make_scenario(asking=300.0, budget=240.0, cost=150.0)]
    env = NegotiationEnv(scenarios)
    first = env.reset(seed=11)[1]["view"].asking_price
    assert env.reset(seed=11)[1]["view"].asking_price == first
    assert env.reset(options={"scenario_id": "s-1"})[1]["scenario_id"] == "s-1"
    with pytest.raises(ValueError, match="no scenario"):
        env.reset(options={"scenario_id": "nope"})
    with pytest.raises(ValueError, match="render_mode"):
        NegotiationEnv(scenarios, render_mode="human")


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
        _, reward, terminated, truncated, info = env.step(message("[BUY] $1"))
        view = info["view"]
        shown = [m.action.price for m in view.history if m.role is Role.SELLER and m.action.price is not None]
        assert all(price >= 100.0 for price in shown)
        if terminated or truncated:
            break
    assert info["record"].outcome is Outcome.TURN_LIMIT and reward == 0.0


def test_step_before_reset_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="reset"):
        NegotiationEnv([make_scenario()]).step(message("[BUY] $5"))


def _play(env: NegotiationEnv, actions: list[str]) -> list[tuple[Role, int, str]]:
    """Step through ``actions`` from a seeded reset; the finished record's messages."""
    env.reset(seed=5)
    for action in actions:
        _, _, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            break
    return [(m.role, m.turn, m.raw) for m in info["record"].messages]


def test_a_seller_failure_leaves_the_game_as_before_the_step_so_step_can_be_retried() -> None:
    """The seller fails once (an injected AgentFailure, see FailsOnce) at turn 2: ``step`` raises with the buyer's
    message not played, and the same ``step`` again plays turn 2 once, as if the failure had not happened."""
    actions = [message(f"[BUY] ${price}", "Would you take this?") for price in (60, 70, 80, 90)]
    seller = FailsOnce(make_agent("scripted:boulware", Role.SELLER), fail_on_call=2)
    env = NegotiationEnv([make_scenario()], seller=seller, max_turns=4, render_mode="ansi")
    env.reset(seed=5)
    env.step(actions[0])
    before = env.render()
    with pytest.raises(TurnFailure) as failed:
        env.step(actions[1])
    assert isinstance(failed.value, AgentFailure) and failed.value.spec == "scripted:boulware"
    assert str(failed.value) == f"scripted:boulware: {FailsOnce.CAUSE}"
    assert env.render() == before  # the buyer's message of turn 2 was not played
    _, _, terminated, truncated, info = env.step(actions[1])  # the retry
    assert info["turn"] == 3 and not (terminated or truncated)
    for action in actions[2:]:
        _, _, terminated, truncated, info = env.step(action)
    assert truncated
    record = info["record"]
    assert [(m.role, m.turn) for m in record.messages] == [(role, t) for t in (1, 2, 3, 4) for role in Role]
    assert [m.raw for m in record.messages if m.role is Role.BUYER] == actions
    assert all(m.format_error is None for m in record.messages)
    # The very episode a seller that never failed plays.
    clean = NegotiationEnv([make_scenario()], seller="scripted:boulware", max_turns=4)
    assert [(m.role, m.turn, m.raw) for m in record.messages] == _play(clean, actions)
