"""The GPU check script (``bench/gpu_check.py``, issue 14) run end to end on the CPU with ``--tiny``, so that the
script a GPU machine runs is the one CI runs: generation at two batch sizes, SFT and GRPO steps (full and LoRA)
with SFT changing the weights, and the engine's log-probabilities against a fresh forward pass."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("trl")
SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "gpu_check.py"


def tiny_check(out: Path, data: Path, *extra: str) -> subprocess.CompletedProcess:
    command = [sys.executable, str(SCRIPT), "--tiny", "--device", "cpu", "--out", str(out), "--data", str(data)]
    return subprocess.run([*command, *extra], capture_output=True, text=True, timeout=1100, check=False)


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_the_gpu_check_runs_tiny_on_cpu(tmp_path: Path, shared_data: Path) -> None:
    result = tiny_check(tmp_path, shared_data)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert report["errors"] == {} and report["dtype"] == "float32"
    assert {(r["role"], r["batch"]) for r in report["generation"]} == {
        (role, batch) for role in ("buyer", "seller") for batch in (1, 4)
    }
    assert all(r["tokens_per_second"] > 0 and r["generated_tokens"] > 0 for r in report["generation"])
    assert [r["lora"] for r in report["training"]] == [False, True]
    for run in report["training"]:
        assert run["losses_finite"] and run["sft_changed_weights"] and run["grpo_rollout_seconds"]
        # A tiny run's groups may all be flat (no gradient); GRPO changed the weights exactly when a step had one.
        assert run["grpo_grad_norms"] and run["grpo_changed_weights"] == any(g > 0 for g in run["grpo_grad_norms"])
    assert report["logprobs"]["within_tolerance"] and report["logprobs"]["tokens"] > 0
    assert report["logprobs"]["max_abs_difference"] <= 2e-3


@pytest.mark.slow
def test_the_gpu_check_runs_only_the_parts_asked_for(tmp_path: Path, shared_data: Path) -> None:
    """``--parts generation`` (the CPU side of the GPU ratio) passes without a training run or a log-prob check."""
    result = tiny_check(tmp_path, shared_data, "--parts", "generation")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert set(report["seconds"]) == {"generation"} and "training" not in report and "logprobs" not in report
    assert len(report["generation"]) == 4 and all(r["generated_tokens"] > 0 for r in report["generation"])


def test_the_gpu_check_names_the_parts_it_knows(tmp_path: Path, shared_data: Path) -> None:
    result = tiny_check(tmp_path, shared_data, "--parts", "generation,benchmarks")
    assert result.returncode == 2
    assert "unknown ['benchmarks']" in result.stderr and "generation, training, logprobs" in result.stderr
