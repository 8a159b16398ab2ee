"""kill -9 in the middle of a bench, several times at random moments, then resume: the episodes file ends up with
exactly the episodes of an uninterrupted run (same keys, same contents, no partial or repeated line).

(The GRPO counterpart, a training run killed between checkpoints, is in ``test_train_runs.py``.)
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import CLI, run_cli

BENCH = ["bench", "--buyer", "scripted:naive", "--buyer", "scripted:anchor", "--buyer", "scripted:oracle",
         "--seller", "scripted:boulware", "--split", "test", "--rollouts", "30", "--concurrency", "64"]  # fmt: skip
EPISODES = 3 * 128 * 30


def episodes(path: Path) -> list[dict]:
    data = path.read_bytes()
    assert data.endswith(b"\n"), "a partial last line"
    return [json.loads(line) for line in data.splitlines()]


@pytest.mark.slow
def test_bench_killed_at_random_moments_resumes_to_the_uninterrupted_result(shared_data: Path, tmp_path: Path) -> None:
    reference = run_cli(*BENCH, "--data", shared_data, "--out", tmp_path / "reference", timeout=300)
    assert reference.returncode == 0, reference.stderr
    expected = {e["key"]: e for e in episodes(tmp_path / "reference" / "episodes.jsonl")}
    assert len(expected) == EPISODES

    killed = tmp_path / "killed"
    path = killed / "episodes.jsonl"
    full_size = (tmp_path / "reference" / "episodes.jsonl").stat().st_size
    # Four random moments, as fractions of the finished file: at a given size, not after a given time, so that a
    # faster machine cannot finish the run before the kill.
    rng = random.Random(6)
    moments = sorted(rng.uniform(0.1, 0.9) for _ in range(4))
    for fraction in moments:
        command = [*CLI, *BENCH, "--data", str(shared_data), "--out", str(killed)]
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        process = subprocess.Popen(command, start_new_session=True, **quiet)
        deadline = time.monotonic() + 120
        while not (path.exists() and path.stat().st_size >= fraction * full_size):
            assert process.poll() is None, "the run ended before its kill"
            assert time.monotonic() < deadline
            time.sleep(0.001)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert path.stat().st_size < full_size  # it was killed mid-run each time

    resumed = run_cli(*BENCH, "--data", shared_data, "--out", killed, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    final = episodes(path)
    keys = [e["key"] for e in final]
    assert len(keys) == len(set(keys)) == EPISODES  # nothing lost, nothing twice
    for entry in final:
        assert entry == expected[entry["key"]]  # the same episode, byte for byte once decoded
