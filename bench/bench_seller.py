"""How a trained LLM seller plays (issue 12): its own messages, its concessions, the regulator, per persona.

    python bench/bench_seller.py --seller hf:runs/cpu-seller/sft/final [--products 16] [--out runs/seller-eval]

Scripted buyers (``--buyer``, several strategies) meet the seller in every persona on the first ``--products``
test products (4-turn games, one rollout); the untrained bundled model plays the same games in the neutral persona
on ``--baseline-products`` of them, as the baseline of how often a seller that was never trained needs the
scripted fallback. Writes ``OUT/seller_play.json`` (one row per seller and persona: re-asked and fallback turns,
regulator interventions, deal rate, seller reward) and prints it; every bench under ``OUT`` is resumable.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from counteroffer.evaluate.bench import BenchConfig, find_episode_files, run_bench
from counteroffer.evaluate.seller_play import summarize_seller_play
from counteroffer.experiment.machine import describe_machine
from counteroffer.prompts.render import SELLER_PERSONAS
from counteroffer.rollout.store import read_episodes
from counteroffer.train.config import load_config

BUYERS = ["scripted:anchor", "scripted:naive", "scripted:patient", "scripted:reader"]
CPU_RECIPE = Path(__file__).resolve().parents[1] / "configs" / "cpu-smollm2.yaml"  # its prompt format
UNTRAINED = f"hf:smollm2-135m?{load_config(CPU_RECIPE).prompts.spec_query()}&max_new_tokens=80"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seller", required=True, help="the seller's agent spec, e.g. hf:runs/cpu-seller/sft/final")
    parser.add_argument("--buyer", action="append", default=None, help=f"scripted buyers (default: {BUYERS})")
    parser.add_argument("--persona", action="append", default=None, help="personas (default: all)")
    parser.add_argument("--products", type=int, default=16)
    parser.add_argument("--baseline-products", type=int, default=8, help="0: no untrained baseline")
    parser.add_argument("--out", type=Path, default=Path("runs/seller-eval"))
    args = parser.parse_args()
    plans = [(args.seller, persona, args.products) for persona in args.persona or SELLER_PERSONAS]
    if args.baseline_products:
        plans.append((UNTRAINED, "neutral", args.baseline_products))
    for seller, persona, products in plans:
        name = "untrained" if seller == UNTRAINED else "trained"
        config = BenchConfig(
            buyers=args.buyer or BUYERS,
            seller=seller,
            persona=persona,
            split="test",
            limit=products,
            rollouts=1,
            max_turns=4,
            out=args.out / name / persona,
        )
        result = run_bench(config)
        print(f"{name} {persona}: {result.played} played, {result.skipped} already finished", flush=True)
    rows = summarize_seller_play(r for f in find_episode_files(args.out) for r in read_episodes(f))
    report = {
        "machine": describe_machine(),
        "command": f"python bench/bench_seller.py --seller {args.seller}",
        "rows": [row.model_dump(mode="json") for row in rows],
    }
    (args.out / "seller_play.json").write_text(json.dumps(report, indent=2) + "\n")
    for row in rows:
        print(
            f"{row.seller[:40]:40s} {row.persona:13s} n={row.episodes:4d} turns={row.seller_turns:4d} "
            f"re-asked={row.reask_rate:.1%} fallback={row.fallback_rate:.1%} "
            f"regulator/ep={row.regulator_interventions.mean:.2f} deal={row.deal_rate.mean:.1%} "
            f"seller reward={row.seller_reward.mean:+.3f}"
        )


if __name__ == "__main__":
    main()
