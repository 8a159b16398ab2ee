"""Local Hugging Face chat models: batched generation with a prefix cache and per-turn stopping.

One :class:`HFChatModel` is loaded per (model, dtype, device) and shared by every agent and server that asks for
it. :meth:`HFChatModel.generate` renders each chat with the model's chat template and hands the token ids to
its :class:`~counteroffer.models.engine.CachedGenerator`: earlier turns of a conversation come from the
cache, new tokens are fed in batches of ``max_batch``, and each sequence stops at the end of its turn.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from counteroffer.errors import ConfigError, InputNotFoundError
from counteroffer.models.backend import AgentFailure, Chat, ChatBackend, Completion, Sampling
from counteroffer.models.bundled import BUNDLED_ALIASES, ensure_bundled_checkpoint
from counteroffer.models.engine import CachedGenerator
from counteroffer.models.stop_tokens import END_OF_TURN_TOKENS, stop_token_ids

__all__ = [
    "END_OF_TURN_TOKENS",
    "TORCH_DTYPES",
    "GenerationOutput",
    "HFBackend",
    "HFChatModel",
    "load_chat_model",
    "load_model_and_tokenizer",
    "release_chat_models",
    "resolve_model_path",
    "stop_token_ids",
]


def resolve_model_path(model: str) -> str:
    """A model id or path for ``from_pretrained``; the bundled alias becomes its converted checkpoint.

    A name that can only be a folder (``./x``, ``/x``, ``~/x``, or more than one ``/``: a hub id has one) and is
    not one is reported as a missing folder, not as the hub's complaint about repository names."""
    if model.lower() in BUNDLED_ALIASES:
        return str(ensure_bundled_checkpoint())
    path = Path(model).expanduser()
    if model.startswith((".", "/", "~")) or model.count("/") > 1:
        if not path.is_dir():
            raise InputNotFoundError(
                f"no checkpoint folder {path.resolve()}: train it first (`counteroffer train ...`) or fix the path"
            )
        return str(path)
    return model


@dataclass(frozen=True, slots=True)
class GenerationOutput:
    text: str
    prompt_tokens: int
    completion_tokens: int


TORCH_DTYPES = {"auto": "auto", "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def load_model_and_tokenizer(model: str, dtype: str = "auto", device: str = "cpu"):  # noqa: ANN201
    """``from_pretrained`` for a model id, a path or the bundled alias, with a tokenizer that can pad."""
    if dtype not in TORCH_DTYPES:
        raise ConfigError(f"dtype must be one of {', '.join(TORCH_DTYPES)}, got {dtype!r}")
    path = resolve_model_path(model)
    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    loaded = AutoModelForCausalLM.from_pretrained(path, dtype=TORCH_DTYPES[dtype]).to(device)
    return loaded, tokenizer


class HFChatModel:
    """A loaded causal LM and its tokenizer, serving batched chat completions.

    Generation goes through a :class:`~counteroffer.models.engine.CachedGenerator`, so a conversation's next
    turn reuses the keys and values of everything it already fed, and rollouts that share a prompt compute it
    once. ``model`` may also be a model that is being trained (held-out evaluation during GRPO): generation
    switches it to eval mode and back; make a new ``HFChatModel`` after the weights change.
    """

    def __init__(self, name: str, model, tokenizer, *, max_batch: int = 16) -> None:  # noqa: ANN001
        self.name = name
        self.model = model
        self.tokenizer = tokenizer
        self.device = next(model.parameters()).device
        self.stop_token_ids = stop_token_ids(tokenizer)
        self.engine = CachedGenerator(model, tokenizer.pad_token_id, self.stop_token_ids, max_batch=max_batch)
        # generate() is not re-entrant; the server and agents may share one model from several threads.
        self._lock = threading.Lock()

    @property
    def max_batch(self) -> int:
        return self.engine.max_batch

    @max_batch.setter
    def max_batch(self, value: int) -> None:
        self.engine.max_batch = value

    @classmethod
    def load(cls, model: str, *, dtype: str = "auto", device: str = "cpu", max_batch: int = 16) -> HFChatModel:
        loaded, tokenizer = load_model_and_tokenizer(model, dtype, device)
        loaded.eval()
        return cls(model, loaded, tokenizer, max_batch=max_batch)

    def render(self, chat: Chat) -> str:
        return self.tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)

    def generate(
        self, chats: Sequence[Chat], sampling: Sampling | Sequence[Sampling], seed: int | Sequence[int]
    ) -> list[GenerationOutput]:
        """Complete every chat, with one sampling setting for all or one per chat, and one seed per chat (an int
        ``seed`` gives chat ``i`` the seed ``seed + i``). A chat's completion depends on its own prompt, sampling
        and seed only, not on the other chats of the batch."""
        samplings = [sampling] * len(chats) if isinstance(sampling, Sampling) else list(sampling)
        seeds = [seed + i for i in range(len(chats))] if isinstance(seed, int) else list(seed)
        if not len(samplings) == len(seeds) == len(chats):
            raise ValueError(f"{len(chats)} chats, {len(samplings)} sampling settings and {len(seeds)} seeds")
        prompts = [self.tokenizer(self.render(chat), add_special_tokens=False)["input_ids"] for chat in chats]
        with self._lock:
            turns = self.engine.generate(prompts, samplings, seeds)
        outputs = []
        for prompt, turn in zip(prompts, turns, strict=True):
            ended = bool(turn.ids) and turn.ids[-1] in self.engine.stop_token_ids
            text = self.tokenizer.decode(turn.ids[:-1] if ended else turn.ids, skip_special_tokens=True)
            outputs.append(GenerationOutput(text, len(prompt), len(turn.ids)))
        return outputs


_LOADED: dict[tuple[str, str, str], HFChatModel] = {}
_LOADING = threading.Lock()


def load_chat_model(model: str, dtype: str = "auto", device: str = "cpu", max_batch: int = 16) -> HFChatModel:
    """The shared instance of a model: a buyer, a seller and a server asking for it load it once.

    ``max_batch`` is a generation setting, not part of the identity: the last caller's value wins.
    """
    key = (resolve_model_path(model), dtype, device)
    with _LOADING:
        if key not in _LOADED:
            _LOADED[key] = HFChatModel.load(model, dtype=dtype, device=device, max_batch=max_batch)
        loaded = _LOADED[key]
        loaded.max_batch = max_batch
        return loaded


def release_chat_models() -> None:
    """Forget every shared model and its cache (a long script frees them between stages, e.g. before training)."""
    import gc

    with _LOADING:
        for model in _LOADED.values():
            model.engine.reset()
        _LOADED.clear()
    gc.collect()


class HFBackend(ChatBackend):
    def __init__(self, model: HFChatModel) -> None:
        self.model = model
        self.name = model.name

    @property
    def joint_key(self) -> object:
        return self.model

    def complete(
        self, chats: Sequence[Chat], samplings: Sequence[Sampling], seeds: Sequence[int]
    ) -> list[Completion | AgentFailure]:
        return [
            Completion(out.text, prompt_tokens=out.prompt_tokens, completion_tokens=out.completion_tokens)
            for out in self.model.generate(chats, samplings, seeds)
        ]
