"""Generated tokens per second through the rollout engine vs raw ``model.generate``, at several batch sizes.

Both sides of each comparison run in the same process on the same loaded model, with the same prompts (the
buyer's chats on the AmazonHistoryPrice test products), the same sampling (greedy by default, so both sides
generate the same tokens and the ratio measures only the engine's overhead; ``--temperature 1`` for the paper's
buyer setting) and the same ``max_new_tokens``:

- ``engine``: ``run_episodes`` with an ``hf:`` buyer against ``scripted:boulware`` at concurrency ``batch``
  (prompt building, batching, parsing, the game and the records included); every batch of chats it sends to
  the model is recorded;
- ``raw``: then, on exactly those batches, the same token ids through
  :class:`~counteroffer.models.reference.GenerateReference` (plain ``model.generate``, padded on the left, every
  prompt fed whole) and decoded: the same work without the engine. (Until issue 33 this side let the tokenizer pad
  on the right, so ``generate`` continued from pad tokens: not a baseline.)

Tokens are counted the same way on both sides (the generated text up to the end-of-turn token, re-tokenised).
The ratio engine/raw is the number to watch (target ≥ 3 at the same batch and dtype); peak RSS is reported after each
stage.

Usage: python bench/bench_llm.py [--batches 1 4 8 16] [--rounds 2] [--max-new-tokens 48] [--dtype float32]
       [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import torch

from counteroffer.agents import make_agent
from counteroffer.catalog import load_scenarios
from counteroffer.experiment.machine import describe_machine
from counteroffer.game import Negotiation, Role
from counteroffer.models.backend import Sampling
from counteroffer.models.hf import load_chat_model
from counteroffer.models.reference import GenerateReference
from counteroffer.prompts.render import PromptBuilder
from counteroffer.rollout.runner import plan_jobs, run_episodes


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4, 8, 16])
    parser.add_argument("--rounds", type=int, default=3, help="episodes per batch slot")
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument(
        "--temperature",
        type=float,
        default=0.0,
        help="0 (greedy, the default) makes both sides generate identical tokens, so the ratio is pure overhead",
    )
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    torch.manual_seed(0)
    chat_model = load_chat_model(args.model, dtype=args.dtype)
    tokenizer = chat_model.tokenizer
    sampling = Sampling(temperature=args.temperature, max_new_tokens=args.max_new_tokens)
    scenarios = load_scenarios("amazon", "test").scenarios
    builder = PromptBuilder(Role.BUYER)
    spec = f"hf:{args.model}?max_new_tokens={args.max_new_tokens}&temperature={args.temperature}&dtype={args.dtype}"

    def token_count(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    results = []
    print(f"model {args.model}, max_new_tokens {args.max_new_tokens}, torch threads {torch.get_num_threads()}")
    for batch in args.batches:
        chat_model.max_batch = batch
        needed = batch * args.rounds
        warm_chats = [builder.chat(Negotiation(s).view(Role.BUYER)) for s in scenarios[:batch]]
        chat_model.generate(warm_chats, sampling, seed=1)  # warm-up at this shape
        chat_model.engine.reset()  # ... whose prompts must not be in the cache when the engine is timed

        # Engine first, recording every batch of chats it sends to the model ...
        sent: list[list] = []
        real_generate = chat_model.generate

        def recording_generate(chats, sampling, seed, real_generate=real_generate, sent=sent):
            sent.append(list(chats))
            return real_generate(chats, sampling, seed)

        chat_model.generate = recording_generate  # type: ignore[method-assign]
        buyer = make_agent(spec, Role.BUYER)
        seller = make_agent("scripted:boulware", Role.SELLER)
        jobs = plan_jobs(scenarios[:needed], [spec], "scripted:boulware", "neutral", rollouts=1)
        records: list = []
        pair = (buyer, seller)
        start = time.perf_counter()
        run_episodes(jobs, lambda _, pair=pair: pair, records.append, concurrency=batch)
        engine_s = time.perf_counter() - start
        del chat_model.generate
        engine_tokens = sum(token_count(m.raw) for r in records for m in r.messages if m.role is Role.BUYER)
        engine_rss = peak_rss_mb()

        # ... then plain model.generate on exactly those batches: the same token ids, padded on the left.
        raw = GenerateReference(chat_model.model, tokenizer.pad_token_id, chat_model.stop_token_ids, max_batch=batch)
        start, raw_tokens = time.perf_counter(), 0
        for index, chats in enumerate(sent):
            prompts = [tokenizer(chat_model.render(chat), add_special_tokens=False)["input_ids"] for chat in chats]
            for turn in raw.generate(prompts, sampling, [index] * len(prompts)):
                ended = bool(turn.ids) and turn.ids[-1] in chat_model.stop_token_ids
                raw_tokens += token_count(
                    tokenizer.decode(turn.ids[:-1] if ended else turn.ids, skip_special_tokens=True)
                )
        raw_s = time.perf_counter() - start
        row = {
            "batch": batch,
            "generate_calls": len(sent),
            "raw_tokens_per_s": raw_tokens / raw_s,
            "engine_tokens_per_s": engine_tokens / engine_s,
            "raw_tokens": raw_tokens,
            "engine_tokens": engine_tokens,
            "engine_buyer_turns": sum(1 for r in records for m in r.messages if m.role is Role.BUYER),
            "peak_rss_mb_after_engine": engine_rss,
            "peak_rss_mb_after_raw": peak_rss_mb(),
        }
        row["engine_over_raw"] = row["engine_tokens_per_s"] / row["raw_tokens_per_s"]
        results.append(row)
        print(
            f"batch {batch:>2}: raw {row['raw_tokens_per_s']:6.1f} tok/s, engine {row['engine_tokens_per_s']:6.1f} "
            f"tok/s, engine/raw {row['engine_over_raw']:.2f} ({len(sent)} generate calls), "
            f"peak RSS {row['peak_rss_mb_after_raw']:.0f} MB"
        )
    if args.json:
        report = {
            "machine": describe_machine(),
            "model": args.model,
            "dtype": args.dtype,
            "max_new_tokens": args.max_new_tokens,
            "results": results,
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
