"""What the SFT and GRPO stages share: trainer arguments from a config section, checkpoints and resume, the log."""

from __future__ import annotations

import dataclasses
import difflib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from counteroffer.catalog.models import Scenario
from counteroffer.catalog.recipes import load_scenarios
from counteroffer.errors import ConfigError
from counteroffer.seeding import derive_seed
from counteroffer.train.config import OptimSettings, TrainConfig
from counteroffer.train.logs import TrainLog


def training_scenarios(config: TrainConfig) -> tuple[list[Scenario], list[Scenario]]:
    """The train split as (products to train on, held-out validation products).

    ``validation_products`` products are held out by a seeded draw (the same for SFT, GRPO and every process);
    they never appear in demonstrations or GRPO steps, and the test split is never read during training.
    """
    scenarios = load_scenarios(config.catalog, "train", data_root=config.data_root).scenarios
    if config.validation_products >= len(scenarios):
        raise ConfigError(
            f"validation_products = {config.validation_products} leaves nothing to train on "
            f"({len(scenarios)} train products)"
        )

    def rank(scenario: Scenario) -> int:
        return derive_seed(config.seed, "validation", scenario.scenario_id, bits=64)

    held_out = {s.scenario_id for s in sorted(scenarios, key=rank)[: config.validation_products]}
    return [s for s in scenarios if s.scenario_id not in held_out], [s for s in scenarios if s.scenario_id in held_out]


def times_played(scenario: Scenario, conflicting_repeats: int) -> int:
    """How often a train product is used per rollout: a conflicting-interest one (budget below cost, the buyer
    should walk away) ``conflicting_repeats`` times, being too rare in the catalogue (about 5%) to learn from."""
    return 1 if scenario.mutual_interest else conflicting_repeats


def last_checkpoint(folder: Path) -> Path | None:
    """The newest ``checkpoint-N`` folder the trainer wrote in ``folder``, if any."""
    from transformers.trainer_utils import get_last_checkpoint

    return Path(found) if folder.is_dir() and (found := get_last_checkpoint(str(folder))) else None


def is_main_process() -> bool:
    """Rank 0, before the trainer has set up distributed state (``accelerate launch`` sets ``RANK``)."""
    return int(os.environ.get("RANK", "0")) == 0


def start_stage(out: Path, resume: bool) -> tuple[Path | None, TrainLog]:
    """The checkpoint to resume from (``None``: start fresh) and the stage's log.

    Starting fresh over existing checkpoints is refused, so a second run never silently mixes with the first.
    """
    checkpoint = last_checkpoint(out)
    if checkpoint is not None and not resume:
        raise ConfigError(f"{out} already holds checkpoints; pass --resume to continue, or use another out")
    start_step = int(checkpoint.name.rpartition("-")[2]) if checkpoint is not None else 0
    return checkpoint, TrainLog(out, enabled=is_main_process(), start_step=start_step)


def native_bf16() -> bool:
    """Whether this machine computes in bfloat16 natively: a CUDA GPU that supports it, or a CPU with AVX512-BF16
    or AMX. Elsewhere PyTorch emulates bfloat16 matmuls (measured on an AVX2-only CPU: 1.1 GFLOPS against 76 in
    float32), so bfloat16 autocast would slow training dozens of times."""
    import torch

    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        flags = []
    return "avx512_bf16" in flags or "amx_bf16" in flags or "AMX" in torch.backends.cpu.get_cpu_capability()


def resolve_bf16(setting: bool | str) -> bool:
    return native_bf16() if setting == "auto" else bool(setting)


def trl_arguments(config_class: type, section: str, passed: Mapping[str, Any], **recipe: Any) -> dict[str, Any]:
    """The keyword arguments of a TRL config (``SFTConfig``, ``GRPOConfig``): what the recipe sets from its own
    fields, plus the section's ``trl`` pass-through mapping. A pass-through name that is not a field of
    ``config_class`` is a config error listing the valid ones; one the recipe already sets is refused (set it
    through the recipe's own field, which may derive or check it)."""
    valid = {field.name for field in dataclasses.fields(config_class) if field.init}
    unknown = sorted(set(passed) - valid)
    if unknown:
        close = {name: difflib.get_close_matches(name, valid, n=1) for name in unknown}
        hints = ", ".join(f"{name} (did you mean {found[0]}?)" if found else name for name, found in close.items())
        raise ConfigError(
            f"{section}.trl: not a field of trl.{config_class.__name__}: {hints}; valid fields: "
            + ", ".join(sorted(valid))
        )
    taken = sorted(set(passed) & set(recipe))
    if taken:
        raise ConfigError(
            f"{section}.trl: {', '.join(taken)} set by the recipe's own fields (e.g. {section}.learning_rate, "
            f"{section}.steps, {section}.temperature): set them there"
        )
    return {**recipe, **passed}


def trainer_arguments(settings: OptimSettings, out: Path, seed: int) -> dict[str, Any]:
    """The ``TrainingArguments`` both stages set the same way from their config section."""
    import torch

    return {
        "output_dir": str(out),
        "seed": seed,
        "learning_rate": settings.learning_rate,
        "warmup_steps": settings.warmup_ratio,  # below 1: a fraction of the steps
        "lr_scheduler_type": "constant_with_warmup" if settings.lr_schedule == "constant" else settings.lr_schedule,
        "weight_decay": settings.weight_decay,
        "max_grad_norm": settings.max_grad_norm,
        "per_device_train_batch_size": settings.per_device_batch_size,
        "bf16": resolve_bf16(settings.bf16),
        "gradient_checkpointing": settings.gradient_checkpointing,
        "deepspeed": str(settings.deepspeed) if settings.deepspeed else None,
        "save_strategy": "steps",
        "save_steps": settings.save_steps,
        "save_total_limit": settings.save_total_limit,
        "logging_steps": 1,
        "report_to": "none",  # TrainLog writes train_log.jsonl and TensorBoard itself
        "use_cpu": not torch.cuda.is_available(),
        "dataloader_num_workers": 0,
    }
