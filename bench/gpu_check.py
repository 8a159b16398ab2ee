"""The GPU path in one command: generation throughput and a few real SFT and GRPO steps, written to one JSON file.

    bash bench/gpu_check.sh                      # on the GPU machine: installs carried wheels, then runs this
    python bench/gpu_check.py --tiny --device cpu --out /tmp/check   # the same checks, small, on a CPU (a test)

With the bundled SmolLM2-135M on ``--device`` (cuda, bfloat16 by default):

1. ``generation``: an ``hf:`` buyer's and an ``hf:`` seller's turns at batch 1, 16, 64 and 256 (tiny: 1 and 4)
   through :class:`~counteroffer.models.hf.HFChatModel` (the prefix-caching engine): generated tokens per
   second and peak GPU memory.
2. ``training``: ``train sft`` then ``train grpo`` for a few steps, full fine-tuning and LoRA, on a tiny recipe;
   each run checks that the losses are finite and that the weights changed.
3. ``logprobs``: the engine's sampling log-probabilities of generated turns against a fresh forward pass of the
   same weights, in the same dtype (max and mean absolute difference). In float32 they must agree within
   ``--tolerance``; in bfloat16 the engine must stay within twice bfloat16's own rounding of a float32 pass.

Everything goes to ``OUT/gpu_check.json`` (``$OUT`` on the device machine, ``--out`` elsewhere) with the machine,
the versions and the wall time of each part; the exit code is 1 if a check failed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
import traceback
from pathlib import Path

import torch

from counteroffer.catalog import load_scenarios
from counteroffer.experiment.machine import describe_machine
from counteroffer.game import GameConfig, Negotiation, Role
from counteroffer.models.backend import Sampling
from counteroffer.models.hf import HFChatModel, load_model_and_tokenizer
from counteroffer.prompts.render import PromptBuilder
from counteroffer.prompts.settings import PromptSettings
from counteroffer.train.log_records import LOG_FILE, read_train_log

PROMPTS = Path(__file__).resolve().parents[1] / "configs" / "prompts" / "compact"
# How far past a 16-bit dtype's own rounding the engine's log-probabilities may stray (see `logprobs`).
ROUNDING_FACTOR = 2.0
PARTS = ("generation", "training", "logprobs")


def peak_memory_mb(device: str) -> float | None:
    return torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda") else None


def reset_peak(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def generation(args: argparse.Namespace) -> list[dict]:
    model, tokenizer = load_model_and_tokenizer("smollm2-135m", args.dtype, args.device)
    chat_model = HFChatModel("smollm2-135m", model.eval(), tokenizer, max_batch=max(args.batches))
    scenarios = load_scenarios("amazon", "test", data_root=args.data).scenarios
    rows = []
    for role in (Role.BUYER, Role.SELLER):
        prompts = PromptBuilder(
            role,
            settings=PromptSettings(
                templates_dir=PROMPTS if role is Role.BUYER else None, description_chars=0, features_chars=0
            ),
        )
        for batch in args.batches:
            chats = []
            for i in range(batch):
                game = Negotiation(scenarios[i % len(scenarios)], GameConfig(max_turns=4))
                if role is Role.SELLER:
                    game.step("Thought: low.\nTalk: Would you take $10?\nAction: [BUY] $10.00")
                chats.append(prompts.chat(game.view(role)))
            sampling = Sampling(1.0, 1.0, args.new_tokens)
            chat_model.engine.reset()  # every batch size starts from an empty cache
            reset_peak(args.device)
            started = time.perf_counter()
            outputs = chat_model.generate(chats, sampling, list(range(batch)))
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            seconds = time.perf_counter() - started
            generated = sum(o.completion_tokens for o in outputs)
            rows.append(
                {
                    "role": role.value,
                    "batch": batch,
                    "seconds": round(seconds, 3),
                    "generated_tokens": generated,
                    "tokens_per_second": round(generated / seconds, 1),
                    "prompt_tokens_mean": round(sum(o.prompt_tokens for o in outputs) / batch, 1),
                    "peak_memory_mb": peak_memory_mb(args.device),
                }
            )
            print(f"generation {role.value:6} batch {batch:4}: {rows[-1]['tokens_per_second']} tokens/s", flush=True)
    return rows


def recipe(args: argparse.Namespace, out: Path, lora: bool) -> dict:
    on_gpu = args.device.startswith("cuda")
    return {
        "model": "smollm2-135m",
        "out": str(out),
        "data_root": args.data,
        "max_turns": 2,
        "dtype": "float32",  # the master weights; bf16 is the autocast below
        "prompts": {"templates_dir": str(PROMPTS), "description_chars": 0, "features_chars": 0},
        "sft": {
            "sellers": ["scripted:linear", "scripted:titfortat"],
            "demo_buyers": ["scripted:reader"],
            "max_demos": 4 if args.tiny else 64,
            # An adapter needs about ten times full fine-tuning's rate: at 2e-4 four LoRA steps left the model
            # writing malformed replies on the H200, so every GRPO group earned -1 and had no gradient.
            "learning_rate": 2.0e-3 if lora else 2.0e-4,
            "epochs": 1 if args.tiny else 2,
            "per_device_batch_size": 4 if args.tiny else 16,
            "bf16": on_gpu and args.dtype == "bfloat16",
            "save_steps": 1000,
            "lora": {"enabled": lora},
        },
        "grpo": {
            "sellers": ["scripted:linear", "scripted:titfortat"],
            "products_per_step": 2 if args.tiny else 8,
            "group_size": 2 if args.tiny else 8,
            "steps": args.steps,
            "learning_rate": 2.0e-4 if lora else 2.0e-5,
            "per_device_batch_size": 4 if args.tiny else 16,
            "max_new_tokens": 48 if args.tiny else 80,
            "bf16": on_gpu and args.dtype == "bfloat16",
            "save_steps": 1000,
            "lora": {"enabled": lora},
            "generation": {"max_batch": 256},
        },
    }


def weights_changed(before: Path, after: Path) -> bool:
    from safetensors.torch import load_file

    first, second = load_file(before / "model.safetensors"), load_file(after / "model.safetensors")
    return any(not torch.equal(first[name], second[name]) for name in first)


def training(args: argparse.Namespace, out: Path) -> list[dict]:
    from counteroffer.train import TrainConfig, run_grpo, run_sft

    rows = []
    for lora in (False, True):
        folder = out / ("lora" if lora else "full")
        config = TrainConfig.model_validate(recipe(args, folder, lora))
        row: dict = {"lora": lora}
        started = time.perf_counter()
        reset_peak(args.device)
        sft_final = run_sft(config)
        row["sft_seconds"] = round(time.perf_counter() - started, 1)
        started = time.perf_counter()
        grpo_final = run_grpo(config)
        row["grpo_seconds"] = round(time.perf_counter() - started, 1)
        row["peak_memory_mb"] = peak_memory_mb(args.device)
        losses = []
        for stage in ("sft", "grpo"):
            log = read_train_log(folder / stage / LOG_FILE)
            losses += [e.trainer["loss"] for e in log if e.kind == "train" and "loss" in e.trainer]
            if stage == "grpo":
                row["grpo_rewards"] = [e.game["reward"] for e in log if e.kind == "train" and e.game is not None]
                row["grpo_rollout_seconds"] = [e.rollout["seconds"] for e in log if e.rollout is not None]
                row["grpo_grad_norms"] = [e.trainer["grad_norm"] for e in log if "grad_norm" in e.trainer]
        row["losses"] = losses
        row["losses_finite"] = bool(losses) and all(math.isfinite(x) for x in losses)
        row["sft_changed_weights"] = weights_changed(Path(_bundled()), sft_final)
        row["grpo_changed_weights"] = weights_changed(sft_final, grpo_final)
        rows.append(row)
        print(
            f"training lora={lora}: finite {row['losses_finite']}, weights changed by SFT "
            f"{row['sft_changed_weights']}, by GRPO {row['grpo_changed_weights']}",
            flush=True,
        )
    return rows


def _bundled() -> str:
    from counteroffer.models.bundled import ensure_bundled_checkpoint

    return str(ensure_bundled_checkpoint())


def logprobs(args: argparse.Namespace, checkpoint: str) -> dict:
    """The engine's sampling log-probabilities (cached, batched) against one uncached forward per turn.

    In float32 the two must agree to ``--tolerance``. In a 16-bit dtype they cannot: a cached and an uncached pass
    round differently. There the yardstick is the dtype's own rounding, the uncached 16-bit pass against a float32
    pass of the same weights, and the engine must be no further from float32 than ``ROUNDING_FACTOR`` times that.
    """
    model, tokenizer = load_model_and_tokenizer(checkpoint, args.dtype, args.device)
    model.eval()
    chat_model = HFChatModel("check", model, tokenizer, max_batch=16)
    prompts = PromptBuilder(
        Role.BUYER, settings=PromptSettings(templates_dir=PROMPTS, description_chars=0, features_chars=0)
    )
    scenarios = load_scenarios("amazon", "test", data_root=args.data).scenarios[:8]
    ids = [
        tokenizer(chat_model.render(prompts.chat(Negotiation(s).view(Role.BUYER))), add_special_tokens=False)[
            "input_ids"
        ]
        for s in scenarios
    ]
    turns = chat_model.engine.generate(ids, Sampling(1.0, 1.0, 32), list(range(len(ids))))
    engine = torch.tensor([lp for turn in turns for lp in turn.logprobs])
    uncached = _sampled_logprobs(model, ids, turns)
    report = {"tokens": len(engine), **_differences("", engine, uncached)}
    if args.dtype == "float32":
        within = report["max_abs_difference"] <= args.tolerance
        return report | {"tolerance": args.tolerance, "within_tolerance": within}
    del chat_model, model
    reference, _ = load_model_and_tokenizer(checkpoint, "float32", args.device)
    float32 = _sampled_logprobs(reference.eval(), ids, turns)
    report |= _differences("engine_vs_float32_", engine, float32)
    report |= _differences("uncached_vs_float32_", uncached, float32)
    report["rounding_factor"] = ROUNDING_FACTOR
    report["within_tolerance"] = (
        report["engine_vs_float32_mean_abs_difference"]
        <= ROUNDING_FACTOR * report["uncached_vs_float32_mean_abs_difference"]
    )
    return report


def _sampled_logprobs(model, ids: list[list[int]], turns) -> torch.Tensor:  # noqa: ANN001
    """Each sampled token's log-probability from one uncached forward pass over prompt and turn."""
    found = []
    with torch.no_grad():
        for prompt, turn in zip(ids, turns, strict=True):
            full = torch.tensor([prompt + turn.ids], device=model.device)
            logits = model(full).logits[0, len(prompt) - 1 : -1].float().log_softmax(-1)
            found.append(logits.gather(-1, torch.tensor(turn.ids, device=model.device)[:, None])[:, 0].cpu())
    return torch.cat(found)


def _differences(prefix: str, first: torch.Tensor, second: torch.Tensor) -> dict[str, float]:
    gap = (first - second).abs()
    return {f"{prefix}max_abs_difference": gap.max().item(), f"{prefix}mean_abs_difference": gap.mean().item()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", default=None, help="bfloat16 on cuda, float32 on cpu by default")
    parser.add_argument("--tiny", action="store_true", help="small sizes: a CPU run of every check (the test)")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "gpu-check")))
    parser.add_argument("--data", default=None, help="catalogue folder (default: the usual search)")
    parser.add_argument("--steps", type=int, default=None, help="GRPO steps per run (default 3, tiny 1)")
    parser.add_argument(
        "--parts",
        default=",".join(PARTS),
        help="comma-separated parts to run (logprobs reads training's checkpoint); e.g. generation for the CPU ratio",
    )
    parser.add_argument("--tolerance", type=float, default=None, help="float32 log-probability tolerance (2e-3)")
    args = parser.parse_args()
    args.parts = args.parts.split(",")
    if unknown := set(args.parts) - set(PARTS):
        parser.error(f"--parts: unknown {sorted(unknown)}; choose from {', '.join(PARTS)}")
    on_gpu = args.device.startswith("cuda")
    args.dtype = args.dtype or ("bfloat16" if on_gpu else "float32")
    args.steps = args.steps or (1 if args.tiny else 3)
    args.tolerance = args.tolerance or 2e-3  # float32 only: 16-bit dtypes are held to their own rounding
    args.batches = (1, 4) if args.tiny else (1, 16, 64, 256)
    args.new_tokens = 16 if args.tiny else 64
    args.out.mkdir(parents=True, exist_ok=True)
    report: dict = {
        "machine": describe_machine(),
        "torch": torch.__version__,
        "dtype": args.dtype,
        "tiny": args.tiny,
        "seconds": {},
        "errors": {},
    }
    import transformers

    report["transformers"] = transformers.__version__
    try:
        import trl

        report["trl"] = trl.__version__
    except ImportError:
        report["trl"] = None
    parts = {
        "generation": lambda: generation(args),
        "training": lambda: training(args, args.out / "train"),
        "logprobs": lambda: logprobs(args, str(args.out / "train" / "full" / "grpo" / "final")),
    }
    for name in args.parts:
        part = parts[name]
        started = time.perf_counter()
        try:
            report[name] = part()
        except Exception:  # noqa: BLE001 - one broken part must not hide the others' results
            report["errors"][name] = traceback.format_exc()
            print(report["errors"][name], flush=True)
        report["seconds"][name] = round(time.perf_counter() - started, 1)
        (args.out / "gpu_check.json").write_text(json.dumps(report, indent=2) + "\n")
    # A --tiny SFT (four demonstrations) leaves the model writing malformed replies, every episode of a group
    # earns -1 and GRPO has no gradient: there only SFT must move the weights (tests/test_train_runs.py checks
    # GRPO's update on a recipe with reward variance).
    failed = bool(report["errors"]) or not all(
        r["losses_finite"] and r["sft_changed_weights"] and (args.tiny or r["grpo_changed_weights"])
        for r in report.get("training", [])
    )
    if "logprobs" in args.parts:
        failed = failed or not report.get("logprobs", {}).get("within_tolerance", False)
    print(f"{'FAILED' if failed else 'ok'}: {args.out / 'gpu_check.json'}", flush=True)
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()
