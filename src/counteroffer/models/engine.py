"""Batched sampling that keeps each conversation's KV cache between turns.

A negotiation is a conversation that grows by a few dozen tokens a turn. ``model.generate`` on the whole history
re-computes every earlier token at every turn, and the rollouts of one product (a GRPO group, an evaluation's
rollouts and opponents) compute the same first prompt again and again. On a CPU that prefill is most of the cost.

:class:`CachedGenerator` takes token ids in and gives sampled ids (with their sampling log-probabilities) out,
like vLLM's engine with prefix caching:

- after each call it keeps, per sequence, the keys and values of every token it fed (up to a token budget,
  least recently used first out);
- a new prompt starts from the cached sequence sharing its longest prefix: the next turn of a conversation
  reuses all of it, a sibling rollout forks the shared first prompt, and identical prompts in one call are
  computed once;
- only the remaining tokens are fed (prefill), in runs of similar length of at most ``prefill_tokens`` padded
  tokens (a longer run adds padding and quadratic masked attention, not matrix efficiency), then the sequences
  decode together into a preallocated cache (no per-token concatenation), each stopping at its own stop token,
  ``max_batch`` rows at a time, with attention written for one query per row (``models/attention.py``);
- each row samples with its own seeded generator, so a sequence's text depends on its prompt, sampling
  settings and seed only, never on what else shares the batch.

The cache holds keys and values of *one* set of weights: whoever changes the weights (an optimizer step) must
call :meth:`CachedGenerator.reset`. With ``bf16=True`` a float32 model generates through a bfloat16 copy of its
weights, refreshed after each reset: autocast would convert every weight at every decode step, which doubled the
memory traffic of a step that is bound by it. Use it where the CPU computes bfloat16 natively.
"""

from __future__ import annotations

import copy
import inspect
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from counteroffer.compat import cache_layer_base, cache_with_layers
from counteroffer.models.attention import decoding_attention
from counteroffer.models.backend import Sampling

BUCKET_TOKENS = 16  # cached sequences are looked up by their first tokens
DEFAULT_CACHE_TOKENS = 1 << 17
# Measured on 2 cores (bfloat16): 64 buyer prompts of 314-870 tokens prefilled at 404 tokens/s in one padded batch
# and at 926 in runs of at most 2,048 tokens (BENCHMARKS.md, "How close generation is to the machine").
DEFAULT_PREFILL_TOKENS = 2048


@dataclass(frozen=True, slots=True)
class GeneratedTurn:
    """The sampled ids of one turn (ending with the stop token when one was sampled) and the log-probability of
    each under the distribution it was drawn from (after temperature and top-p)."""

    ids: list[int]
    logprobs: list[float]


@dataclass(slots=True)
class EngineStats:
    """Token counts since the generator was made: what was fed as prompt, what came from the cache, what was
    sampled. ``prefilled + reused`` is what a generator without a cache would have prefilled. ``generate_seconds``:
    inside :meth:`CachedGenerator.generate`, of which ``forward_seconds`` in the model's forward passes."""

    calls: int = 0
    prefilled: int = 0
    reused: int = 0
    generated: int = 0
    generate_seconds: float = 0.0
    forward_seconds: float = 0.0

    def as_dict(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in self.__slots__}

    def since(self, earlier: dict[str, float]) -> dict[str, float]:
        """What was counted after ``earlier`` (an :meth:`as_dict` snapshot)."""
        return {name: round(value - earlier[name], 3) for name, value in self.as_dict().items()}


@dataclass(slots=True)
class _CachedSequence:
    ids: np.ndarray  # the tokens whose keys/values ``kv`` holds
    kv: torch.Tensor  # (layers, 2, kv_heads, len(ids), head_dim)
    last_used: int


@dataclass(slots=True)
class _Row:
    """One prompt of a call: where its cached part comes from and what is left to feed."""

    prompt: np.ndarray
    base: torch.Tensor | None  # cached (layers, 2, heads, n, dim) for prompt[:n]
    cached: int
    kv: torch.Tensor | None = None  # after prefill: the whole prompt but its last token's successor
    logits: torch.Tensor | None = None
    ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)


class _GrowingLayer(cache_layer_base()):
    """A cache layer over a preallocated buffer: ``update`` writes in place instead of concatenating."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, length: int) -> None:
        super().__init__()
        self.keys_buffer, self.values_buffer, self.length = keys, values, length
        self.keys, self.values = keys[:, :, :length], values[:, :, :length]
        self.is_initialized = True
        self.dtype, self.device = keys.dtype, keys.device

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):  # noqa: ANN002, ANN003, ANN201
        end = self.length + key_states.shape[-2]
        self.keys_buffer[:, :, self.length : end] = key_states
        self.values_buffer[:, :, self.length : end] = value_states
        self.length = end
        self.keys, self.values = self.keys_buffer[:, :, :end], self.values_buffer[:, :, :end]
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self.length


class _Batch:
    """Rows laid out left-padded in one preallocated cache; holes (padding, finished rows) are masked."""

    def __init__(self, bases: Sequence[torch.Tensor | None], capacity: int, layers: int, template: torch.Tensor):
        _, _, heads, _, dim = template.shape
        width = max((b.shape[3] for b in bases if b is not None), default=0)
        self.buffer = template.new_zeros((layers, 2, len(bases), heads, width + capacity, dim))
        self.mask = torch.zeros((len(bases), width + capacity), dtype=torch.long, device=template.device)
        self.positions = torch.zeros(len(bases), dtype=torch.long, device=template.device)
        for row, base in enumerate(bases):
            if base is not None and base.shape[3]:
                n = base.shape[3]
                self.buffer[:, :, row, :, width - n : width] = base
                self.mask[row, width - n : width] = 1
                self.positions[row] = n
        self.length = width
        self.cache = cache_with_layers(
            [_GrowingLayer(self.buffer[i, 0], self.buffer[i, 1], width) for i in range(layers)]
        )

    def feed(self, model, tokens: torch.Tensor, valid: torch.Tensor, cache_argument: str) -> torch.Tensor:  # noqa: ANN001
        """Feed ``tokens`` (rows × q, right-aligned, ``valid`` marks real ones); the last column's logits."""
        tokens, valid = tokens.to(self.mask.device), valid.to(self.mask.device)
        q = tokens.shape[1]
        start = self.length
        self.mask[:, start : start + q] = valid.long()
        positions = self.positions[:, None] + valid.long().cumsum(dim=1) - 1
        output = model(
            input_ids=tokens,
            attention_mask=self.mask[:, : start + q],
            position_ids=positions.clamp(min=0),
            **{cache_argument: self.cache},
            cache_position=torch.arange(start, start + q, device=self.mask.device),
            use_cache=True,
            logits_to_keep=1,
        )
        self.length = start + q
        self.positions += valid.long().sum(dim=1)
        return output.logits[:, -1].float()

    def extract(self, row: int) -> torch.Tensor:
        """The row's keys and values at its valid positions: (layers, 2, heads, n, dim)."""
        valid = self.mask[row, : self.length].nonzero()[:, 0]
        return self.buffer[:, :, row, :, valid].clone()


class CachedGenerator:
    """Token-level sampling from a causal LM with a prefix cache shared across calls (see the module docstring)."""

    def __init__(
        self,
        model,  # noqa: ANN001 - a transformers causal LM (possibly a peft model)
        pad_token_id: int,
        stop_token_ids: Sequence[int],
        *,
        max_batch: int = 64,
        bf16: bool = False,
        cache_tokens: int = DEFAULT_CACHE_TOKENS,
        prefill_tokens: int = DEFAULT_PREFILL_TOKENS,
    ) -> None:
        self.model = model
        self.pad_token_id = pad_token_id
        self.stop_token_ids = frozenset(stop_token_ids)
        self.max_batch = max_batch
        self.bf16 = bf16
        self.cache_tokens = cache_tokens
        self.prefill_tokens = prefill_tokens
        self.stats = EngineStats()
        self._bf16_copy: torch.nn.Module | None = None
        self._bf16_copy_stale = True
        self._cache: dict[int, _CachedSequence] = {}
        self._buckets: dict[tuple[int, ...], set[int]] = {}
        self._next_key = 0
        config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
        self._layers = config.num_hidden_layers
        self._heads = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
        self._head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        # transformers renamed ``past_key_values`` to ``cache`` (5.2x); a peft model forwards either to its base.
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        self._cache_argument = "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"

    def reset(self) -> None:
        """Forget every cached sequence (the weights changed)."""
        self._bf16_copy_stale = True
        self._cache.clear()
        self._buckets.clear()

    @property
    def cached_tokens(self) -> int:
        return sum(len(entry.ids) for entry in self._cache.values())

    def generate(
        self, prompts: Sequence[Sequence[int]], samplings: Sampling | Sequence[Sampling], seeds: Sequence[int]
    ) -> list[GeneratedTurn]:
        """One turn per prompt, ending at the first stop token (included) or ``max_new_tokens``."""
        if not prompts:
            return []
        samplings = [samplings] * len(prompts) if isinstance(samplings, Sampling) else list(samplings)
        if not len(samplings) == len(seeds) == len(prompts):
            raise ValueError(f"{len(prompts)} prompts, {len(samplings)} sampling settings and {len(seeds)} seeds")
        if any(len(p) == 0 for p in prompts):
            raise ValueError("every prompt needs at least one token")
        started = time.perf_counter()
        self.stats.calls += 1
        rows = [self._match(np.asarray(p, dtype=np.int64)) for p in prompts]
        model = self._generating_model()
        was_training = model.training
        model.eval()
        try:
            with torch.inference_mode(), decoding_attention(model):
                # Chunk by chunk, each stored as soon as it is done: only one chunk's keys and values are in flight.
                for start in range(0, len(rows), self.max_batch):
                    chunk = range(start, min(start + self.max_batch, len(rows)))
                    self._prefill(model, [rows[i] for i in chunk])
                    self._decode(
                        model, [rows[i] for i in chunk], [samplings[i] for i in chunk], [seeds[i] for i in chunk]
                    )
                    for i in chunk:
                        self._store(rows[i])
                    self._evict()
        finally:
            model.train(was_training)
            self.stats.generate_seconds += time.perf_counter() - started
        return [GeneratedTurn(row.ids, row.logprobs) for row in rows]

    def _generating_model(self) -> torch.nn.Module:
        """The model itself, or its bfloat16 copy (made once, its weights refreshed after a reset)."""
        if not self.bf16 or next(self.model.parameters()).dtype == torch.bfloat16:
            return self.model
        if self._bf16_copy is None:
            self._bf16_copy = copy.deepcopy(self.model).requires_grad_(False)
            for parameter in self._bf16_copy.parameters():  # buffers (rotary frequencies) stay in float32
                parameter.grad = None
                parameter.data = parameter.data.to(torch.bfloat16)
        elif self._bf16_copy_stale:
            with torch.no_grad():
                for target, source in zip(self._bf16_copy.parameters(), self.model.parameters(), strict=True):
                    target.copy_(source)
        self._bf16_copy_stale = False
        return self._bf16_copy

    # -- the prefix cache ------------------------------------------------------------------------------------

    def _match(self, prompt: np.ndarray) -> _Row:
        best, best_length = None, 0
        for key in self._buckets.get(tuple(prompt[:BUCKET_TOKENS].tolist()), ()):
            entry = self._cache[key]
            n = min(len(entry.ids), len(prompt) - 1)  # the last prompt token is always fed: its logits are needed
            differ = np.flatnonzero(entry.ids[:n] != prompt[:n])
            length = int(differ[0]) if len(differ) else n
            if length > best_length:
                best, best_length = entry, length
        if best is None:
            return _Row(prompt, None, 0)
        best.last_used = self.stats.calls
        return _Row(prompt, best.kv[:, :, :, :best_length], best_length)

    def _store(self, row: _Row) -> None:
        if row.kv is None:
            return
        # The last sampled token was never fed, so the cache covers the prompt and the other sampled tokens.
        ids = np.concatenate([row.prompt, np.asarray(row.ids[:-1], dtype=np.int64)])[: row.kv.shape[3]]
        bucket = tuple(ids[:BUCKET_TOKENS].tolist())
        for key in list(self._buckets.get(bucket, ())):  # a sequence this one extends is no longer needed
            entry = self._cache[key]
            if len(entry.ids) <= len(ids) and np.array_equal(entry.ids, ids[: len(entry.ids)]):
                self._drop(key)
        key, self._next_key = self._next_key, self._next_key + 1
        self._cache[key] = _CachedSequence(ids, row.kv, self.stats.calls)
        self._buckets.setdefault(bucket, set()).add(key)
        row.kv = None

    def _drop(self, key: int) -> None:
        entry = self._cache.pop(key)
        bucket = self._buckets[tuple(entry.ids[:BUCKET_TOKENS].tolist())]
        bucket.discard(key)

    def _evict(self) -> None:
        total = self.cached_tokens
        for key in sorted(self._cache, key=lambda k: self._cache[k].last_used):
            if total <= self.cache_tokens:
                break
            total -= len(self._cache[key].ids)
            self._drop(key)

    # -- prefill and decode -----------------------------------------------------------------------------------

    def _prefill(self, model: torch.nn.Module, rows: list[_Row]) -> None:
        """Feed every row's uncached prompt tokens; identical prompts are fed once."""
        first: dict[bytes, _Row] = {}
        todo: list[_Row] = []
        copies: list[tuple[_Row, _Row]] = []
        for row in rows:
            self.stats.reused += row.cached
            twin = first.setdefault(row.prompt.tobytes(), row)
            if twin is row:
                todo.append(row)
            else:
                copies.append((row, twin))
                self.stats.reused += len(row.prompt) - row.cached
        todo.sort(key=lambda r: len(r.prompt) - r.cached)
        for chunk in self._prefill_runs(todo):
            new = [r.prompt[r.cached :] for r in chunk]
            width = max(len(n) for n in new)
            tokens = torch.full((len(chunk), width), self.pad_token_id, dtype=torch.long)
            valid = torch.zeros((len(chunk), width), dtype=torch.bool)
            for i, ids in enumerate(new):
                tokens[i, width - len(ids) :] = torch.from_numpy(ids)
                valid[i, width - len(ids) :] = True
            batch = _Batch([r.base for r in chunk], width, self._layers, self._template(model, chunk))
            logits = self._timed(model, batch.feed, tokens, valid)
            self.stats.prefilled += int(valid.sum())
            for i, row in enumerate(chunk):
                row.kv, row.logits, row.base = batch.extract(i), logits[i], None
        for row, twin in copies:
            row.kv, row.logits, row.base = twin.kv, twin.logits, None

    def _prefill_runs(self, todo: list[_Row]) -> list[list[_Row]]:
        """``todo`` (sorted by tokens to feed) cut into runs of at most ``max_batch`` rows and ``prefill_tokens``
        padded tokens (a row longer than that alone)."""
        runs: list[list[_Row]] = []
        for row in todo:
            width = len(row.prompt) - row.cached  # the longest so far: the run pads to it
            if runs and len(runs[-1]) < self.max_batch and (len(runs[-1]) + 1) * width <= self.prefill_tokens:
                runs[-1].append(row)
            else:
                runs.append([row])
        return runs

    def _template(self, model: torch.nn.Module, rows: Sequence[_Row]) -> torch.Tensor:
        """An empty tensor with the cache's dtype, device and shape (but the length) to allocate a batch from."""
        for row in rows:
            for kv in (row.base, row.kv):
                if kv is not None:
                    return kv[:, :, :, :0]
        parameter = next(model.parameters())
        shape = (self._layers, 2, self._heads, 0, self._head_dim)
        return torch.zeros(shape, dtype=parameter.dtype, device=parameter.device)

    def _decode(self, model: torch.nn.Module, rows: list[_Row], samplings: list[Sampling], seeds: list[int]) -> None:
        """Sample every row to its stop token or token budget, one batched forward per step. When half the rows
        of the batch have finished, the live ones move to a smaller batch (finished rows cost a full row each)."""
        steps = max(s.max_new_tokens for s in samplings)
        device = next(model.parameters()).device
        generators = [torch.Generator(device=device).manual_seed(seed % 2**63) for seed in seeds]
        done = [False] * len(rows)
        active = list(range(len(rows)))  # the rows of the current batch, in batch order
        batch = _Batch([r.kv for r in rows], steps, self._layers, self._template(model, rows))
        logits = torch.stack([r.logits for r in rows])
        for step in range(steps):
            following: dict[int, int] = {}
            for position, i in enumerate(active):
                if done[i]:
                    continue
                token, logprob = _sample(logits[position], samplings[i], generators[i])
                rows[i].ids.append(token)
                rows[i].logprobs.append(logprob)
                self.stats.generated += 1
                if token in self.stop_token_ids or len(rows[i].ids) >= samplings[i].max_new_tokens:
                    done[i] = True
                else:
                    following[i] = token
            if not following:
                break
            if len(following) <= len(active) // 2:
                for position, i in enumerate(active):
                    rows[i].kv = batch.extract(position)
                active = list(following)
                batch = _Batch([rows[i].kv for i in active], steps - step, self._layers, self._template(model, rows))
            tokens = torch.tensor([[following.get(i, self.pad_token_id)] for i in active], dtype=torch.long)
            valid = torch.tensor([[i in following] for i in active], dtype=torch.bool)
            logits = self._timed(model, batch.feed, tokens, valid)
        for position, i in enumerate(active):
            rows[i].kv = batch.extract(position)
        for row in rows:
            row.logits = None

    def _timed(self, model: torch.nn.Module, feed, tokens: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:  # noqa: ANN001
        started = time.perf_counter()
        logits = feed(model, tokens, valid, self._cache_argument)
        self.stats.forward_seconds += time.perf_counter() - started
        return logits


def _sample(logits: torch.Tensor, sampling: Sampling, generator: torch.Generator) -> tuple[int, float]:
    """Draw one token from ``logits`` under ``sampling``; temperature 0 is greedy (log-probability 0)."""
    if sampling.temperature <= 0:
        return int(logits.argmax()), 0.0
    logprobs = (logits / sampling.temperature).log_softmax(dim=-1)
    if sampling.top_p < 1:
        ordered, order = logprobs.sort(descending=True)
        probabilities = ordered.exp()
        outside = probabilities.cumsum(dim=-1) - probabilities > sampling.top_p  # the top token always stays
        ordered = ordered.masked_fill(outside, float("-inf"))
        logprobs = torch.full_like(logprobs, float("-inf")).scatter(-1, order, ordered).log_softmax(dim=-1)
    token = int(torch.multinomial(logprobs.exp(), 1, generator=generator))
    return token, float(logprobs[token])
