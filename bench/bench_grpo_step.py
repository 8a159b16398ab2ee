"""A GRPO step of the CPU recipe, before and after a change, timed by part, in one run.

    git worktree add /tmp/before COMMIT
    python bench/bench_grpo_step.py --sft runs/step-bench/sft/final --before /tmp/before [--steps 3]
        [--json bench/results/grpo-step.json]

Each side runs ``counteroffer train grpo configs/cpu-smollm2.yaml`` from the same SFT checkpoint for ``--steps``
steps (no validation curve), with its own source tree on ``PYTHONPATH``, one after the other; the first step is a
warm-up and is not counted. Reported per side, from its train log: the step's seconds (TRL's ``step_time``), the
rollout's seconds and, where the side logs it (``step_seconds``, from issue 33 on), the step's parts: policy
generation, the sellers and the game (rollout minus policy generation), log-probabilities, backward, optimizer.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from counteroffer.experiment.machine import describe_machine

HERE = Path(__file__).resolve().parent.parent


def run_side(source: Path, sft: Path, steps: int, work: Path) -> list[dict]:
    out = work / source.name
    (out / "sft").mkdir(parents=True)
    shutil.copytree(sft, out / "sft" / "final")
    command = [
        sys.executable, "-m", "counteroffer", "train", "grpo", str(HERE / "configs/cpu-smollm2.yaml"),
        "--set", f"out={out}", "--set", f"grpo.steps={steps}", "--set", "evaluation.every_steps=0",
        "--set", f"grpo.save_steps={steps + 1}", "--set", "evaluation.keep_best=false",
    ]  # fmt: skip
    environment = {**os.environ, "PYTHONPATH": str(source / "src")}
    subprocess.run(command, check=True, cwd=HERE, env=environment)
    lines = [json.loads(line) for line in (out / "grpo" / "train_log.jsonl").read_text().splitlines()]
    return [line for line in lines if line.get("kind") == "train" and "rollout" in line]


def side_summary(lines: list[dict]) -> dict:
    counted = lines[1:]  # the first step warms up
    summary = {
        "steps": len(counted),
        "step_seconds": statistics.mean(line["trainer"]["step_time"] for line in counted),
        "rollout_seconds": statistics.mean(line["rollout"]["seconds"] for line in counted),
        "generated_tokens": statistics.mean(line["rollout"]["generated"] for line in counted),
    }
    if all("step_seconds" in line for line in counted):
        parts = {
            part: statistics.mean(line["step_seconds"][part] for line in counted) for part in counted[0]["step_seconds"]
        }
        parts["sellers_and_game"] = parts["rollout"] - parts["policy_generation"]
        summary["parts"] = {part: round(value, 2) for part, value in parts.items()}
    return {name: round(value, 2) if isinstance(value, float) else value for name, value in summary.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sft", type=Path, required=True, help="the SFT checkpoint both sides start from")
    parser.add_argument("--before", type=Path, required=True, help="a source tree of the earlier commit")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        sides = {
            name: side_summary(run_side(source.resolve(), args.sft.resolve(), args.steps, Path(work)))
            for name, source in (("before", args.before), ("after", HERE))
        }
    report = {
        "command": f"python bench/bench_grpo_step.py --sft {args.sft} --before {args.before} --steps {args.steps}",
        "machine": describe_machine(),
        "before": sides["before"],
        "after": sides["after"],
        "step_seconds_before_over_after": round(sides["before"]["step_seconds"] / sides["after"]["step_seconds"], 2),
        "rollout_seconds_before_over_after": round(
            sides["before"]["rollout_seconds"] / sides["after"]["rollout_seconds"], 2
        ),
    }
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
