"""The verifiers integration (``counteroffer.integrations.verifiers_env``): real verifiers evaluations against the
fake OpenAI-compatible server, checked episode by episode against ``counteroffer bench`` with the same buyer
(the fake model), seller, scenarios, turn limit and seeds: the same messages, rewards and metrics.

Skipped where verifiers is not installed, except under CI (``CI`` set), which installs it: there a missing
verifiers fails the run instead of hiding the integration's tests.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import inspect
import json
import math
import os
import sys
import threading
import types
from pathlib import Path
from typing import Any

import msgspec
import pytest

if importlib.util.find_spec("verifiers") is None and os.environ.get("CI"):
    pytest.fail("verifiers is missing: CI must install it (pip install 'counteroffer[verifiers]')", pytrace=False)
vf = pytest.importorskip("verifiers", reason="verifiers is not installed (pip install 'counteroffer[verifiers]')")

from conftest import FailsOnce  # noqa: E402
from fake_openai_server import GARBAGE, SECRET_REASONING, FakeOpenAI, RunningServer, SeenRequest, serve  # noqa: E402
from openai import AsyncOpenAI  # noqa: E402

from counteroffer.agents import make_agent  # noqa: E402
from counteroffer.catalog import load_scenarios  # noqa: E402
from counteroffer.defaults import DEFAULT_PERSONA, DEFAULT_SELLER  # noqa: E402
from counteroffer.errors import CounterofferError  # noqa: E402
from counteroffer.evaluate.bench import BenchConfig, run_bench  # noqa: E402
from counteroffer.game import EpisodeRecord, GameConfig, Outcome, Role  # noqa: E402
from counteroffer.integrations.verifiers_env import NegotiationVerifiersEnv, load_environment  # noqa: E402
from counteroffer.rollout.env import make_env  # noqa: E402

MODULE = "counteroffer.integrations.verifiers_env"
LIMIT, ROLLOUTS, MAX_TURNS = 4, 2, 3  # the fake buyer closes deals on three of them and runs out of turns on one
METRICS = ("deal", "bargained_ratio", "overshoot", "first_offer_ratio", "turns", "format_error", "protocol_error")


@pytest.fixture(scope="module")
def server() -> RunningServer:
    with serve(FakeOpenAI()) as running:
        yield running


@pytest.fixture
def fake(server: RunningServer, monkeypatch: pytest.MonkeyPatch) -> RunningServer:
    """The server with a fresh plan and request log; every endpoint agent (a bench's, an environment's seller) must
    have been closed by the end of the test."""
    server.fake.reset()
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    yield server
    assert not [t for t in threading.enumerate() if t.name == "counteroffer-endpoint" and t.is_alive()]


def _evaluate(
    env: NegotiationVerifiersEnv, server: RunningServer, rollouts: int = 1, max_retries: int = 0
) -> list[dict[str, Any]]:
    """A verifiers evaluation of every example of ``env`` (the model: the fake server), then the env closed."""

    async def run() -> dict[str, Any]:
        async with AsyncOpenAI(base_url=server.base_url, api_key="EMPTY") as openai_client:
            return await env.evaluate(
                client=vf.OpenAIChatCompletionsClient(openai_client),
                model="fake",
                sampling_args={"temperature": 1.0, "max_tokens": 256},  # the bench's openai buyer's
                num_examples=-1,
                rollouts_per_example=rollouts,
                max_retries=max_retries,
                state_columns=["episode", "rollout_index", "episode_seed"],
            )

    try:
        return list(asyncio.run(run())["outputs"])
    finally:
        env.close()


def _episode(output: dict[str, Any]) -> EpisodeRecord:
    return msgspec.convert(output["episode"], EpisodeRecord)


def _bench_records(path: Path) -> list[EpisodeRecord]:
    decoder = msgspec.json.Decoder(EpisodeRecord)
    return [decoder.decode(line) for line in path.read_bytes().splitlines() if line.strip()]


def _prompts(requests: list[SeenRequest]) -> list[list[tuple[str, str]]]:
    """Each request's chat as (role, content) pairs, sorted: what the model was shown, whoever asked."""
    return sorted([(m["role"], m["content"]) for m in r.body["messages"]] for r in requests)


def _same(value: float, expected: float | bool | int | None) -> bool:
    """A verifiers score against the bench's metric: undefined (None) scores 0, never NaN (NaN × weight 0 would
    make verifiers' reward NaN)."""
    return value == (0.0 if expected is None else float(expected))


@pytest.mark.parametrize("seller_kind", ["scripted", "endpoint"])
def test_an_evaluation_plays_the_bench_episodes(
    fake: RunningServer, tmp_path: Path, shared_data: Path, seller_kind: str
) -> None:
    seller = "scripted:linear" if seller_kind == "scripted" else fake.spec()
    bench = run_bench(
        BenchConfig(
            buyers=[fake.spec()],
            seller=seller,
            split="test",
            limit=LIMIT,
            rollouts=ROLLOUTS,
            max_turns=MAX_TURNS,
            data_root=str(shared_data),
            out=tmp_path / "bench",
        )
    )
    records = {(r.scenario.scenario_id, r.rollout_index): r for r in _bench_records(bench.episodes_path)}
    assert len(records) == LIMIT * ROLLOUTS
    bench_prompts = _prompts(fake.fake.seen("buyer"))
    fake.fake.reset()

    # Through verifiers' own loader, as prime-rl and vf-eval load an environment.
    env = vf.load_environment(
        MODULE, seller=seller, split="test", limit=LIMIT, max_turns=MAX_TURNS, data_root=str(shared_data)
    )
    assert isinstance(env, NegotiationVerifiersEnv)
    outputs = _evaluate(env, fake, rollouts=ROLLOUTS)

    assert len(outputs) == LIMIT * ROLLOUTS
    played = set()
    for output in outputs:
        assert output["error"] is None and output["is_completed"] and output["stop_condition"] == "game_over"
        episode = _episode(output)
        key = (episode.scenario.scenario_id, episode.rollout_index)
        played.add(key)
        expected = records[key]
        assert output["answer"] == episode.scenario.scenario_id == output["info"]["scenario_id"]
        assert (output["rollout_index"], output["episode_seed"]) == (expected.rollout_index, expected.seed)
        assert episode.seed == expected.seed and episode.seller == expected.seller
        # the same transcript, message by message (the seller's too: same seeds, same replies)...
        assert [(m.role, m.raw) for m in episode.messages] == [(m.role, m.raw) for m in expected.messages]
        assert [(m.role, m.shown_talk, m.shown_action) for m in episode.messages] == [
            (m.role, m.shown_talk, m.shown_action) for m in expected.messages
        ]
        # ...also as verifiers recorded it: the model's messages are the buyer's messages the game played
        assistant = [m["content"] for m in output["completion"] if m["role"] == "assistant"]
        assert assistant == [m.raw for m in expected.messages if m.role is Role.BUYER]
        # the same outcome and reward, as the bench scored it
        assert (episode.outcome, episode.price) == (expected.outcome, expected.price)
        assert output["reward"] == expected.reward == output["metrics"]["buyer_reward"]
        assert output["metrics"]["finished"] == 1.0
        assert output["completion"][-1]["role"] == "assistant"  # it ends on the model's last message
        for name in METRICS:
            assert _same(output["metrics"][name], getattr(expected.metrics, name)), name
    assert played == set(records)
    # the model saw exactly the prompts the bench's buyer saw, turn by turn
    assert _prompts(fake.fake.seen("buyer")) == bench_prompts
    # not a trivial comparison: deals at several prices and, against the scripted seller, a game the turn limit ends
    assert Outcome.DEAL in {r.outcome for r in records.values()} and len({r.reward for r in records.values()}) > 2
    if seller_kind == "scripted":
        assert Outcome.TURN_LIMIT in {r.outcome for r in records.values()}


@pytest.mark.parametrize("plan", [("garbage",), ("ok", "garbage")], ids=["first-turn", "second-turn"])
def test_a_garbled_buyer_reply_is_a_format_error(fake: RunningServer, shared_data: Path, plan: tuple[str, ...]) -> None:
    fake.fake.plan(*plan, role="buyer")
    env = load_environment(split="test", limit=1, max_turns=MAX_TURNS, data_root=str(shared_data))
    [output] = _evaluate(env, fake)
    assert output["error"] is None and output["stop_condition"] == "game_over"
    assert output["reward"] == -1.0
    assert output["metrics"]["format_error"] == 1.0 and output["metrics"]["deal"] == 0.0
    assert not any(math.isnan(value) for value in output["metrics"].values())  # undefined metrics score 0
    assert _episode(output).outcome is Outcome.BUYER_FORMAT_ERROR
    assistant = [m["content"] for m in output["completion"] if m["role"] == "assistant"]
    assert len(assistant) == len(plan) and assistant[-1] == GARBAGE
    assert output["completion"][-1]["role"] == "assistant"  # nothing after the message that ended the game
    assert len(fake.fake.seen("buyer")) == len(plan)


def test_reasoning_stays_out_of_the_game(fake: RunningServer, shared_data: Path) -> None:
    fake.fake.set_default("think", role="buyer")
    env = load_environment(split="test", limit=1, max_turns=MAX_TURNS, data_root=str(shared_data))
    [output] = _evaluate(env, fake)
    episode = _episode(output)
    buyer = [m for m in episode.messages if m.role is Role.BUYER]
    assert buyer and all(m.format_error is None and m.reasoning == SECRET_REASONING for m in buyer)
    assert all(SECRET_REASONING not in m.raw for m in episode.messages)
    assert all(SECRET_REASONING not in str(m["content"]) for m in output["completion"] if m["role"] == "user")


def test_a_failing_seller_is_an_infra_error_that_verifiers_retries(fake: RunningServer, shared_data: Path) -> None:
    """The seller fails at its first turn (an injected AgentFailure, see conftest.FailsOnce): the rollout errors
    with ``vf.InfraError`` naming the seller and the cause, and with ``max_retries`` verifiers plays it again."""
    scenarios = load_scenarios("amazon", "test", data_root=shared_data, limit=1).scenarios

    def env() -> NegotiationVerifiersEnv:
        seller = FailsOnce(make_agent("scripted:linear", Role.SELLER), fail_on_call=1)
        return NegotiationVerifiersEnv(scenarios, seller, game_config=GameConfig(max_turns=MAX_TURNS))

    [errored] = _evaluate(env(), fake)
    assert errored["error"]["error"] == "InfraError"
    assert errored["error"]["message"] == f"seller scripted:linear: {FailsOnce.CAUSE}"
    assert errored["episode"] is None and errored["reward"] == 0.0 and errored["metrics"]["finished"] == 0.0
    [retried] = _evaluate(env(), fake, max_retries=1)
    assert retried["error"] is None and retried["stop_condition"] == "game_over"
    assert retried["metrics"]["finished"] == 1.0
    episode = _episode(retried)
    assert [(m.role, m.turn) for m in episode.messages][:2] == [(Role.BUYER, 1), (Role.SELLER, 1)]


def test_the_dataset_is_the_scenarios_with_the_gymnasium_envs_opening(shared_data: Path) -> None:
    env = load_environment(split="test", limit=2, max_turns=3, data_root=str(shared_data))
    gym_env = make_env(split="test", limit=2, max_turns=3, data_root=str(shared_data))
    try:
        rows = env.get_eval_dataset().to_list()
        assert [row["answer"] for row in rows] == [s.scenario_id for s in gym_env.scenarios]
        for row in rows:
            _, info = gym_env.reset(options={"scenario_id": row["answer"]})
            assert row["prompt"] == info["chat"] and row["info"]["scenario_id"] == row["answer"]
    finally:
        env.close()
        gym_env.close()


def test_the_buyers_money_style_reaches_its_prompts(shared_data: Path) -> None:
    """The second test product asks $1,026.92: without separators the buyer reads $1026.92."""
    env = load_environment(split="test", limit=2, thousands_separator=False, data_root=str(shared_data))
    try:
        prompts = json.dumps([row["prompt"] for row in env.get_eval_dataset().to_list()])
    finally:
        env.close()
    assert "$1026.92" in prompts and "$1,026.92" not in prompts


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_turns": 0}, r"load_environment: max_turns: Input should be greater than or equal to 1"),
        ({"limit": 0}, r"load_environment: limit: Input should be greater than or equal to 1"),
        ({"catalog": "ebay"}, r"load_environment: catalog: Input should be 'amazon' or 'craigslist'"),
        ({"description_chars": -1}, r"load_environment: description_chars"),
        ({"templates_dir": "/no/such/folder"}, r"prompt templates folder /no/such/folder does not exist"),
        ({"split": "validation"}, r"unknown AmazonHistoryPrice split 'validation'"),
        ({"seller": "scripted:nobody"}, r"no scripted seller named 'nobody'"),
        ({"seller": "linear"}, r"must look like BACKEND:NAME"),
        ({"persona": "rude"}, r"unknown persona 'rude'"),
    ],
)
def test_bad_arguments_are_refused_clearly(shared_data: Path, kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(CounterofferError, match=match):  # the project's own errors (and still ValueErrors)
        load_environment(data_root=str(shared_data), **kwargs)


def test_the_default_seller_is_the_projects_default() -> None:
    assert inspect.signature(load_environment).parameters["seller"].default == DEFAULT_SELLER
    assert inspect.signature(load_environment).parameters["persona"].default == DEFAULT_PERSONA
    assert inspect.signature(make_env).parameters["seller"].default == DEFAULT_SELLER


def test_an_unknown_argument_is_refused(shared_data: Path) -> None:
    with pytest.raises(TypeError, match="max_turn"):
        load_environment(data_root=str(shared_data), max_turn=3)  # type: ignore[call-arg]


def test_without_verifiers_the_import_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, MODULE)
    monkeypatch.setitem(sys.modules, "verifiers", None)  # what an absent package looks like to import
    with pytest.raises(ImportError, match=r"pip install 'counteroffer\[verifiers\]'"):
        importlib.import_module(MODULE)
    # verifiers >= 0.4 has no classic API
    monkeypatch.setitem(sys.modules, "verifiers", types.ModuleType("verifiers"))
    sys.modules["verifiers"].__version__ = "0.4.0"  # type: ignore[attr-defined]
    with pytest.raises(ImportError, match=r"classic API .*found verifiers 0\.4\.0: pip install"):
        importlib.import_module(MODULE)
