"""The recorded CPU experiment: SFT then GRPO of the bundled SmolLM2-135M with configs/cpu-smollm2.yaml, evaluated
on the 128 test products against the config's scripted seller before SFT, after SFT and after GRPO, next to
``scripted:anchor``.

    python bench/train_cpu_experiment.py [--config configs/cpu-smollm2.yaml] [--results bench/results/cpu-smollm2]

Writes ``results.json`` (the table and timings) and ``curves.png`` (GRPO learning curves, SFT loss) into
``--results``; BENCHMARKS.md quotes them. Checkpoints and evaluation episodes go to the config's ``out``. Every
stage resumes: a re-run skips finished evaluations and continues training from the last checkpoint.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from counteroffer.evaluate.bench import BenchConfig, run_bench
from counteroffer.train import load_config, run_grpo, run_sft
from counteroffer.train.logs import LOG_FILE

EVAL_LLM = "dtype=bfloat16&max_batch=64"


def evaluate(config, label: str, buyer: str, results: Path) -> dict:  # noqa: ANN001
    settings = config.evaluation
    started = time.perf_counter()
    bench = run_bench(
        BenchConfig(
            buyers=[buyer],
            seller=settings.seller,
            persona=settings.persona,
            split=settings.split,
            rollouts=settings.rollouts,
            limit=settings.scenarios,
            max_turns=config.max_turns,
            seed=config.seed,
            out=config.out / "eval" / label,
        )
    )
    row = bench.rows[0].overall
    print(f"{label}: reward {row.reward.mean:.3f} format errors {row.format_error_rate.mean:.3f}", flush=True)
    return {
        "model": label,
        "buyer": buyer,
        "episodes": row.episodes,
        "seconds": round(time.perf_counter() - started, 1),
        **{
            name: {"mean": estimate.mean, "ci_low": estimate.ci_low, "ci_high": estimate.ci_high}
            for name, estimate in row
            if hasattr(estimate, "mean")
        },
    }


def read_log(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def plot(config, results: Path) -> None:  # noqa: ANN001
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grpo = [e for e in read_log(config.grpo_dir / LOG_FILE) if e["kind"] == "train" and "game" in e]
    sft = [e for e in read_log(config.sft_dir / LOG_FILE) if e["kind"] == "train" and "loss" in e["trainer"]]
    panels = [
        ("reward", "GRPO: mean episode reward"),
        ("deal_rate", "GRPO: deal rate"),
        ("first_offer_ratio", "GRPO: first offer / budget"),
        ("format_error_rate", "GRPO: format-error rate"),
        ("bargained_ratio", "GRPO: bargained ratio (deals)"),
    ]
    figure, axes = plt.subplots(2, 3, figsize=(13, 7))
    for axis, (metric, title) in zip(axes.flat, panels, strict=False):
        steps = [e["step"] for e in grpo if e["game"].get(metric) is not None]
        values = [e["game"][metric] for e in grpo if e["game"].get(metric) is not None]
        axis.plot(steps, values, marker="o")
        axis.set_title(title)
        axis.set_xlabel("step")
    axis = axes.flat[-1]
    axis.plot([e["step"] for e in sft], [e["trainer"]["loss"] for e in sft], color="tab:red")
    axis.set_title("SFT: loss on buyer tokens")
    axis.set_xlabel("step")
    figure.tight_layout()
    figure.savefig(results / "curves.png", dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=Path("configs/cpu-smollm2.yaml"))
    parser.add_argument("--results", type=Path, default=Path("bench/results/cpu-smollm2"))
    args = parser.parse_args()
    config = load_config(args.config)
    results = args.results
    results.mkdir(parents=True, exist_ok=True)
    prompts = config.prompts
    caps = f"description_chars={prompts.description_chars}&features_chars={prompts.features_chars}"
    base = f"hf:{config.model}?{caps}&max_new_tokens={config.grpo.max_new_tokens}&{EVAL_LLM}"
    timings: dict[str, float] = {}
    table = [evaluate(config, "scripted-anchor", "scripted:anchor", results)]
    table.append(evaluate(config, "base", base, results))
    for stage, train in (("sft", run_sft), ("grpo", run_grpo)):
        final = config.out / stage / "final"
        if not final.is_dir():  # a finished stage is not trained again when the script is re-run
            started = time.perf_counter()
            train(config, resume=True)
            timings[f"{stage}_seconds"] = round(time.perf_counter() - started, 1)
        table.append(evaluate(config, stage, f"hf:{final}?{EVAL_LLM}", results))
    (results / "results.json").write_text(
        json.dumps({"config": str(args.config), "timings": timings, "table": table}, indent=2) + "\n"
    )
    plot(config, results)
    for row in table:
        print(
            f"{row['model']:>20}  reward {row['reward']['mean']:+.3f}  deal {row['deal_rate']['mean']:.3f}  "
            f"format errors {row['format_error_rate']['mean']:.3f}  first offer {row['first_offer_ratio']['mean']}"
        )


if __name__ == "__main__":
    main()
