"""The rollout engine, the episodes file, resuming after a crash or Ctrl-C, and re-scoring from records alone."""

from __future__ import annotations

import json
import pickle
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import msgspec
import pytest
from conftest import CLI, make_scenario, run_cli
from conftest import message as raw_message

from counteroffer.agents import Agent, AgentFailure, TurnRequest, make_agent
from counteroffer.agents.registry import SCRIPTED_BUYERS, BuyerFamily
from counteroffer.agents.scripted import ConcedingBuyer
from counteroffer.catalog import Scenario, load_scenarios
from counteroffer.evaluate.bench import EPISODES_FILE, SUMMARY_FILE, BenchConfig, run_bench
from counteroffer.evaluate.summary import summarize
from counteroffer.game import (
    Action,
    ActionKind,
    EpisodeRecord,
    EpisodeStatus,
    EventKind,
    GameConfig,
    Negotiation,
    Outcome,
    Role,
    buyer_reward,
    episode_metrics,
    format_message,
)
from counteroffer.rollout.runner import EpisodeJob, plan_jobs, run_episodes
from counteroffer.rollout.store import EpisodeStore, EpisodeStoreError
from counteroffer.rollout.turns import PendingTurn, TurnFailure, play_exchange, play_turns


@pytest.fixture(scope="module")
def test_split(shared_data: Path) -> list[Scenario]:
    return load_scenarios("amazon", "test", data_root=shared_data).scenarios


def _collect(jobs: Sequence[EpisodeJob], concurrency: int) -> list[EpisodeRecord]:
    """Play ``jobs`` against an insulting tit-for-tat seller."""
    seller = make_agent("scripted:titfortat", Role.SELLER, "insulting")
    buyers = {spec: make_agent(spec, Role.BUYER) for spec in {job.buyer for job in jobs}}
    for buyer in buyers.values():
        buyer.bind_opponent(seller)
    records: list[EpisodeRecord] = []
    played = run_episodes(jobs, lambda job: (buyers[job.buyer], seller), records.append, concurrency=concurrency)
    assert played == len(records)
    return records


def _digest(records: Sequence[EpisodeRecord]) -> dict[str, tuple]:
    return {r.key: (r.reward, r.outcome, r.price, [m.raw for m in r.messages]) for r in records}


# --- the engine ------------------------------------------------------------------------------------------------------


def test_concurrency_does_not_change_the_episodes(test_split: list[Scenario]) -> None:
    jobs = plan_jobs(test_split, ["scripted:naive", "scripted:anchor"], "scripted:titfortat", "insulting", rollouts=2)
    assert len({job.key for job in jobs}) == len(jobs) == 2 * 128 * 2
    results = {concurrency: _collect(jobs, concurrency) for concurrency in (1, 64, 10_000)}
    for records in results.values():
        counts = Counter(r.key for r in records)
        assert set(counts) == {job.key for job in jobs}
        assert set(counts.values()) == {1}  # exactly one record per job
        assert all(r.status is EpisodeStatus.OK for r in records)
    assert _digest(results[1]) == _digest(results[64]) == _digest(results[10_000])
    # Concurrency 1 plays the jobs one after another, in order.
    assert [r.key for r in results[1]] == [job.key for job in jobs]


def test_concurrency_must_be_positive(test_split: list[Scenario]) -> None:
    jobs = plan_jobs(test_split[:1], ["scripted:anchor"], "scripted:boulware", "neutral", rollouts=1)
    with pytest.raises(ValueError, match="concurrency"):
        _collect(jobs, concurrency=0)


def test_episode_seeds_are_paired_across_buyers(test_split: list[Scenario]) -> None:
    jobs = plan_jobs(test_split[:8], ["scripted:naive", "scripted:anchor"], "scripted:boulware", "neutral", 3, 5)
    seeds: dict[tuple[str, int], set[int]] = {}
    for job in jobs:
        seeds.setdefault((job.scenario.scenario_id, job.rollout_index), set()).add(job.seed)
    assert all(len(s) == 1 for s in seeds.values())
    assert len({next(iter(s)) for s in seeds.values()}) == len(seeds)  # distinct across episodes


class FlakyBuyer(ConcedingBuyer):
    """A test double (a mock, on purpose): an anchoring buyer whose "endpoint" fails at turn 2 of the episodes of
    chosen scenarios while ``failing`` is set, the way an LLM agent raises ``AgentFailure`` after its retries."""

    fail_on: frozenset[str] = frozenset()
    failing = True

    def __init__(self, spec: str) -> None:
        super().__init__(spec, opening=0.5)

    def act(self, requests: Sequence[TurnRequest]) -> list[str]:
        if self.failing and any(r.view.turn == 2 and r.view.scenario_id in self.fail_on for r in requests):
            raise AgentFailure("endpoint unavailable after 3 retries")
        return super().act(requests)


@pytest.fixture
def flaky(monkeypatch: pytest.MonkeyPatch, test_split: list[Scenario]) -> type[FlakyBuyer]:
    monkeypatch.setitem(SCRIPTED_BUYERS, "flaky", BuyerFamily(lambda spec, _params: FlakyBuyer(spec)))
    monkeypatch.setattr(FlakyBuyer, "fail_on", frozenset(s.scenario_id for s in test_split[2:5]))
    monkeypatch.setattr(FlakyBuyer, "failing", True)
    return FlakyBuyer


def test_agent_failures_are_recorded_excluded_and_rerun(
    shared_data: Path, tmp_path: Path, flaky: type[FlakyBuyer]
) -> None:
    config = BenchConfig(
        buyers=["scripted:flaky", "scripted:naive"],
        seller="scripted:linear",
        rollouts=2,
        limit=8,
        concurrency=1,  # one episode per batch, so a failure takes down only its own episode
        data_root=str(shared_data),
        out=tmp_path / "run",
    )
    first = run_bench(config)
    assert first.played == 2 * 8 * 2
    records = EpisodeStore(first.episodes_path).records()
    errored = [r for r in records if r.status is EpisodeStatus.ERRORED]
    assert sorted((r.scenario.scenario_id, r.rollout_index) for r in errored) == sorted(
        (sid, i) for sid in flaky.fail_on for i in range(2)
    )
    for record in errored:
        assert record.buyer == "scripted:flaky"
        assert record.error == "scripted:flaky: endpoint unavailable after 3 retries"
        assert record.metrics is None and record.outcome is None and record.reward == 0.0
        assert [m.role for m in record.messages] == [Role.BUYER, Role.SELLER]  # turn 1 was played
    rows = {row.buyer: row for row in first.rows}
    assert (rows["scripted:flaky"].episodes, rows["scripted:flaky"].errored) == (10, 6)
    assert (rows["scripted:naive"].episodes, rows["scripted:naive"].errored) == (16, 0)
    ok_rewards = [r.reward for r in records if r.buyer == "scripted:flaky" and r.status is EpisodeStatus.OK]
    assert rows["scripted:flaky"].overall.reward.mean == pytest.approx(sum(ok_rewards) / len(ok_rewards))
    assert rows["scripted:flaky"].overall.reward.n == 10
    summary = json.loads(first.summary_path.read_text())
    assert [row["errored"] for row in summary["rows"]] == [6, 0]

    flaky.failing = False
    second = run_bench(config)
    assert (second.played, second.skipped) == (6, 26)
    final = EpisodeStore(second.episodes_path).records()
    assert len(final) == 32 and all(r.status is EpisodeStatus.OK for r in final)
    lines = second.episodes_path.read_bytes().splitlines()
    assert len(lines) == 32 + 6  # the errored records stay in the file as an audit trail
    assert [(row.episodes, row.errored) for row in second.rows] == [(16, 0), (16, 0)]
    # The resumed run scores exactly like a run that never failed.
    clean = run_bench(config.model_copy(update={"out": tmp_path / "clean"}))
    assert [row.model_dump() for row in clean.rows] == [row.model_dump() for row in second.rows]


def test_failures_take_down_the_whole_failing_batch(test_split: list[Scenario], flaky: type[FlakyBuyer]) -> None:
    jobs = plan_jobs(test_split[:8], ["scripted:flaky"], "scripted:linear", "neutral", rollouts=1)
    seller = make_agent("scripted:linear", Role.SELLER)
    buyer = make_agent("scripted:flaky", Role.BUYER)
    records: list[EpisodeRecord] = []
    run_episodes(jobs, lambda _: (buyer, seller), records.append, concurrency=8)
    assert len(records) == 8 and len({r.key for r in records}) == 8
    # Every episode was at turn 2 in the same buyer batch when the agent failed: all are errored, none lost.
    assert all(r.status is EpisodeStatus.ERRORED for r in records)
    rows = summarize(records)
    assert rows[0].episodes == 0 and rows[0].errored == 8 and rows[0].overall.reward.mean is None


class _Broken(Agent):
    def __init__(self, spec: str, role: Role, reply: list[str] | Exception) -> None:
        super().__init__(spec, role)
        self.reply = reply

    def act(self, requests: Sequence[TurnRequest]) -> list[str]:
        if isinstance(self.reply, Exception):
            raise self.reply
        return self.reply


def test_agent_bugs_propagate(test_split: list[Scenario]) -> None:
    jobs = plan_jobs(test_split[:2], ["test:broken"], "scripted:linear", "neutral", rollouts=1)
    seller = make_agent("scripted:linear", Role.SELLER)
    for reply, error in [(ZeroDivisionError("bug"), ZeroDivisionError), (["only one message"], RuntimeError)]:
        buyer = _Broken("test:broken", Role.BUYER, reply)
        records: list[EpisodeRecord] = []
        with pytest.raises(error):
            run_episodes(jobs, lambda _, b=buyer: (b, seller), records.append)
        assert records == []


def test_a_failed_turn_plays_nothing_and_names_the_agent() -> None:
    """One request answered and one failed (a returned AgentFailure); then an agent raising one for its batch."""
    cause = AgentFailure("timed out (after 4 retries)")
    games = [Negotiation(make_scenario()) for _ in range(2)]
    mixed = _Broken("test:mixed", Role.BUYER, [raw_message("[BUY] $50"), cause])  # type: ignore[list-item]
    answered, failed = play_turns([PendingTurn(mixed, game, seed) for seed, game in enumerate(games)])
    assert answered is None and len(games[0].messages) == 1
    assert isinstance(failed, TurnFailure) and isinstance(failed, AgentFailure)
    assert (failed.spec, failed.cause, str(failed)) == ("test:mixed", cause, "test:mixed: timed out (after 4 retries)")
    assert str(pickle.loads(pickle.dumps(failed))) == str(failed)
    assert games[1].messages == [] and games[1].next_role is Role.BUYER  # untouched
    down = _Broken("test:down", Role.SELLER, AgentFailure("connection refused"))
    failures = play_turns([PendingTurn(down, games[0], 0)])
    assert [str(f) for f in failures] == ["test:down: connection refused"] and len(games[0].messages) == 1
    with pytest.raises(ValueError, match="no turn"):  # the buyer has played: it is the seller's turn
        play_turns([PendingTurn(mixed, games[0], 0)])


def test_an_exchange_that_fails_or_raises_leaves_the_game_as_it_was() -> None:
    """play_exchange (the Gymnasium and verifiers environments' step): the driven side's message and the responder's
    answer are played together or not at all, for an agent failure as for a bug."""
    game = Negotiation(make_scenario())
    seller = make_agent("scripted:linear", Role.SELLER)
    assert play_exchange(game, raw_message("[BUY] $50"), seller, 1) is None
    before = ([m.raw for m in game.messages], game.view(Role.BUYER), game.view(Role.SELLER), game.next_role)
    failing = _Broken("test:down", Role.SELLER, AgentFailure("connection refused"))
    assert str(play_exchange(game, raw_message("[BUY] $60"), failing, 1)) == "test:down: connection refused"
    assert ([m.raw for m in game.messages], game.view(Role.BUYER), game.view(Role.SELLER), game.next_role) == before
    with pytest.raises(ZeroDivisionError):
        play_exchange(game, raw_message("[BUY] $60"), _Broken("test:bug", Role.SELLER, ZeroDivisionError("bug")), 1)
    assert ([m.raw for m in game.messages], game.view(Role.BUYER), game.view(Role.SELLER), game.next_role) == before
    assert play_exchange(game, raw_message("[BUY] $60"), seller, 1) is None
    assert [(m.role, m.turn) for m in game.messages] == [(role, t) for t in (1, 2) for role in Role]


# --- the episodes file -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_bench(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[BenchConfig, bytes]:
    config = BenchConfig(
        buyers=["scripted:anchor"],
        seller="scripted:conceder",
        rollouts=2,
        limit=6,
        data_root=str(shared_data),
        out=tmp_path_factory.mktemp("small") / "run",
    )
    result = run_bench(config)
    assert result.played == 12
    return config, result.episodes_path.read_bytes()


def _fresh_copy(small_bench: tuple[BenchConfig, bytes], tmp_path: Path, data: bytes) -> BenchConfig:
    config, _ = small_bench
    out = tmp_path / "copy"
    out.mkdir(parents=True)
    (out / EPISODES_FILE).write_bytes(data)
    return config.model_copy(update={"out": out})


def test_store_appends_are_readable(small_bench: tuple[BenchConfig, bytes], tmp_path: Path) -> None:
    _, data = small_bench
    originals = [msgspec.json.decode(line, type=EpisodeRecord) for line in data.splitlines()]
    path = tmp_path / "episodes.jsonl"
    with EpisodeStore(path) as store:
        assert store.records() == [] and store.repaired_bytes == 0
        for record in originals[:5]:
            store.append(record)
        assert [r.key for r in store.records()] == [r.key for r in originals[:5]]
    with EpisodeStore(path) as store:
        assert [msgspec.json.encode(r) for r in store.records()] == [msgspec.json.encode(r) for r in originals[:5]]
        assert all(store.is_finished(r.key) for r in originals[:5])
        assert not store.is_finished(originals[5].key)
        store.append(originals[5])
    assert len(path.read_bytes().splitlines()) == 6
    assert path.read_bytes().endswith(b"\n")


def test_torn_last_line_is_cut_and_rerun(small_bench: tuple[BenchConfig, bytes], tmp_path: Path) -> None:
    _, data = small_bench
    lines = data.splitlines(keepends=True)
    torn = lines[-1][: len(lines[-1]) // 2]  # a crash in the middle of the last write
    config = _fresh_copy(small_bench, tmp_path, b"".join(lines[:-1]) + torn)
    path = config.out / EPISODES_FILE
    with EpisodeStore(path) as store:
        assert store.repaired_bytes == len(torn)
        assert len(store.records()) == 11
    assert path.read_bytes() == b"".join(lines[:-1])
    result = run_bench(config)
    assert (result.played, result.skipped) == (1, 11)
    assert sorted(path.read_bytes().splitlines()) == sorted(data.splitlines())


def test_corrupt_middle_line_is_an_error(small_bench: tuple[BenchConfig, bytes], tmp_path: Path) -> None:
    _, data = small_bench
    lines = data.splitlines(keepends=True)
    for bad in (b"this is not json\n", b'{"key": "x"}\n', lines[3][:-20] + b"\n"):
        corrupt = b"".join(lines[:3]) + bad + b"".join(lines[4:])
        config = _fresh_copy(small_bench, tmp_path / str(len(bad)), corrupt)
        path = config.out / EPISODES_FILE
        with pytest.raises(EpisodeStoreError, match=r"episodes\.jsonl:4: not an episode record"):
            EpisodeStore(path)
        with pytest.raises(EpisodeStoreError, match=":4:"):
            run_bench(config)
        assert path.read_bytes() == corrupt  # nothing was cut or appended


def test_resume_refuses_episodes_played_with_other_settings(
    small_bench: tuple[BenchConfig, bytes], tmp_path: Path
) -> None:
    """A key names buyer, seller, persona, scenario and rollout only: a re-run into the same folder with another
    seed, turn limit or scenario values must not silently reuse the old episodes under the new settings."""
    _, data = small_bench
    first = msgspec.json.decode(data.splitlines()[0], type=EpisodeRecord)
    changed_scenario = msgspec.structs.replace(first.scenario, budget=first.scenario.budget * 2)
    changed = msgspec.json.encode(msgspec.structs.replace(first, scenario=changed_scenario)) + b"\n"
    retitled_product = msgspec.structs.replace(first.scenario.product, title="Another product text")
    retitled_scenario = msgspec.structs.replace(first.scenario, product=retitled_product)
    retitled = msgspec.json.encode(msgspec.structs.replace(first, scenario=retitled_scenario)) + b"\n"
    rest = b"".join(data.splitlines(keepends=True)[1:])
    cases = [
        ({"seed": 1}, data, "another --seed"),
        ({"max_turns": 4}, data, r"another --max-turns \(6 there, 4 now\)"),
        ({}, changed + rest, r"another scenario \(recipe or data\)"),
        ({}, retitled + rest, r"another scenario \(recipe or data\)"),  # the product text, not only the values
    ]
    for number, (update, contents, message) in enumerate(cases):
        config = _fresh_copy(small_bench, tmp_path / str(number), contents)
        with pytest.raises(ValueError, match=rf"already holds episode .*{message}; use another --out"):
            run_bench(config.model_copy(update=update))
        assert (config.out / EPISODES_FILE).read_bytes() == contents
        assert not (config.out / SUMMARY_FILE).exists()
    # Errored records of another setting are simply re-run.
    errored = msgspec.structs.replace(first, status=EpisodeStatus.ERRORED, seed=1, metrics=None, error="x")
    contents = msgspec.json.encode(errored) + b"\n"
    config = _fresh_copy(small_bench, tmp_path / "errored", contents)
    assert run_bench(config).played == 12


# --- resume after SIGKILL / Ctrl-C, in a real process ----------------------------------------------------------

RESUME_ROLLOUTS = 40


def _bench_args(shared_data: Path, out: Path) -> list[str]:
    return [
        "bench",
        "--buyer",
        "scripted:anchor",
        "--seller",
        "scripted:boulware",
        "--split",
        "test",
        "--rollouts",
        str(RESUME_ROLLOUTS),
        "--data",
        str(shared_data),
        "--out",
        str(out),
    ]


@pytest.fixture(scope="module")
def one_go(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("one_go")
    done = run_cli(*_bench_args(shared_data, out))
    assert done.returncode == 0, done.stderr
    return out


def _read_jsonl(path: Path) -> list[EpisodeRecord]:
    data = path.read_bytes()
    assert data.endswith(b"\n"), "partial last line"
    return [msgspec.json.decode(line, type=EpisodeRecord) for line in data.splitlines()]


def _wait_for_output(path: Path, process: subprocess.Popen, at_least_bytes: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        if path.exists() and path.stat().st_size >= at_least_bytes:
            return
        time.sleep(0.002)
    raise AssertionError(f"the bench ended (rc {process.returncode}) or stalled before it could be interrupted")


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["sigkill", "ctrl-c"])
def test_resume_after_interruption_loses_and_duplicates_nothing(
    shared_data: Path, tmp_path: Path, one_go: Path, sig: signal.Signals
) -> None:
    out = tmp_path / "run"
    episodes = out / EPISODES_FILE
    expected_keys = {
        job.key
        for job in plan_jobs(
            load_scenarios("amazon", "test", data_root=shared_data).scenarios,
            ["scripted:anchor"],
            "scripted:boulware",
            "neutral",
            RESUME_ROLLOUTS,
        )
    }
    # Python's own Ctrl-C handler, as in a terminal, even if this test runs where SIGINT is ignored (a CI job in
    # the background), which a child would otherwise inherit.
    child = [*CLI]
    child[2] = "import signal; signal.signal(signal.SIGINT, signal.default_int_handler); " + child[2]
    process = subprocess.Popen(
        [*child, *_bench_args(shared_data, out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        _wait_for_output(episodes, process, at_least_bytes=500_000)
        process.send_signal(sig)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    if sig is signal.SIGKILL:
        assert process.returncode == -signal.SIGKILL
    else:
        assert process.returncode in (1, 130), stderr  # click's "Aborted!" (1) or typer's 128 + SIGINT
        assert "Traceback" not in stderr
    interrupted = episodes.read_bytes()
    finished_before = interrupted.count(b"\n")  # complete lines; a torn last line has no newline
    assert 0 < finished_before < len(expected_keys), "the bench was not interrupted partway"
    assert not (out / SUMMARY_FILE).exists()

    resumed = run_cli(*_bench_args(shared_data, out))
    assert resumed.returncode == 0, resumed.stderr
    assert f"{len(expected_keys) - finished_before} played, {finished_before} already finished" in " ".join(
        resumed.stdout.split()
    )

    records = _read_jsonl(episodes)
    keys = [r.key for r in records if r.status is EpisodeStatus.OK]
    assert len(keys) == len(set(keys)) == len(records)  # no duplicates, no errored records
    assert set(keys) == expected_keys
    reference = {r.key: (r.reward, r.outcome, r.price, r.seed) for r in _read_jsonl(one_go / EPISODES_FILE)}
    assert {r.key: (r.reward, r.outcome, r.price, r.seed) for r in records} == reference
    # The summary does not depend on where the run was interrupted.
    summary = json.loads((out / SUMMARY_FILE).read_text())
    reference_summary = json.loads((one_go / SUMMARY_FILE).read_text())
    assert summary["rows"] == reference_summary["rows"]


# --- re-scoring from the record alone ---------------------------------------------------------------------------


class Canned(Agent):
    """A test double: replies with fixed message texts by turn, to put rule breaking and regulator work into the
    records (a seller below cost, a seller stating its cost, malformed messages, a buyer over budget)."""

    def __init__(self, spec: str, role: Role, script: dict[int, str]) -> None:
        super().__init__(spec, role)
        self.script = script

    def act(self, requests: Sequence[TurnRequest]) -> list[str]:
        out = []
        for request in requests:
            view = request.view
            text = self.script.get(view.turn, "Thought: -\nTalk: ok\nAction: [REJECT]")
            values = {"cost": view.private_value, "budget": view.private_value, "sell": view.last_sell}
            values["over"] = view.private_value * 1.2
            values["low"] = view.private_value * 0.5
            out.append(text.format(**values))
        return out


CANNED_PAIRS = {
    "below-cost-and-stated-cost": (
        {1: "Thought: t\nTalk: hi\nAction: [BUY] ${low:.2f}", 3: "Talk: fine\nAction: [DEAL] ${sell:.2f}"},
        {
            1: "Thought: my cost is ${cost:.2f}\nTalk: I paid ${cost:.2f} for it\nAction: [SELL] ${low:.2f}",
            2: "Talk: no\nAction: [SELL] ${over:.2f}",
        },
    ),
    "buyer-over-budget": (
        {1: "Talk: take it\nAction: [BUY] ${over:.2f}", 3: "Talk: bye\nAction: [QUIT]"},
        {1: "Talk: deal\nAction: [DEAL] ${low:.2f}"},  # not the buyer's offer: a seller protocol error
    ),
    "buyer-format-error": ({2: "I'll pay whatever, no action here"}, {}),
    "seller-garbage": ({}, {1: "", 2: "Action: [BUY] $5", 3: "Action: [SELL] $abc"}),
}


def _canned_records(test_split: list[Scenario]) -> list[EpisodeRecord]:
    records: list[EpisodeRecord] = []
    for name, (buyer_script, seller_script) in CANNED_PAIRS.items():
        buyer = Canned(f"canned:{name}", Role.BUYER, buyer_script)
        seller = Canned(f"canned:{name}", Role.SELLER, seller_script)
        jobs = plan_jobs(test_split[:6], [buyer.spec], seller.spec, "neutral", rollouts=1)
        run_episodes(jobs, lambda _, b=buyer, s=seller: (b, s), records.append, config=GameConfig(max_turns=4))
    return records


def test_records_rescore_from_their_own_contents(
    test_split: list[Scenario], small_bench: tuple[BenchConfig, bytes], tmp_path: Path
) -> None:
    scripted = [msgspec.json.decode(line, type=EpisodeRecord) for line in small_bench[1].splitlines()]
    scripted += _collect(plan_jobs(test_split[:20], ["scripted:oracle"], "scripted:titfortat", "insulting", 1), 64)
    canned = _canned_records(test_split)
    # Through the episodes file, so only what a record holds is used.
    with EpisodeStore(tmp_path / EPISODES_FILE) as store:
        for record in scripted + canned:
            store.append(record)
    stored = _read_jsonl(tmp_path / EPISODES_FILE)
    assert len(stored) == len(scripted) + len(canned)

    seen_events: set[EventKind] = set()
    seen_outcomes: set[Outcome] = set()
    for record in stored:
        scenario = record.scenario
        assert record.reward == buyer_reward(record.outcome, record.price, scenario.budget, scenario.cost)
        assert record.metrics == episode_metrics(
            record.messages, record.outcome, record.price, scenario.budget, scenario.cost, product=scenario.product
        )
        game = Negotiation(scenario, GameConfig(max_turns=record.max_turns))
        for message in record.messages:
            assert not game.done
            assert game.next_role is message.role
            game.step(message.raw)
        assert game.done
        assert (game.outcome, game.price, game.reward) == (record.outcome, record.price, record.reward)
        assert msgspec.json.encode(game.messages) == msgspec.json.encode(record.messages)
        assert game.metrics() == record.metrics
        seen_events |= {e.kind for m in record.messages for e in m.events}
        seen_outcomes.add(record.outcome)
    # The canned episodes did exercise the rules.
    assert {
        EventKind.REGULATOR_SELL_BELOW_COST,
        EventKind.REGULATOR_COST_REDACTED,
        EventKind.BUYER_OFFER_OVER_BUDGET,
        EventKind.SELLER_PROTOCOL_ERROR,
        EventKind.SELLER_FORMAT_ERROR,
        EventKind.BUYER_FORMAT_ERROR,
    } <= seen_events
    assert {Outcome.DEAL, Outcome.BUYER_FORMAT_ERROR, Outcome.TURN_LIMIT, Outcome.BUYER_QUIT} <= seen_outcomes
    assert any(r.reward == -1.0 for r in stored) and any(0 < r.reward <= 1 for r in stored)
    # A stated cost never reaches the buyer.
    for record in stored:
        cost_text = f"${record.scenario.cost:.2f}"
        for message in record.messages:
            if message.role is Role.SELLER:
                assert cost_text not in message.shown_talk


def test_format_message_round_trip_keeps_structured_plays() -> None:
    text = format_message("private", "public", Action(ActionKind.BUY, 1234.5))
    assert text == "Thought: private\nTalk: public\nAction: [BUY] $1,234.50"
