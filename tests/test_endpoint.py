"""The OpenAI-compatible endpoint agent against a fault-injecting fake server on loopback.

The server (``fake_openai_server.py``) speaks the chat-completions protocol and writes scripted negotiation
messages, so whole benches run through the real client, retries, prompts, re-asks and the rollout engine; its
fault plans make it fail on demand in ways a real model server cannot be made to.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections import Counter
from pathlib import Path

import msgspec
import pytest
from conftest import make_scenario, message, run_cli
from fake_openai_server import (
    GARBAGE,
    SECRET_REASONING,
    SECRET_REASONING_FIELD,
    FakeOpenAI,
    RunningServer,
    scripted_message,
    serve,
)

from counteroffer.agents import AgentFailure, AgentSpecError, TurnRequest, make_agent
from counteroffer.agents.base import Reply
from counteroffer.agents.scripted.phrases import TERSE_BUYER_PHRASES
from counteroffer.catalog import Scenario, load_scenarios
from counteroffer.evaluate.bench import BenchConfig, BenchResult, run_bench
from counteroffer.evaluate.seller_play import summarize_seller_play
from counteroffer.game import (
    ActionKind,
    EpisodeRecord,
    EpisodeStatus,
    EventKind,
    Negotiation,
    Outcome,
    Role,
    parse_message,
)
from counteroffer.game.messages import FormatError
from counteroffer.game.reward import seller_reward
from counteroffer.models.backend import split_reasoning
from counteroffer.rollout.runner import plan_jobs

SECRET_KEY = "sk-test-SECRET-123"
ENDPOINT_THREAD = "counteroffer-endpoint"


# --- fixtures and helpers ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server() -> RunningServer:
    with serve(FakeOpenAI()) as running:
        yield running


@pytest.fixture
def fake(server: RunningServer, monkeypatch: pytest.MonkeyPatch) -> RunningServer:
    """The running server with a fresh plan and request log; no API key in the environment unless a test sets
    one; and every endpoint agent the test built must have been closed (its loop thread gone) by the end."""
    server.fake.reset()
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    yield server
    time.sleep(0.05)
    assert not _endpoint_threads(), "an endpoint agent was not closed"
    assert server.fake.in_flight == 0 or _settles(server.fake)


def _endpoint_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == ENDPOINT_THREAD and t.is_alive()]


def _settles(fake: FakeOpenAI) -> bool:
    deadline = time.monotonic() + 3
    while fake.in_flight and time.monotonic() < deadline:
        time.sleep(0.02)
    return fake.in_flight == 0


def _money(amount: float) -> str:
    return f"${amount:,.2f}"


def _bench(tmp_path: Path, shared_data: Path, buyer: str, seller: str = "scripted:boulware", **kw) -> BenchResult:
    settings = {"split": "test", "limit": 4, "rollouts": 2, "out": tmp_path / "bench", "data_root": str(shared_data)}
    settings.update(kw)
    return run_bench(BenchConfig(buyers=[buyer], seller=seller, **settings))


def _records(result: BenchResult) -> list[EpisodeRecord]:
    decoder = msgspec.json.Decoder(EpisodeRecord)
    return [decoder.decode(line) for line in result.episodes_path.read_bytes().splitlines() if line.strip()]


def _act(spec: str, role: Role = Role.BUYER, scenarios: list[Scenario] | None = None, persona: str = "neutral"):
    """One turn of ``role`` for each scenario (the seller answers a buyer's opening [BUY] $120.00)."""
    agent = make_agent(spec, role, persona)
    try:
        requests = []
        for seed, scenario in enumerate(scenarios or [make_scenario()]):
            game = Negotiation(scenario)
            if role is Role.SELLER:
                game.step(message("[BUY] $120.00", "Would you take $120?"))
            requests.append(TurnRequest(game.view(role), seed))
        return agent.act(requests)
    finally:
        agent.close()


def _assert_valid(reply: object, role: Role = Role.BUYER) -> Reply:
    assert isinstance(reply, Reply), reply
    assert not isinstance(parse_message(reply.text, role), FormatError), reply.text
    return reply


# --- whole episodes ---------------------------------------------------------------------------------------------


def test_buyer_endpoint_plays_full_episodes_and_sees_only_its_budget(
    fake: RunningServer, tmp_path: Path, shared_data: Path
) -> None:
    spec = fake.spec()
    result = _bench(tmp_path, shared_data, spec)
    records = _records(result)
    assert result.played == 8 and len(records) == 8
    assert {r.status for r in records} == {EpisodeStatus.OK}
    assert all(r.error is None and r.outcome is not None and r.metrics is not None for r in records)
    assert result.rows[0].episodes == 8 and result.rows[0].errored == 0
    buyer_messages = [m for r in records for m in r.messages if m.role is Role.BUYER]
    assert all(m.format_error is None for m in buyer_messages)
    assert any(r.outcome is Outcome.DEAL for r in records)  # the fake buyer can close a deal with Boulware

    seen = fake.fake.seen()
    assert {r.role for r in seen} == {"buyer"}
    assert len(seen) == len(buyer_messages)  # one request per buyer message: no retries, no re-asks
    assert sum(len(r.body["messages"]) == 2 for r in seen) == 8  # each episode opens with system + first user turn
    scenarios = {r.scenario.scenario_id: r.scenario for r in records}
    for request in seen:
        body = request.body
        assert body["model"] == "fake" and body["temperature"] == 1.0 and body["max_tokens"] == 256
        assert isinstance(body["seed"], int)
        assert request.headers["authorization"] == "Bearer EMPTY"
        roles = [m["role"] for m in body["messages"]]
        assert roles[0] == "system" and roles[1::2] == ["user"] * len(roles[1::2])
        assert roles[2::2] == ["assistant"] * len(roles[2::2]) and roles[-1] == "user"
        system = body["messages"][0]["content"]
        own = [s for s in scenarios.values() if f"Item: {s.product.title}\n" in system]
        assert len(own) == 1
        assert f"Your private budget is {_money(own[0].budget)}." in system
        for scenario in scenarios.values():
            assert _money(scenario.cost) not in request.raw  # the seller's cost never reaches the buyer
    # the buyer's own earlier messages come back as assistant turns exactly as recorded
    recorded_raw = {m.raw for m in buyer_messages}
    assistant_turns = [m["content"] for r in seen for m in r.body["messages"] if m["role"] == "assistant"]
    assert assistant_turns and set(assistant_turns) <= recorded_raw


def test_both_sides_on_endpoints_keep_private_values_private(
    fake: RunningServer, tmp_path: Path, shared_data: Path
) -> None:
    result = _bench(tmp_path, shared_data, fake.spec(), seller=fake.spec("reasks=1"), rollouts=1)
    records = _records(result)
    assert len(records) == 4 and {r.status for r in records} == {EpisodeStatus.OK}
    scenarios = [r.scenario for r in records]
    buyers, sellers = fake.fake.seen("buyer"), fake.fake.seen("seller")
    assert buyers and sellers
    assert len(sellers) == sum(m.role is Role.SELLER for r in records for m in r.messages)  # no re-asks needed
    for request in sellers:
        assert request.body["temperature"] == 0.7
        system = request.body["messages"][0]["content"]
        assert any(f"Your private cost is {_money(s.cost)}." in system for s in scenarios)
        for scenario in scenarios:
            assert _money(scenario.budget) not in request.raw  # the buyer's budget never reaches the seller
    for request in buyers:
        for scenario in scenarios:
            assert _money(scenario.cost) not in request.raw
    for record in records:
        assert not any(e.kind.startswith("agent_") for m in record.messages for e in m.events)
        if record.outcome is Outcome.DEAL:
            assert record.price >= record.scenario.cost


def test_concurrency_limits_requests_in_flight(fake: RunningServer) -> None:
    fake.fake.delay = 0.2
    scenarios = [make_scenario(title=f"Item {i}") for i in range(9)]
    started = time.monotonic()
    replies = _act(fake.spec("concurrency=3"), scenarios=scenarios)
    elapsed = time.monotonic() - started
    assert all(isinstance(_assert_valid(r), Reply) for r in replies)
    assert len(fake.fake.seen()) == 9
    assert 1 < fake.fake.max_in_flight <= 3
    assert elapsed >= 3 * 0.2 - 0.05  # nine requests, three at a time


def test_replies_come_back_in_request_order(fake: RunningServer) -> None:
    fake.fake.delay = 0.05
    scenarios = [make_scenario(budget=100.0 + i, cost=50.0, title=f"Item {i}") for i in range(5)]
    replies = _act(fake.spec(), scenarios=scenarios)
    for scenario, reply in zip(scenarios, replies, strict=True):
        # the fake buyer opens at half its budget
        assert _assert_valid(reply).text.endswith(f"[BUY] {_money(round(scenario.budget * 0.5, 2))}")


# --- retries ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fault",
    ["status:500", "status:503", "status:429", "malformed", "malformed_text", "hang:3", "cut", "drop"],
)
def test_a_transient_fault_is_retried(fake: RunningServer, fault: str, caplog: pytest.LogCaptureFixture) -> None:
    fake.fake.plan(fault, "ok")
    caplog.set_level(logging.WARNING, logger="counteroffer")
    started = time.monotonic()
    [reply] = _act(fake.spec("timeout=0.5&retries=2&backoff=0"))
    elapsed = time.monotonic() - started
    seen = fake.fake.seen()
    assert [r.behaviour for r in seen] == [fault, "ok"]
    assert _assert_valid(reply).text == scripted_message(seen[1].body)
    assert seen[0].body == seen[1].body  # the same request, sent again
    assert "retry 1/2" in caplog.text
    if fault.startswith("hang"):
        assert 0.45 <= elapsed < 2.5  # the client gave up at its 0.5 s timeout, not after the 3 s hang


def test_429_honours_retry_after_over_the_backoff(fake: RunningServer) -> None:
    fake.fake.plan("status:429")
    started = time.monotonic()
    [reply] = _act(fake.spec("retries=1&backoff=5"))  # a 5 s backoff would blow the bound below
    assert time.monotonic() - started < 2.5
    _assert_valid(reply)

    fake.fake.reset()
    fake.fake.plan("status:429:1")
    started = time.monotonic()
    [reply] = _act(fake.spec("retries=1&backoff=0"))
    assert time.monotonic() - started >= 0.95  # waited the server's Retry-After: 1, not the zero backoff
    _assert_valid(reply)


def test_backoff_delays_a_retry(fake: RunningServer) -> None:
    fake.fake.plan("status:500")
    started = time.monotonic()
    [reply] = _act(fake.spec("retries=1&backoff=0.4"))
    assert time.monotonic() - started >= 0.2  # 0.4 s × a jitter factor in [0.5, 1.5)
    _assert_valid(reply)


@pytest.mark.parametrize("status", [400, 401, 404, 422])
def test_a_client_error_is_not_retried(fake: RunningServer, status: int) -> None:
    fake.fake.plan(f"status:{status}")
    [reply] = _act(fake.spec("retries=3&backoff=0"))
    assert isinstance(reply, AgentFailure)
    assert str(status) in str(reply)
    assert len(fake.fake.seen()) == 1
    assert fake.fake.pending() == 0


def test_retries_exhausted_fail_that_request_alone(fake: RunningServer) -> None:
    doomed = make_scenario(title="Doomed espresso machine")
    fake.fake.rule("Doomed espresso machine", "status:500")
    replies = _act(
        fake.spec("retries=2&backoff=0"), scenarios=[make_scenario(title="Fine kettle"), doomed, make_scenario()]
    )
    _assert_valid(replies[0])
    _assert_valid(replies[2])
    assert isinstance(replies[1], AgentFailure)
    assert "InternalServerError" in str(replies[1]) and "after 2 retries" in str(replies[1])
    doomed_requests = [r for r in fake.fake.seen() if "Doomed" in r.raw]
    assert len(doomed_requests) == 3  # the first try and two retries
    assert len(fake.fake.seen()) == 5


def test_errored_episodes_are_recorded_excluded_and_rerun(
    fake: RunningServer, tmp_path: Path, shared_data: Path
) -> None:
    scenarios = load_scenarios("amazon", "test", data_root=shared_data, limit=3).scenarios
    broken = scenarios[1]
    fake.fake.rule(f"Item: {broken.product.title}\n", "status:500")
    spec = fake.spec("retries=2&backoff=0")
    first = _bench(tmp_path, shared_data, spec, limit=3, rollouts=2)
    records = _records(first)
    errored = [r for r in records if r.status is EpisodeStatus.ERRORED]
    assert first.played == 6 and len(records) == 6
    assert {r.scenario.scenario_id for r in errored} == {broken.scenario_id} and len(errored) == 2
    for record in errored:
        assert record.error.startswith(f"{spec}: InternalServerError") and "after 2 retries" in record.error
        assert record.metrics is None and record.reward == 0.0 and record.messages == []
    broken_requests = [r for r in fake.fake.seen() if broken.product.title in r.body["messages"][0]["content"]]
    assert len(broken_requests) == 2 * 3  # two episodes, each tried three times
    row = first.rows[0]
    assert row.episodes == 4 and row.errored == 2 and row.overall.episodes == 4
    summary = json.loads(first.summary_path.read_text())
    assert summary["rows"][0]["episodes"] == 4 and summary["rows"][0]["errored"] == 2

    fake.fake.clear_rules()  # the server is healthy again
    second = _bench(tmp_path, shared_data, spec, limit=3, rollouts=2)
    assert second.played == 2 and second.skipped == 4
    assert second.rows[0].episodes == 6 and second.rows[0].errored == 0
    lines = _records(second)
    keys = [job.key for job in plan_jobs(scenarios, [spec], "scripted:boulware", "neutral", 2)]
    latest = {r.key: r for r in lines}
    assert set(latest) == set(keys)
    assert all(latest[k].status is EpisodeStatus.OK for k in keys)
    ok_counts = Counter(r.key for r in lines if r.status is EpisodeStatus.OK)
    assert all(ok_counts[k] == 1 for k in keys)  # nothing lost, nothing duplicated
    assert len(lines) == 6 + 2  # the two errored records stay as the audit trail
    assert [r.key for r in lines[:6]] == [r.key for r in records]  # earlier lines untouched

    third = _bench(tmp_path, shared_data, spec, limit=3, rollouts=2)
    assert third.played == 0 and third.skipped == 6 and len(_records(third)) == 8


@pytest.mark.parametrize("fault", ["content_parts", "error_200"])
def test_an_unreadable_200_fails_its_episode_not_the_bench(
    fake: RunningServer, tmp_path: Path, shared_data: Path, fault: str
) -> None:
    fake.fake.set_default(fault)
    spec = fake.spec("retries=1&backoff=0")
    result = _bench(tmp_path, shared_data, spec, limit=2, rollouts=1)
    records = _records(result)
    assert len(records) == 2 and all(r.status is EpisodeStatus.ERRORED for r in records)
    assert all(r.error.startswith(f"{spec}: ") for r in records)
    assert result.rows[0].episodes == 0 and result.rows[0].errored == 2
    fake.fake.set_default("ok")
    assert _bench(tmp_path, shared_data, spec, limit=2, rollouts=1).rows[0].episodes == 2


# --- the API key --------------------------------------------------------------------------------------------------


def test_the_api_key_is_sent_but_never_recorded_or_logged(
    fake: RunningServer,
    tmp_path: Path,
    shared_data: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET_KEY)
    caplog.set_level(logging.DEBUG)
    fake.fake.set_default("status:500")  # the server's error text echoes the Authorization header it got
    result = _bench(tmp_path, shared_data, fake.spec("retries=1&backoff=0"), limit=2, rollouts=1)
    failures = _act(fake.spec("retries=1&backoff=0"))
    fake.fake.set_default("status:401")
    failures += _act(fake.spec())

    seen = fake.fake.seen()
    assert seen and all(r.headers["authorization"] == f"Bearer {SECRET_KEY}" for r in seen)
    records = _records(result)
    assert len(records) == 2 and all(r.status is EpisodeStatus.ERRORED for r in records)
    texts = [r.error for r in records] + [str(f) for f in failures]
    assert all(isinstance(f, AgentFailure) for f in failures)
    for text in texts:
        assert "[api key]" in text  # the key was in the error and was scrubbed, not merely absent
        assert SECRET_KEY not in text
    assert SECRET_KEY not in result.episodes_path.read_text()
    assert SECRET_KEY not in result.summary_path.read_text()
    logged = caplog.text + "".join(f"{r.getMessage()} {r.args!r} {r.exc_text or ''}" for r in caplog.records)
    assert "retry 1/1" in logged and SECRET_KEY not in logged


def test_key_env_selects_the_variable(fake: RunningServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET_KEY)
    monkeypatch.setenv("MY_KEY", "sk-other-456")
    fake.fake.plan("ok", "status:400")
    _assert_valid(_act(fake.spec("key_env=MY_KEY"))[0])
    [failure] = _act(fake.spec("key_env=MY_KEY"))
    assert [r.headers["authorization"] for r in fake.fake.seen()] == ["Bearer sk-other-456"] * 2
    assert isinstance(failure, AgentFailure) and "sk-other-456" not in str(failure) and "[api key]" in str(failure)

    monkeypatch.delenv("MY_KEY")
    _assert_valid(_act(fake.spec("key_env=MY_KEY"))[0])
    assert fake.fake.seen()[-1].headers["authorization"] == "Bearer EMPTY"  # an unset variable: no key at all


def test_talk_plain_replaces_only_the_words(fake: RunningServer, tmp_path: Path, shared_data: Path) -> None:
    """The talk ablation (``talk=plain``): the same model's offers and actions, with its Talk replaced by the scripted
    reader's template for each action. Against a seller that ignores words, the actions are identical; the Talk
    that stated the budget (``leak``) is gone."""
    fake.fake.set_default("leak", role="buyer")
    runs = {
        talk: _records(_bench(tmp_path / talk, shared_data, fake.spec(f"talk={talk}"), limit=3, rollouts=1))
        for talk in ("own", "plain")
    }
    templates = [
        re.compile(re.sub(r"\\\{\w+\\\}", ".+", re.escape(t))) for ts in TERSE_BUYER_PHRASES.values() for t in ts
    ]
    plain_talks = 0
    for own, plain in zip(runs["own"], runs["plain"], strict=True):
        budget = _money(own.scenario.budget)
        own_buyer = [m for m in own.messages if m.role is Role.BUYER]
        plain_buyer = [m for m in plain.messages if m.role is Role.BUYER]
        assert [m.action for m in own_buyer] == [m.action for m in plain_buyer]
        assert any(budget in m.talk for m in own_buyer)
        for m in plain_buyer:
            assert budget not in m.raw and any(t.fullmatch(m.talk) for t in templates), m.talk
            plain_talks += 1
    assert plain_talks >= 3


# --- reasoning ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("behaviour", "secret"), [("think", SECRET_REASONING), ("reasoning_field", SECRET_REASONING_FIELD)]
)
def test_reasoning_is_recorded_but_never_parsed_or_shown(
    fake: RunningServer, tmp_path: Path, shared_data: Path, behaviour: str, secret: str
) -> None:
    fake.fake.set_default(behaviour, role="buyer")
    result = _bench(tmp_path, shared_data, fake.spec(), seller=fake.spec(), limit=2, rollouts=1)
    records = _records(result)
    assert len(records) == 2 and {r.status for r in records} == {EpisodeStatus.OK}
    buyer_messages = [m for r in records for m in r.messages if m.role is Role.BUYER]
    assert buyer_messages
    for record in buyer_messages:
        assert record.reasoning == secret
        assert record.format_error is None and record.action is not None
        assert secret not in record.raw and "think>" not in record.raw
        assert secret not in record.shown_talk and secret not in record.thought
    for record in (m for r in records for m in r.messages if m.role is Role.SELLER):
        assert record.reasoning == ""
    for request in fake.fake.seen("seller"):
        assert secret not in request.raw  # the seller's view never holds the buyer's reasoning
    for request in fake.fake.seen("buyer"):
        assert secret not in request.raw  # nor is it fed back to the buyer as its own earlier message


@pytest.mark.parametrize(
    ("text", "field", "expected"),
    [
        ("<think>plan a low offer</think>\nAction: [BUY] $5", "", ("Action: [BUY] $5", "plan a low offer")),
        ("<think>cut off by the token limit", "", ("", "cut off by the token limit")),
        ("Action: [BUY] $5\n<think>trailing and unclosed", "", ("Action: [BUY] $5", "trailing and unclosed")),
        (
            "reasoning whose tag the template opened</think>\nAction: [BUY] $5",
            "",
            ("Action: [BUY] $5", "reasoning whose tag the template opened"),
        ),
        ("Action: [BUY] $5", "from the field", ("Action: [BUY] $5", "from the field")),
        ("<THINK>Shouting</Think>Action: [BUY] $5", "", ("Action: [BUY] $5", "Shouting")),
        ("<think>one</think>Action: [BUY] $5<think>two</think>", "field", ("Action: [BUY] $5", "field\none\ntwo")),
        ("lead</think>Action: [BUY] $5<think>tail", "", ("Action: [BUY] $5", "lead\ntail")),
        ("<think></think>  Action: [BUY] $5  ", "", ("Action: [BUY] $5", "")),
        ("Thought: no tags at all\nAction: [BUY] $5", "", ("Thought: no tags at all\nAction: [BUY] $5", "")),
    ],
)
def test_split_reasoning(text: str, field: str, expected: tuple[str, str]) -> None:
    assert split_reasoning(text, field) == expected


# --- malformed messages -------------------------------------------------------------------------------------------


def _replayed_fallback(record: EpisodeRecord, persona: str = "neutral") -> str:
    """What the scripted linear seller writes at the record's first seller turn."""
    game = Negotiation(record.scenario)
    game.step(record.messages[0].raw)
    [text] = make_agent("scripted:linear", Role.SELLER, persona).act([TurnRequest(game.view(Role.SELLER), record.seed)])
    return text


def test_a_seller_that_stays_malformed_falls_back_to_the_scripted_seller(
    fake: RunningServer, tmp_path: Path, shared_data: Path
) -> None:
    fake.fake.plan("garbage", "garbage", role="seller")
    result = _bench(tmp_path, shared_data, "scripted:anchor", seller=fake.spec("reasks=1"), limit=1, rollouts=1)
    [record] = _records(result)
    assert record.status is EpisodeStatus.OK
    first = record.messages[1]
    assert first.role is Role.SELLER and first.turn == 1
    kinds = [e.kind for e in first.events]
    assert kinds.count(EventKind.AGENT_REASKED) == 1 and kinds.count(EventKind.AGENT_FALLBACK) == 1
    assert [e.detail for e in first.events if e.kind is EventKind.AGENT_FALLBACK] == ["scripted:linear"]
    assert [e.detail for e in first.events if e.kind is EventKind.AGENT_REASKED] == [GARBAGE]
    assert first.replaced_raw == GARBAGE  # the model's last unusable text is kept too
    assert EventKind.SELLER_FORMAT_ERROR not in kinds
    assert first.raw == _replayed_fallback(record)  # exactly the scripted linear seller's message
    assert first.shown_action.kind in (ActionKind.SELL, ActionKind.DEAL, ActionKind.REJECT)
    if first.shown_action.price is not None:
        assert first.shown_action.price >= record.scenario.cost
    # the re-ask showed the model its own text and the parse error
    sellers = fake.fake.seen("seller")
    assert [r.behaviour for r in sellers[:2]] == ["garbage", "garbage"]
    reask = sellers[1].body["messages"]
    assert reask[:-2] == sellers[0].body["messages"]
    assert reask[-2] == {"role": "assistant", "content": GARBAGE}
    assert reask[-1]["role"] == "user" and "could not be used (missing_action" in reask[-1]["content"]
    later = [m for m in record.messages[2:] if m.role is Role.SELLER]
    assert all(not m.events or EventKind.AGENT_FALLBACK not in [e.kind for e in m.events] for m in later)
    assert len(sellers) == 2 + len(later)


def test_a_seller_that_is_always_malformed_never_sells_below_cost(
    fake: RunningServer, tmp_path: Path, shared_data: Path
) -> None:
    fake.fake.set_default("garbage", role="seller")
    result = _bench(tmp_path, shared_data, "scripted:naive", seller=fake.spec("reasks=1"), limit=4, rollouts=1)
    records = _records(result)
    assert len(records) == 4 and {r.status for r in records} == {EpisodeStatus.OK}
    for record in records:
        sellers = [m for m in record.messages if m.role is Role.SELLER]
        assert sellers
        for m in sellers:
            assert [e.kind for e in m.events].count(EventKind.AGENT_FALLBACK) == 1
            assert m.format_error is None
        if record.outcome is Outcome.DEAL:
            assert record.price >= record.scenario.cost
    assert len(fake.fake.seen("seller")) == 2 * sum(m.role is Role.SELLER for r in records for m in r.messages)


def test_seller_play_counts_the_models_own_turns_reasks_and_fallbacks(
    fake: RunningServer, tmp_path: Path, shared_data: Path
) -> None:
    """Three malformed seller replies, one re-ask allowed, two episodes: the two first turns are re-asked (one
    batch) and one of the two re-asks fails into the fallback; `counteroffer sellers` reports exactly that."""
    fake.fake.plan("garbage", "garbage", "garbage", role="seller")
    result = _bench(tmp_path, shared_data, "scripted:anchor", seller=fake.spec("reasks=1"), limit=2, rollouts=1)
    records = _records(result)
    turns = sum(m.role is Role.SELLER for r in records for m in r.messages)
    [row] = summarize_seller_play(records)
    assert (row.episodes, row.seller_turns) == (2, turns)
    assert row.reask_rate == pytest.approx(2 / turns) and row.fallback_rate == pytest.approx(1 / turns)
    assert row.regulator_interventions.mean == 0  # the fake seller never goes below its cost
    expected = [seller_reward(r.outcome, r.price, r.scenario.budget, r.scenario.cost) for r in records]
    assert row.seller_reward.mean == pytest.approx(sum(expected) / 2)
    assert row.deal_rate.mean == pytest.approx(sum(r.outcome is Outcome.DEAL for r in records) / 2)
    cli = run_cli("sellers", tmp_path / "bench", "--json")
    assert cli.returncode == 0, cli.stderr
    [shown] = json.loads(cli.stdout)
    assert shown["seller"] == row.seller and shown["fallback_rate"] == pytest.approx(row.fallback_rate)
    assert run_cli("sellers", tmp_path / "nothing").returncode == 2


def test_seller_reward_is_the_sellers_share_of_the_surplus() -> None:
    assert seller_reward(Outcome.DEAL, 150.0, 160.0, 100.0) == pytest.approx(50 / 60)
    assert seller_reward(Outcome.DEAL, 200.0, 160.0, 100.0) == 1.0  # clipped
    assert seller_reward(Outcome.TURN_LIMIT, None, 160.0, 100.0) == 0.0
    assert seller_reward(Outcome.DEAL, 100.0, 100.0, 100.0) == 0.0  # no surplus to share


def test_a_seller_reasked_once_then_valid_uses_the_model_message(
    fake: RunningServer, tmp_path: Path, shared_data: Path
) -> None:
    fake.fake.plan("garbage", role="seller")
    result = _bench(tmp_path, shared_data, "scripted:anchor", seller=fake.spec("reasks=1"), limit=1, rollouts=1)
    [record] = _records(result)
    first = record.messages[1]
    assert [e.kind for e in first.events if e.kind.startswith("agent_")] == [EventKind.AGENT_REASKED]
    assert first.raw == scripted_message(fake.fake.seen("seller")[1].body)
    assert first.format_error is None


def test_a_seller_with_no_reasks_falls_back_at_once(fake: RunningServer) -> None:
    fake.fake.plan("garbage", role="seller")
    [reply] = _act(fake.spec("reasks=0"), role=Role.SELLER)
    assert isinstance(reply, Reply) and reply.fallback == "scripted:linear"
    assert reply.reasks == ()  # nothing was asked again, so the record gets no agent_reasked event
    _assert_valid(reply, Role.SELLER)
    assert len(fake.fake.seen()) == 1


def test_a_malformed_buyer_loses_the_episode_without_a_reask(
    fake: RunningServer, tmp_path: Path, shared_data: Path
) -> None:
    fake.fake.set_default("garbage", role="buyer")
    result = _bench(tmp_path, shared_data, fake.spec("reasks=3"), limit=1, rollouts=1)
    [record] = _records(result)
    assert record.status is EpisodeStatus.OK
    assert record.outcome is Outcome.BUYER_FORMAT_ERROR and record.reward == -1.0
    assert len(record.messages) == 1 and record.messages[0].raw == GARBAGE
    assert [e.kind for e in record.messages[0].events] == [EventKind.BUYER_FORMAT_ERROR]
    assert len(fake.fake.seen()) == 1
    assert result.rows[0].overall.format_error_rate.mean == 1.0


# --- specs --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("openai:fake", "openai:MODEL@"),
        ("openai:@http://127.0.0.1:9/v1", "openai:MODEL@"),
        ("openai:fake@127.0.0.1:9/v1", "openai:MODEL@"),
        ("openai:fake@http://127.0.0.1:9/v1?concurrency=0", "concurrency"),
        ("openai:fake@http://127.0.0.1:9/v1?concurrency=many", "concurrency"),
        ("openai:fake@http://127.0.0.1:9/v1?bogus=1", "bogus"),
        ("openai:fake@http://127.0.0.1:9/v1?timeout=0", "timeout"),
        ("openai:fake@http://127.0.0.1:9/v1?retries=-1", "retries"),
        ("openai:fake@http://127.0.0.1:9/v1?backoff=-0.5", "backoff"),
        ("openai:fake@http://127.0.0.1:9/v1?reasks=-1", "reasks"),
        ("openai:fake@http://127.0.0.1:9/v1?temperature=-1", "temperature"),
        ("openai:fake@http://127.0.0.1:9/v1?dtype=float16", "dtype"),  # an hf-only parameter
        ("openai:fake@http://127.0.0.1:9/v1?templates_dir=/no/such/folder", "does not exist"),
    ],
)
def test_bad_endpoint_specs(spec: str, match: str) -> None:
    with pytest.raises(AgentSpecError, match=match):
        make_agent(spec, Role.SELLER)
    time.sleep(0.02)
    assert not _endpoint_threads()  # the spec was rejected before a client (and its loop thread) was started


def test_unreachable_endpoint_fails_the_request(fake: RunningServer) -> None:
    [reply] = _act("openai:fake@http://127.0.0.1:9/v1?retries=1&backoff=0&timeout=2")
    assert isinstance(reply, AgentFailure) and "APIConnectionError" in str(reply) and "after 1 retries" in str(reply)


def test_a_bench_that_cannot_start_closes_the_endpoint_agents_it_built(
    fake: RunningServer, tmp_path: Path, shared_data: Path
) -> None:
    try:
        with pytest.raises(AgentSpecError, match="needs a scripted seller"):
            _bench(tmp_path, shared_data, "scripted:oracle", seller=fake.spec(), limit=1, rollouts=1)
        time.sleep(0.05)
        assert not _endpoint_threads()  # the endpoint seller's loop thread and HTTP client were released
    finally:
        for thread in _endpoint_threads():  # stop what leaked, so the fixture's own leak check stays meaningful
            loop = thread._target.__self__  # type: ignore[attr-defined]
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=5)
