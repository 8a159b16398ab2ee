"""Local Hugging Face chat models: batched generation with left padding and per-turn stopping.

One :class:`HFChatModel` is loaded per (model, dtype, device) and shared by every agent and server that asks for
it. :meth:`HFChatModel.generate` renders each chat with the model's chat template, sorts the batch by prompt
length (less padding), runs ``generate`` in chunks of ``max_batch`` with left padding and attention masks, and
stops each sequence at the end of its turn.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, LogitsProcessor, LogitsProcessorList

from counteroffer.agents.base import AgentFailure
from counteroffer.agents.llm.backend import Chat, ChatBackend, Completion, Sampling
from counteroffer.agents.llm.bundled import BUNDLED_ALIASES, ensure_bundled_checkpoint

# End-of-turn markers of common chat templates; whichever the tokenizer knows also stops generation.
END_OF_TURN_TOKENS = ("<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>", "<|endoftext|>")


def resolve_model_path(model: str) -> str:
    """A model id or path for ``from_pretrained``; the bundled alias becomes its converted checkpoint."""
    if model.lower() in BUNDLED_ALIASES:
        return str(ensure_bundled_checkpoint())
    return model


def batch_seed(seeds: Sequence[int]) -> int:
    """One generate call serves a whole batch, so the batch shares one seed derived from its members' seeds
    (order-independent: the same requests give the same seed however they were queued)."""
    return sum(seeds) % 2**31


@dataclass(frozen=True, slots=True)
class GenerationOutput:
    text: str
    prompt_tokens: int
    completion_tokens: int


def stop_token_ids(tokenizer) -> list[int]:  # noqa: ANN001 - any HF tokenizer
    """The end-of-sequence token and whichever common end-of-turn markers the tokenizer knows."""
    vocabulary = tokenizer.get_vocab()
    stop_ids = {tokenizer.eos_token_id, *(vocabulary[t] for t in END_OF_TURN_TOKENS if t in vocabulary)}
    return sorted(i for i in stop_ids if i is not None)


TORCH_DTYPES = {"auto": "auto", "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def load_model_and_tokenizer(model: str, dtype: str = "auto", device: str = "cpu"):  # noqa: ANN201
    """``from_pretrained`` for a model id, a path or the bundled alias, with a tokenizer that can pad."""
    if dtype not in TORCH_DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(TORCH_DTYPES)}, got {dtype!r}")
    path = resolve_model_path(model)
    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    loaded = AutoModelForCausalLM.from_pretrained(path, dtype=TORCH_DTYPES[dtype]).to(device)
    return loaded, tokenizer


class HFChatModel:
    """A loaded causal LM and its tokenizer, serving batched chat completions.

    ``model`` may also be a model that is being trained (held-out evaluation during GRPO): generation switches it
    to eval mode and back.
    """

    def __init__(self, name: str, model, tokenizer, *, max_batch: int = 16) -> None:  # noqa: ANN001
        self.name = name
        self.model = model
        self.tokenizer = tokenizer
        self.device = next(model.parameters()).device
        self.max_batch = max_batch
        self.stop_token_ids = stop_token_ids(tokenizer)
        # generate() is not re-entrant; the server and agents may share one model from several threads.
        self._lock = threading.Lock()

    @classmethod
    def load(cls, model: str, *, dtype: str = "auto", device: str = "cpu", max_batch: int = 16) -> HFChatModel:
        loaded, tokenizer = load_model_and_tokenizer(model, dtype, device)
        loaded.eval()
        return cls(model, loaded, tokenizer, max_batch=max_batch)

    def render(self, chat: Chat) -> str:
        return self.tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)

    def generate(
        self, chats: Sequence[Chat], sampling: Sampling | Sequence[Sampling], seed: int
    ) -> list[GenerationOutput]:
        """Complete every chat, with one sampling setting for all or one per chat.

        One ``generate`` call per chunk of ``max_batch`` chats of similar length; chats with different settings
        (a buyer at temperature 1.0 and a seller at 0.7 on the same model) share a call through per-row sampling.
        """
        samplings = [sampling] * len(chats) if isinstance(sampling, Sampling) else list(sampling)
        if len(samplings) != len(chats):
            raise ValueError(f"{len(samplings)} sampling settings for {len(chats)} chats")
        prompts = [self.render(chat) for chat in chats]
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        outputs: list[GenerationOutput] = [GenerationOutput("", 0, 0)] * len(prompts)
        for start in range(0, len(order), self.max_batch):
            chunk = order[start : start + self.max_batch]
            generated = self._generate_chunk([prompts[i] for i in chunk], [samplings[i] for i in chunk], seed + start)
            for index, output in zip(chunk, generated, strict=True):
                outputs[index] = output
        return outputs

    def _generate_chunk(self, prompts: list[str], samplings: list[Sampling], seed: int) -> list[GenerationOutput]:
        encoded = self.tokenizer(
            prompts, return_tensors="pt", padding=True, padding_side="left", add_special_tokens=False
        ).to(self.device)
        first = samplings[0]
        options: dict[str, object]
        if any(s != first for s in samplings):
            # Neutral built-in warpers; the per-row processor does temperature, top-p and greedy rows itself.
            options = {"do_sample": True, "temperature": 1.0, "top_p": 1.0, "top_k": 0}
            options["logits_processor"] = LogitsProcessorList([PerRowSampling(samplings, self.device)])
        elif first.temperature > 0:
            options = {"do_sample": True, "temperature": first.temperature, "top_p": first.top_p, "top_k": 0}
        else:
            options = {"do_sample": False}
        with self._lock, torch.inference_mode():
            was_training = self.model.training
            self.model.eval()
            torch.manual_seed(seed)
            try:
                generated = self.model.generate(
                    **encoded,
                    max_new_tokens=max(s.max_new_tokens for s in samplings),
                    eos_token_id=self.stop_token_ids,
                    pad_token_id=self.tokenizer.pad_token_id,
                    **options,
                )
            finally:
                self.model.train(was_training)
        new_tokens = generated[:, encoded["input_ids"].shape[1] :].tolist()
        prompt_lengths = encoded["attention_mask"].sum(dim=1).tolist()
        outputs = []
        stops = set(self.stop_token_ids)
        for tokens, prompt_length, sampling in zip(new_tokens, prompt_lengths, samplings, strict=True):
            tokens = tokens[: sampling.max_new_tokens]  # a row with a smaller budget stops at its own limit
            end = next((i for i, token in enumerate(tokens) if token in stops), len(tokens))
            text = self.tokenizer.decode(tokens[:end], skip_special_tokens=True)
            outputs.append(GenerationOutput(text, int(prompt_length), end + (1 if end < len(tokens) else 0)))
        return outputs


class PerRowSampling(LogitsProcessor):
    """Temperature and top-p per batch row (temperature 0 = greedy), so one ``generate`` call can serve agents
    with different sampling settings."""

    def __init__(self, samplings: Sequence[Sampling], device: str) -> None:
        self.temperature = torch.tensor([[max(s.temperature, 1e-6)] for s in samplings], device=device)
        self.top_p = torch.tensor([[s.top_p] for s in samplings], device=device)
        self.greedy = torch.tensor([[s.temperature == 0] for s in samplings], device=device)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        scores = scores / self.temperature
        if bool((self.top_p < 1).any()):
            ordered, indices = scores.sort(dim=-1, descending=True)
            probabilities = ordered.softmax(dim=-1)
            outside = probabilities.cumsum(dim=-1) - probabilities > self.top_p  # the top token always stays
            ordered = ordered.masked_fill(outside, float("-inf"))
            scores = torch.full_like(scores, float("-inf")).scatter(-1, indices, ordered)
        if bool(self.greedy.any()):
            best = scores.argmax(dim=-1, keepdim=True)
            only_best = torch.full_like(scores, float("-inf")).scatter(-1, best, 0.0)
            scores = torch.where(self.greedy, only_best, scores)
        return scores


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
            for out in self.model.generate(chats, samplings, batch_seed(seeds))
        ]
