"""Attention for one new token per row, fast on the CPU.

PyTorch's CPU scaled-dot-product kernel works on blocks of queries. At decode, one query per row under a padded
mask, it spent 77% of a batch-64 decode step here (about 20 ms per layer for 64 rows of ~600 keys; BENCHMARKS.md,
"How close generation is to the machine"). For one query the attention is two batched matrix products over the
key/value heads, with the query heads of a group stacked as rows (no ``repeat_kv``): memory-bound, as it should be.

:func:`decode_attention` is registered with transformers' public attention interfaces under :data:`NAME`; a
forward with more than one query (prefill, training) goes to transformers' own SDPA function unchanged. The
rollout engine switches a model to it only while it generates (:func:`decoding_attention`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any

import torch

from counteroffer.compat import attention_implementation

NAME = "counteroffer_decode"


def decode_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """transformers' attention-function contract: ``query`` (batch, heads, q, dim), ``key``/``value`` (batch,
    kv_heads, keys, dim), a boolean (True: attend) or additive mask (batch, 1, q, keys); returns (batch, q, heads,
    dim)."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if query.shape[2] != 1 or dropout or kwargs.get("position_bias") is not None or kwargs.get("softcap"):
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout, scaling, **kwargs)
    batch, heads, _, dim = query.shape
    kv_heads = key.shape[1]
    scale = scaling if scaling is not None else dim**-0.5
    grouped = query.reshape(batch, kv_heads, heads // kv_heads, dim)  # the query heads sharing a key head, as rows
    scores = torch.matmul(grouped, key.transpose(-1, -2)).float() * scale  # (batch, kv_heads, group, keys)
    if attention_mask is not None:
        mask = attention_mask[:, :, -1:, : key.shape[2]]  # (batch, 1, 1, keys): broadcasts over heads and rows
        scores = scores.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else scores + mask.float()
    output = torch.matmul(scores.softmax(dim=-1).to(value.dtype), value)  # (batch, kv_heads, group, dim)
    return output.reshape(batch, heads, 1, dim).transpose(1, 2), None


@cache
def register() -> str:
    """Make :data:`NAME` a valid ``attn_implementation`` (once per process)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(NAME, decode_attention)
    AttentionMaskInterface.register(NAME, sdpa_mask)
    return NAME


@contextmanager
def decoding_attention(model: Any) -> Iterator[None]:
    """Within the block, ``model`` (a transformers model, possibly under peft) uses :func:`decode_attention`,
    if it used SDPA; any other implementation (eager, flash attention on a GPU) is left as it is."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    before = attention_implementation(base)
    if before != "sdpa":
        yield
        return
    base.set_attn_implementation(register())
    try:
        yield
    finally:
        base.set_attn_implementation(before)
