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
