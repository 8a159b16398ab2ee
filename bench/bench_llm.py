"""Generated tokens per second through the rollout engine vs raw ``model.generate``, at several batch sizes.

Both sides of each comparison run in the same process on the same loaded model, with the same prompts (the
buyer's turn-1 chats of the AmazonHistoryPrice test products), the same sampling (temperature 1.0, as the
paper's buyer) and the same ``max_new_tokens``:

- ``raw``: tokenise with left padding and call ``model.generate`` on ``batch`` chats at a time;
- ``engine``: ``run_episodes`` with an ``hf:`` buyer against ``scripted:boulware`` at concurrency ``batch``
  (prompt building, batching, parsing, the game and the records included).

Tokens are counted the same way on both sides (the generated text up to the end-of-turn token, re-tokenised).
The ratio engine/raw is the number to watch (target ≥ 0.9 at batch 8); peak RSS is reported after each stage.

Usage: python bench/bench_llm.py [--batches 1 4 8 16] [--rounds 2] [--max-new-tokens 48] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import time
from pathlib import Path

import torch

from counteroffer.agents import make_agent
from counteroffer.agents.llm.backend import Sampling
from counteroffer.agents.llm.hf import load_chat_model
from counteroffer.agents.llm.prompts import PromptBuilder
from counteroffer.catalog import load_scenarios
from counteroffer.game import Negotiation, Role
from counteroffer.rollout.runner import plan_jobs, run_episodes


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4, 8, 16])
    parser.add_argument("--rounds", type=int, default=2, help="generate calls (raw) / episode waves (engine)")
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    torch.manual_seed(0)
    chat_model = load_chat_model(args.model)
    tokenizer = chat_model.tokenizer
    sampling = Sampling(temperature=1.0, max_new_tokens=args.max_new_tokens)
    scenarios = load_scenarios("amazon", "test").scenarios
    builder = PromptBuilder(Role.BUYER)
    spec = f"hf:{args.model}?max_new_tokens={args.max_new_tokens}"

    def token_count(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    results = []
    print(f"model {args.model}, max_new_tokens {args.max_new_tokens}, torch threads {torch.get_num_threads()}")
    for batch in args.batches:
        chat_model.max_batch = batch
        needed = batch * args.rounds
        chats = [builder.chat(Negotiation(s).view(Role.BUYER)) for s in scenarios[:needed]]
        chat_model.generate(chats[:batch], sampling, seed=1)  # warm-up at this shape

        start, raw_tokens = time.perf_counter(), 0
        for wave in range(args.rounds):
            outputs = chat_model.generate(chats[wave * batch : (wave + 1) * batch], sampling, seed=wave)
            raw_tokens += sum(token_count(o.text) for o in outputs)
        raw_s = time.perf_counter() - start
        raw_rss = peak_rss_mb()

        buyer = make_agent(spec, Role.BUYER)
        seller = make_agent("scripted:boulware", Role.SELLER)
        jobs = plan_jobs(scenarios[:needed], [spec], "scripted:boulware", "neutral", rollouts=1)
        records: list = []
        start = time.perf_counter()
        pair = (buyer, seller)
        run_episodes(jobs, lambda _, pair=pair: pair, records.append, concurrency=batch)
        engine_s = time.perf_counter() - start
        engine_tokens = sum(token_count(m.raw) for r in records for m in r.messages if m.role is Role.BUYER)
        row = {
            "batch": batch,
            "raw_tokens_per_s": raw_tokens / raw_s,
            "engine_tokens_per_s": engine_tokens / engine_s,
            "raw_tokens": raw_tokens,
            "engine_tokens": engine_tokens,
            "engine_buyer_turns": sum(1 for r in records for m in r.messages if m.role is Role.BUYER),
            "peak_rss_mb_after_raw": raw_rss,
            "peak_rss_mb_after_engine": peak_rss_mb(),
        }
        row["engine_over_raw"] = row["engine_tokens_per_s"] / row["raw_tokens_per_s"]
        results.append(row)
        print(
            f"batch {batch:>2}: raw {row['raw_tokens_per_s']:6.1f} tok/s, engine {row['engine_tokens_per_s']:6.1f} "
            f"tok/s, engine/raw {row['engine_over_raw']:.2f}, peak RSS {row['peak_rss_mb_after_engine']:.0f} MB"
        )
    if args.json:
        report = {
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
            f"torch {torch.__version__}",
            "model": args.model,
            "max_new_tokens": args.max_new_tokens,
            "results": results,
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
