"""How close generation is to what the machine computes: the matrix-product limit and each path's share of it.

    python bench/bench_roofline.py [--batches 1 16 64 256] [--max-new-tokens 48] [--json bench/results/roofline.json]

1. **The limit.** The measured rate of ``torch.nn.functional.linear`` at the model's own shapes (every projection
   and the output head, weighted by how often a token meets it), for ``batch`` rows at a time, in float32 and, where
   the CPU computes it natively (AVX512-BF16/AMX), bfloat16. A token needs ``2 × (its matrices' weights)`` FLOPs,
   so a turn can go no faster than its prompt's tokens at the prefill rate (2,048 rows, the engine's prefill run)
   plus its generated tokens at the rate of ``batch`` rows: ``limit`` is the generated tokens over that time. Only
   matrix products are counted (not attention, sampling or Python), so no path can reach it.
2. **The paths**, each on the same prompts (the buyer's first turn on the recipe's compact prompt, one train
   product a row), greedy, at most ``--max-new-tokens`` tokens stopping at the end of the turn, a fresh cache:
   - ``engine``: counteroffer's :class:`~counteroffer.models.engine.CachedGenerator`;
   - ``generate``: :class:`~counteroffer.models.reference.GenerateReference`, plain left-padded ``model.generate``.
   Reported: generated tokens/s (prefill included: a turn's wall time), its share of the decode limit, and the
   share of turns whose greedy tokens the two paths agree on. Multi-turn generation (where the engine's prefix
   cache counts) is ``bench/bench_llm.py``; vLLM's CPU backend is ``bench/bench_vllm.py``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from counteroffer.catalog import load_scenarios
from counteroffer.experiment.machine import describe_machine
from counteroffer.game import Negotiation, Role
from counteroffer.models.backend import Sampling
from counteroffer.models.engine import CachedGenerator
from counteroffer.models.hf import load_model_and_tokenizer, stop_token_ids
from counteroffer.models.reference import GenerateReference
from counteroffer.prompts.render import PromptBuilder
from counteroffer.prompts.settings import PromptSettings
from counteroffer.train.stage import native_bf16

RECIPE_PROMPTS = PromptSettings(templates_dir="configs/prompts/compact", description_chars=0, features_chars=0)


def linear_shapes(model: torch.nn.Module) -> dict[tuple[int, int], int]:
    """(in, out) of every linear layer a decoded token passes through, with how many there are."""
    shapes: dict[tuple[int, int], int] = {}
    for module in model.modules():
        if isinstance(module, torch.nn.Linear):
            key = (module.in_features, module.out_features)
            shapes[key] = shapes.get(key, 0) + 1
    return shapes


def matmul_rate(shapes: dict[tuple[int, int], int], rows: int, dtype: torch.dtype, seconds: float = 1.0) -> float:
    """FLOP/s of ``linear`` on ``rows`` rows over the model's shapes, each weighted by its count."""
    flops = elapsed = 0.0
    for (features_in, features_out), count in shapes.items():
        weight = torch.randn(features_out, features_in, dtype=dtype)
        x = torch.randn(rows, features_in, dtype=dtype)
        torch.nn.functional.linear(x, weight)
        repeats = max(2, int(seconds * 5e10 / (2 * rows * features_in * features_out) / len(shapes)))
        start = time.perf_counter()
        for _ in range(repeats):
            torch.nn.functional.linear(x, weight)
        elapsed += (time.perf_counter() - start) / repeats * count
        flops += 2 * rows * features_in * features_out * count
    return flops / elapsed


def turn_limit(prompt_tokens: int, generated: int, flops_per_token: int, prefill_rate: float, rate: float) -> float:
    """The generated tokens per second of a turn that did nothing but its matrix products."""
    return generated / (prompt_tokens * flops_per_token / prefill_rate + generated * flops_per_token / rate)


def timed_turns(generator, prompts: list[list[int]], sampling: Sampling) -> tuple[float, list[list[int]]]:  # noqa: ANN001
    generator.reset()
    start = time.perf_counter()
    turns = generator.generate(prompts, sampling, list(range(len(prompts))))
    return time.perf_counter() - start, [t.ids for t in turns]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16, 64, 256])
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    dtypes = ["float32", "bfloat16"] if native_bf16() else ["float32"]
    scenarios = load_scenarios("amazon", "train").scenarios
    builder = PromptBuilder(Role.BUYER, settings=RECIPE_PROMPTS)
    sampling = Sampling(temperature=0.0, max_new_tokens=args.max_new_tokens)
    model, tokenizer = load_model_and_tokenizer(args.model, "float32")
    shapes = linear_shapes(model)
    flops_per_token = 2 * sum(i * o * n for (i, o), n in shapes.items())
    stops = stop_token_ids(tokenizer)

    def prompt(index: int) -> list[int]:
        chat = builder.chat(Negotiation(scenarios[index % len(scenarios)]).view(Role.BUYER))
        text = tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    results = []
    print(f"{args.model}: {flops_per_token / 1e9:.3f} GFLOP per decoded token, torch threads {torch.get_num_threads()}")
    for dtype in dtypes:
        model = model.to(getattr(torch, dtype)).eval()
        prefill_rate = matmul_rate(shapes, 2048, getattr(torch, dtype))
        for batch in args.batches:
            prompts = [prompt(i) for i in range(batch)]
            rate = matmul_rate(shapes, batch, getattr(torch, dtype))
            row = {"dtype": dtype, "batch": batch, "matmul_gflops": round(rate / 1e9, 1)}
            row["prefill_matmul_gflops"] = round(prefill_rate / 1e9, 1)
            row["decode_limit_tokens_per_s"] = round(rate / flops_per_token, 1)
            row["mean_prompt_tokens"] = round(sum(map(len, prompts)) / batch, 1)
            engine = CachedGenerator(model, tokenizer.pad_token_id, stops, max_batch=batch)
            reference = GenerateReference(model, tokenizer.pad_token_id, stops, max_batch=batch)
            timed_turns(engine, prompts[:2], sampling)  # warm-up at a small shape
            paths = {}
            for name, generator in (("engine", engine), ("generate", reference)):
                seconds, ids = timed_turns(generator, prompts, sampling)
                paths[name] = ids
                tokens = sum(map(len, ids))
                limit = turn_limit(sum(map(len, prompts)), tokens, flops_per_token, prefill_rate, rate)
                row[f"{name}_limit_tokens_per_s"] = round(limit, 1)
                row[f"{name}_tokens_per_s"] = round(tokens / seconds, 1)
                row[f"{name}_share_of_limit"] = round(tokens / seconds / limit, 3)
            row["engine_over_generate"] = round(row["engine_tokens_per_s"] / row["generate_tokens_per_s"], 2)
            row["same_greedy_turns"] = round(
                sum(a == b for a, b in zip(paths["engine"], paths["generate"], strict=True)) / batch, 3
            )
            results.append(row)
            print(
                f"{dtype:>8} batch {batch:>3}: matmul {row['matmul_gflops']:6.1f} GFLOP/s, decode limit "
                f"{row['decode_limit_tokens_per_s']:7.1f} tok/s, turn limit {limit:6.1f}; "
                f"engine {row['engine_tokens_per_s']:6.1f} ({row['engine_share_of_limit']:.0%}), generate "
                f"{row['generate_tokens_per_s']:6.1f} ({row['generate_share_of_limit']:.0%}), "
                f"engine/generate {row['engine_over_generate']:.2f}, same greedy turns {row['same_greedy_turns']:.0%}",
                flush=True,
            )
    if args.json:
        report = {
            "command": "python bench/bench_roofline.py "
            + " ".join(f"--batches {' '.join(map(str, args.batches))} --max-new-tokens {args.max_new_tokens}".split()),
            "machine": describe_machine(),
            "model": args.model,
            "flops_per_token": flops_per_token,
            "results": results,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
