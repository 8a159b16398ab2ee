"""The recorded CPU experiment's summary (``bench/train_cpu_experiment.py``): the markdown table BENCHMARKS.md
shows. The experiment itself is a benchmark (hours), so this checks the pure function that writes its table."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

pytest.importorskip("trl")
BENCH = Path(__file__).resolve().parents[1] / "bench"


@pytest.fixture(scope="module")
def experiment():  # noqa: ANN201
    sys.path.insert(0, str(BENCH))
    try:
        yield importlib.import_module("train_cpu_experiment")
    finally:
        sys.path.remove(str(BENCH))


def summary_row(buyer: str, kind: str, opponent: str, reward: float) -> dict:
    return {
        "buyer": buyer,
        "kind": kind,
        "opponent": opponent,
        "n": 768,
        "reward": reward,
        "reward_ci": [reward - 0.02, reward + 0.02],
        "deal_rate": 0.95,
        "overshoot": 0.0,
        "format_errors": 0.0,
        "bargained_ratio": 0.7,
        "ci_n": 24,
        "ci_overshoot": 0.0,
    }


def test_every_teacher_of_a_mixture_has_its_own_line(experiment) -> None:  # noqa: ANN001
    """Four teachers share the kind "teacher": each keeps its own numbers and label (a table keyed by kind showed
    the last teacher's numbers under the first one's name)."""
    teachers = {"scripted:reader?opening=0.01": 0.750, "scripted:reader": 0.718, "scripted:reader?split=0.4": 0.650}
    rows = [summary_row(spec, "teacher", "mixture", reward) for spec, reward in teachers.items()]
    rows += [
        summary_row("scripted:oracle", "oracle", "mixture", 0.928),
        summary_row("hf:runs/x/grpo/final", "grpo", "mixture", 0.711),
        summary_row("hf:runs/x/sft/final", "sft", "mixture", 0.638),
        summary_row("hf:runs/x/sft/final", "sft", "a Boulware seller", 0.1),
        summary_row("scripted:naive", "other", "mixture", 0.1),
    ]
    table = experiment.summary_markdown(rows)
    reward_lines = table.split("\n\n")[0].splitlines()[2:]
    labels = [line.split(" | ")[0] for line in reward_lines]
    assert labels == [
        "| after SFT",
        "| after SFT + GRPO",
        *(f"| SFT teacher `{spec}`" for spec in teachers),
        "| `scripted:oracle` (knows cost and strategy)",
    ]
    for line, reward in zip(reward_lines[2:5], teachers.values(), strict=True):
        assert f"{reward:+.3f}" in line
    assert reward_lines[0].endswith("| +0.638 [+0.618, +0.658] | +0.100 [+0.080, +0.120] |")
    assert reward_lines[1].endswith("| +0.711 [+0.691, +0.731] | – |")
    assert "scripted:naive" not in table
    assert table.count("SFT teacher") == 2 * len(teachers)  # the reward table and the mixture's columns


def test_the_episodes_ship_with_the_results_and_read_back(experiment, shared_data: Path, tmp_path: Path) -> None:  # noqa: ANN001
    """A recorded claim ships its episodes: every evaluation episode, transcripts included, gzip JSONL sorted by
    key (the same bytes on a re-summary), one record per key even where tables share a cell."""
    import gzip

    import msgspec

    from counteroffer.evaluate.bench import BenchConfig, run_bench
    from counteroffer.game.records import EpisodeRecord

    bench = run_bench(
        BenchConfig(buyers=["scripted:anchor"], seller="scripted:linear", split="test", limit=3, rollouts=2,
                    out=tmp_path / "bench", data_root=str(shared_data))
    )  # fmt: skip
    records = bench.episodes_path.read_bytes().splitlines()
    decoded = [msgspec.json.decode(line, type=EpisodeRecord) for line in records]
    cells = {"cell-a": decoded, "cell-b": decoded[:2]}  # a cell shared by two tables
    shipped = experiment.ship_episodes(cells, tmp_path)
    first = (tmp_path / experiment.EPISODES_FILE).read_bytes()
    assert shipped["count"] == 6 and shipped["bytes"] == len(first)
    back = [msgspec.json.decode(line, type=EpisodeRecord) for line in gzip.decompress(first).splitlines()]
    assert sorted(r.key for r in back) == [r.key for r in back] == sorted(r.key for r in decoded)
    assert all(r.messages and r.messages[0].shown_talk for r in back)
    experiment.ship_episodes({"cell-b": decoded[:2], "cell-a": decoded[::-1]}, tmp_path)
    assert (tmp_path / experiment.EPISODES_FILE).read_bytes() == first


def test_a_run_counts_the_configurations_scored_on_test_before_it(experiment, tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    from counteroffer.train import load_config

    ledger = tmp_path / "test-evaluations.jsonl"
    ledger.write_text('{"config": "historical:a"}\n{"config": "historical:b"}\n')
    monkeypatch.setattr(experiment, "LEDGER", ledger)
    recipe = Path(__file__).resolve().parents[1] / "configs" / "cpu-smollm2.yaml"
    config = load_config(recipe)
    assert experiment.test_evaluations(recipe, config, tmp_path) == 3
    assert experiment.test_evaluations(recipe, config, tmp_path) == 3  # a re-summary is the same evaluation
    other = load_config(recipe, {"grpo.steps": 7})
    assert experiment.test_evaluations(recipe, other, tmp_path) == 4
    assert len(ledger.read_text().splitlines()) == 4
