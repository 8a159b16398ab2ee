"""Loading the model to train, LoRA, and writing the final checkpoint an ``hf:`` agent spec loads."""

from __future__ import annotations

import copy
import json
import math
import shutil
from pathlib import Path
from typing import Any

from counteroffer.models.hf import load_model_and_tokenizer
from counteroffer.prompts.settings import AGENT_DEFAULTS_FILE, PromptSettings
from counteroffer.train.config import LoraSettings

FINAL_DIR = "final"
BEST_DIR = "best"
BEST_FILE = "validation.json"


def load_trainable(model: str, dtype: str):  # noqa: ANN201 - (PreTrainedModel, tokenizer)
    loaded, tokenizer = load_model_and_tokenizer(model, dtype)
    loaded.config.use_cache = False  # training; generation passes use_cache=True itself
    return loaded, tokenizer


def peft_config(lora: LoraSettings):  # noqa: ANN201 - peft.LoraConfig | None
    if not lora.enabled:
        return None
    from peft import LoraConfig

    return LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=lora.target_modules,
        task_type="CAUSAL_LM",
    )


def export_policy(model, tokenizer, target: Path, prompts: PromptSettings, max_new_tokens: int) -> None:  # noqa: ANN001
    """Write a plain checkpoint an ``hf:`` agent spec loads: weights, tokenizer and the agent defaults (the prompt
    caps and turn length it was trained with). ``model`` must be plain: merge LoRA adapters first."""
    training_use_cache = model.config.use_cache
    model.config.use_cache = True
    try:
        model.save_pretrained(target, safe_serialization=True)
    finally:
        model.config.use_cache = training_use_cache
    tokenizer.save_pretrained(target)
    defaults = {**prompts.agent_params(), "max_new_tokens": max_new_tokens}
    (target / AGENT_DEFAULTS_FILE).write_text(json.dumps(defaults, indent=2) + "\n")


def save_final(trainer, out: Path, prompts: PromptSettings, max_new_tokens: int) -> Path:  # noqa: ANN001
    """Save the trained weights (LoRA adapters merged in) and tokenizer to ``out/final``; main process only."""
    target = out / FINAL_DIR
    model = trainer.accelerator.unwrap_model(trainer.model)
    if hasattr(model, "merge_and_unload"):  # a peft model: one plain checkpoint, loadable without peft
        model = model.merge_and_unload()
    if trainer.accelerator.is_main_process:
        export_policy(model, trainer.processing_class, target, prompts, max_new_tokens)
    trainer.accelerator.wait_for_everyone()
    return target


class BestPolicy:
    """Keeps the policy with the best held-out reward so far in ``out/best`` (``validation.json`` there says its
    step and metrics): the last step of a run is not always its best. Resumable: a resumed run competes with the
    best of the steps it already played. Main process only."""

    def __init__(self, out: Path, prompts: PromptSettings, max_new_tokens: int) -> None:
        self.target = out / BEST_DIR
        self.prompts = prompts
        self.max_new_tokens = max_new_tokens
        record = self.target / BEST_FILE
        self.reward = json.loads(record.read_text())["game"]["reward"] if record.is_file() else -math.inf

    def offer(self, model, tokenizer, step: int, game: dict[str, Any]) -> None:  # noqa: ANN001
        """Save ``model`` if its held-out reward beats the best so far."""
        if game["reward"] is None or game["reward"] <= self.reward:
            return
        if hasattr(model, "merge_and_unload"):  # merge into a copy: the adapters keep training
            model = copy.deepcopy(model).merge_and_unload()
        partial = self.target.with_name(self.target.name + ".partial")  # a kill mid-save keeps the previous best
        shutil.rmtree(partial, ignore_errors=True)
        export_policy(model, tokenizer, partial, self.prompts, self.max_new_tokens)
        (partial / BEST_FILE).write_text(json.dumps({"step": step, "game": game}, indent=2) + "\n")
        shutil.rmtree(self.target, ignore_errors=True)
        partial.rename(self.target)
        self.reward = game["reward"]
