"""Loading the model to train, LoRA, and writing the final checkpoint an ``hf:`` agent spec loads."""

from __future__ import annotations

import json
from pathlib import Path

from counteroffer.agents.llm.factory import AGENT_DEFAULTS_FILE
from counteroffer.agents.llm.hf import load_model_and_tokenizer
from counteroffer.train.config import LoraSettings, PromptSettings

FINAL_DIR = "final"


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


def save_final(trainer, out: Path, prompts: PromptSettings, max_new_tokens: int) -> Path:  # noqa: ANN001
    """Save the trained weights (LoRA adapters merged in) and tokenizer to ``out/final``; main process only."""
    target = out / FINAL_DIR
    model = trainer.accelerator.unwrap_model(trainer.model)
    if hasattr(model, "merge_and_unload"):  # a peft model: one plain checkpoint, loadable without peft
        model = model.merge_and_unload()
    if trainer.accelerator.is_main_process:
        model.config.use_cache = True
        model.save_pretrained(target, safe_serialization=True)
        trainer.processing_class.save_pretrained(target)
        defaults = {**prompts.agent_params(), "max_new_tokens": max_new_tokens}
        (target / AGENT_DEFAULTS_FILE).write_text(json.dumps(defaults, indent=2) + "\n")
    trainer.accelerator.wait_for_everyone()
    return target
