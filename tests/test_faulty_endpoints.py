"""A 500-episode bench, 32 episodes in flight, against an endpoint that fails at random: 500s, 429s with
Retry-After, stalls past the client's timeout, cut and dropped connections, malformed JSON. The run completes;
every episode is scored or marked errored; resuming re-runs exactly the errored ones; in the end all 500 are
scored, none lost and none twice.

The endpoint is the fake OpenAI-compatible server of ``fake_openai_server.py`` on loopback: a real model server
cannot be made to fail on demand.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import pytest
from fake_openai_server import FakeOpenAI, serve

from counteroffer.evaluate.bench import BenchConfig, run_bench

FAULTS = {"status:500": 0.08, "status:429:0.2": 0.05, "hang:1.5": 0.03, "cut": 0.04, "drop": 0.04, "malformed": 0.06}


@pytest.mark.slow
def test_a_bench_against_a_faulty_endpoint_loses_and_repeats_nothing(shared_data: Path, tmp_path: Path) -> None:
    with serve(FakeOpenAI()) as server:
        server.fake.chaos(FAULTS, seed=1)
        config = BenchConfig(
            buyers=[server.spec("timeout=0.5&retries=2&backoff=0.01")],  # few retries: some episodes must fail
            seller="scripted:linear",
            split="test",
            limit=125,
            rollouts=4,
            max_turns=4,
            concurrency=32,
            data_root=str(shared_data),
            out=tmp_path / "run",
        )
        runs = [run_bench(config)]
        while runs[-1].rows[0].errored and len(runs) < 8:
            runs.append(run_bench(config))
        behaviours = Counter(seen.behaviour for seen in server.fake.seen())
        in_flight = server.fake.max_in_flight

    assert all(behaviours[fault] > 0 for fault in FAULTS), behaviours  # every kind of fault happened
    assert 1 < in_flight <= 32
    first = runs[0]
    assert first.played == 500 and first.rows[0].episodes + first.rows[0].errored == 500
    assert first.rows[0].errored > 0  # the faults cost some episodes their retries
    for before, after in zip(runs, runs[1:], strict=False):
        assert after.played == before.rows[0].errored  # a resume plays only the errored episodes
    assert runs[-1].rows[0].errored == 0 and runs[-1].rows[0].episodes == 500

    lines = [json.loads(line) for line in (tmp_path / "run" / "episodes.jsonl").read_text().splitlines()]
    ok = [line["key"] for line in lines if line["status"] == "ok"]
    assert len(ok) == len(set(ok)) == 500  # every episode scored exactly once
    errored = [line for line in lines if line["status"] == "errored"]
    assert len(lines) == 500 + len(errored) and all(line["error"] for line in errored)  # kept for the audit


def test_requests_spread_over_servers_and_avoid_a_failing_one(shared_data: Path, tmp_path: Path) -> None:
    """One buyer spec naming two servers. A 200-episode bench shares its requests between them, the faster server
    taking more (least busy first). With one server answering every request with a 500 and then with its port
    closed, the retries land on the other, no episode fails, and the broken server sees few requests (it is
    rested after failing)."""
    with serve(FakeOpenAI()) as fast, serve(FakeOpenAI()) as slow:
        fast.fake.delay, slow.fake.delay = 0.002, 0.02  # requests overlap, so the least-busy choice matters
        spec = f"openai:fake@{fast.base_url},{slow.base_url}?timeout=2&retries=3&backoff=0.01&concurrency=16"
        config = BenchConfig(buyers=[spec], seller="scripted:linear", split="test", limit=50, rollouts=4, max_turns=4,
                             concurrency=32, data_root=str(shared_data), out=tmp_path / "healthy")  # fmt: skip
        assert run_bench(config).rows[0].errored == 0
        shares = [len(fast.fake.seen()), len(slow.fake.seen())]
        assert shares[1] >= 0.1 * sum(shares) and shares[0] > 0.5 * sum(shares), shares

        slow.fake.set_default("status:500")
        for server in (fast, slow):
            server.fake.requests.clear()
        result = run_bench(config.model_copy(update={"out": tmp_path / "one-down"}))
        failed, answered = len(slow.fake.seen()), len(fast.fake.seen())
        assert result.rows[0].errored == 0 and result.rows[0].episodes == 200
        assert 0 < failed < 0.1 * answered, (failed, answered)

    with serve(FakeOpenAI()) as alive:
        dead = "http://127.0.0.1:9/v1"  # nothing listens there: connections are refused
        spec = f"openai:fake@{dead},{alive.base_url}?timeout=2&retries=3&backoff=0.01&concurrency=16"
        result = run_bench(config.model_copy(update={"buyers": [spec], "out": tmp_path / "port-closed"}))
        assert result.rows[0].errored == 0 and result.rows[0].episodes == 200


def test_a_burst_of_failures_rests_a_server_once_and_a_success_ends_the_rest() -> None:
    """The requests in flight when a server breaks fail together: one failure, a one-second rest, not a streak that
    would rest a healthy server for a minute after a blip."""
    from counteroffer.models.endpoint import FIRST_REST_S, EndpointBackend

    backend = EndpointBackend("m", ["http://127.0.0.1:9/v1", "http://127.0.0.1:10/v1"])
    try:
        for _ in range(16):
            backend._record(0, failed=True)
        rest = backend._resting_until[0] - time.monotonic()
        assert 0 < rest <= FIRST_REST_S and backend._failures[0] == 1
        assert {backend._pick(avoid=None) for _ in range(4)} == {1}  # the resting server is passed over
        assert backend._pick(avoid=1) == 0  # unless it is the only other choice
        backend._record(0, failed=False)
        assert backend._resting_until[0] == 0.0 and backend._failures[0] == 0
        assert {backend._pick(avoid=None) for _ in range(4)} == {0, 1}  # back in turn
    finally:
        backend.close()
