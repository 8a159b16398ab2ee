"""vLLM against transformers on the rollouts that matter, in one run (run it in the vLLM venv: make vllm-setup).

    .venv-vllm/bin/python bench/bench_vllm.py [--checkpoint PATH] [--products 32] [--batch 64] [--json out.json]

1. **A frozen seller's turns.** The same bench (``scripted:anchor`` against an LLM seller on ``--products`` test
   products, 4-turn games, one rollout) twice: the seller served by ``vllm serve`` behind an ``openai:`` spec
   (prefix caching on, as vLLM has it by default), then the same checkpoint in-process as ``hf:`` (transformers
   with the project's prefix-caching engine). Reported: wall seconds and seller requests per second (a turn and
   each of its re-asks is one request).
2. **The policy's turns.** One turn of ``--batch`` buyer prompts (the compact prompt of as many train products),
   at most ``--new-tokens`` sampled tokens each with their log-probabilities: vLLM's offline engine (the
   colocated generator GRPO uses with ``generation.backend: vllm``) against
   :class:`~counteroffer.models.engine.CachedGenerator`. Reported: generated tokens per second (each stops at
   the end of its message, so the counts may differ a little).

Both sides use the same weights and dtype; the ratios are vLLM over transformers.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

from counteroffer.catalog import load_scenarios
from counteroffer.evaluate.bench import BenchConfig, run_bench
from counteroffer.experiment.machine import describe_machine
from counteroffer.game import EventKind, Negotiation, Role
from counteroffer.models.backend import Sampling
from counteroffer.models.bundled import ensure_bundled_checkpoint
from counteroffer.models.engine import CachedGenerator
from counteroffer.models.hf import load_model_and_tokenizer, release_chat_models
from counteroffer.prompts.render import PromptBuilder
from counteroffer.rollout.store import read_episodes
from counteroffer.serve.vllm import ENGINE_KWARGS, requests_served, vllm_server
from counteroffer.train.config import load_config
from counteroffer.train.generation import VLLMGenerator
from counteroffer.train.tokens import ChatTokenizer

CPU_RECIPE = Path(__file__).resolve().parents[1] / "configs" / "cpu-smollm2.yaml"  # its prompt format
CPU_PROMPTS = load_config(CPU_RECIPE)
PROMPT_QUERY = CPU_PROMPTS.prompts.spec_query() + "&max_new_tokens=80"


def seller_bench(seller: str, products: int, out: Path) -> dict:
    started = time.perf_counter()
    result = run_bench(
        BenchConfig(
            buyers=["scripted:anchor"], seller=seller, split="test", limit=products, rollouts=1, max_turns=4, out=out
        )
    )
    seconds = time.perf_counter() - started
    turns = [m for r in read_episodes(result.episodes_path) for m in r.messages if m.role is Role.SELLER]
    requests = len(turns) + sum(e.kind is EventKind.AGENT_REASKED for m in turns for e in m.events)
    fallback = sum(any(e.kind is EventKind.AGENT_FALLBACK for e in m.events) for m in turns)
    return {
        "seconds": round(seconds, 1),
        "seller_turns": len(turns),
        "requests": requests,
        "requests_per_second": round(requests / seconds, 2),
        "fallback_turns": fallback,
    }


def policy_prompts(tokenizer, count: int) -> list[list[int]]:  # noqa: ANN001
    chat_tokenizer = ChatTokenizer(tokenizer)
    builder = PromptBuilder(Role.BUYER, settings=CPU_PROMPTS.prompts)
    scenarios = load_scenarios("amazon", "train", limit=count).scenarios
    return [
        chat_tokenizer.encode(chat_tokenizer.render(builder.chat(Negotiation(s).view(Role.BUYER)))) for s in scenarios
    ]


def timed_generation(generator, prompts: list[list[int]], new_tokens: int) -> dict:  # noqa: ANN001
    sampling = Sampling(1.0, 1.0, new_tokens)
    started = time.perf_counter()
    turns = generator.generate(prompts, sampling, list(range(len(prompts))))
    seconds = time.perf_counter() - started
    generated = sum(len(turn.ids) for turn in turns)
    return {"seconds": round(seconds, 2), "generated": generated, "tokens_per_second": round(generated / seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=None, help="default: the bundled SmolLM2-135M")
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--products", type=int, default=32)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    checkpoint = args.checkpoint or ensure_bundled_checkpoint()
    report: dict = {"machine": describe_machine(), "checkpoint": str(checkpoint), "dtype": args.dtype}
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        with vllm_server(checkpoint, work / "serve.log", served_name="seller", dtype=args.dtype) as url:
            before = requests_served(url)
            served = seller_bench(f"openai:seller@{url}/v1?{PROMPT_QUERY}", args.products, work / "vllm")
            served["requests_seen_by_vllm"] = requests_served(url) - before
        local = seller_bench(
            f"hf:{checkpoint}?dtype={args.dtype}&max_batch=64&{PROMPT_QUERY}", args.products, work / "hf"
        )
        release_chat_models()
        report["frozen_seller"] = {
            "vllm_serve": served,
            "transformers": local,
            "ratio_requests_per_second": round(served["requests_per_second"] / local["requests_per_second"], 2),
        }
        print(json.dumps(report["frozen_seller"], indent=2), flush=True)

        model, tokenizer = load_model_and_tokenizer(str(checkpoint), args.dtype)
        prompts = policy_prompts(tokenizer, args.batch)
        stop = ChatTokenizer(tokenizer).stop_token_ids
        bf16 = args.dtype == "bfloat16"
        cached = CachedGenerator(model, tokenizer.pad_token_id, stop, max_batch=args.batch, bf16=bf16)
        hf_turns = timed_generation(cached, prompts, args.new_tokens)
        del model, cached
        import vllm

        llm = vllm.LLM(model=str(checkpoint), dtype=args.dtype, max_model_len=2048, seed=0, **ENGINE_KWARGS)
        generator = VLLMGenerator(
            SimpleNamespace(vllm_generation=SimpleNamespace(llm=llm), args=SimpleNamespace(vllm_mode="colocate"))
        )
        timed_generation(generator, prompts[:4], 4)  # warm-up
        vllm_turns = timed_generation(generator, prompts, args.new_tokens)
        report["policy_turns"] = {
            "batch": args.batch,
            "new_tokens": args.new_tokens,
            "vllm_offline": vllm_turns,
            "transformers_cached_generator": hf_turns,
            "ratio_tokens_per_second": round(vllm_turns["tokens_per_second"] / hf_turns["tokens_per_second"], 2),
        }
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
