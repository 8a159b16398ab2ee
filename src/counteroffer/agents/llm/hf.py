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


@dataclass(frozen=True, slots=True)
class GenerationOutput:
    text: str
    prompt_tokens: int
    completion_tokens: int


class HFChatModel:
    def __init__(self, model: str, *, dtype: str = "auto", device: str = "cpu", max_batch: int = 16) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.name = model
        self.path = resolve_model_path(model)
        self.device = device
        self.max_batch = max_batch
        self.tokenizer = AutoTokenizer.from_pretrained(self.path)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        torch_dtype = {"auto": "auto", "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
        if dtype not in torch_dtype:
            raise ValueError(f"dtype must be one of {', '.join(torch_dtype)}, got {dtype!r}")
        self.model = AutoModelForCausalLM.from_pretrained(self.path, dtype=torch_dtype[dtype]).to(device)
        self.model.eval()
        vocabulary = self.tokenizer.get_vocab()
        stop_ids = {self.tokenizer.eos_token_id, *(vocabulary[t] for t in END_OF_TURN_TOKENS if t in vocabulary)}
        self.stop_token_ids = sorted(i for i in stop_ids if i is not None)
        # generate() is not re-entrant; the server and agents may share one model from several threads.
        self._lock = threading.Lock()

    def render(self, chat: Chat) -> str:
        return self.tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)

    def generate(self, chats: Sequence[Chat], sampling: Sampling, seed: int) -> list[GenerationOutput]:
        """Complete every chat; one ``generate`` call per chunk of ``max_batch`` chats of similar length."""
        prompts = [self.render(chat) for chat in chats]
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        outputs: list[GenerationOutput | None] = [None] * len(prompts)
        for start in range(0, len(order), self.max_batch):
            chunk = order[start : start + self.max_batch]
            for index, output in zip(
                chunk, self._generate_chunk([prompts[i] for i in chunk], sampling, seed + start), strict=False
            ):
                outputs[index] = output
        return [o for o in outputs if o is not None]

    def _generate_chunk(self, prompts: list[str], sampling: Sampling, seed: int) -> list[GenerationOutput]:
        import torch

        encoded = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
        sample = sampling.temperature > 0
        options = {"temperature": sampling.temperature, "top_p": sampling.top_p} if sample else {}
        with self._lock, torch.inference_mode():
            torch.manual_seed(seed)
            generated = self.model.generate(
                **encoded,
                do_sample=sample,
                max_new_tokens=sampling.max_new_tokens,
                eos_token_id=self.stop_token_ids,
                pad_token_id=self.tokenizer.pad_token_id,
                **options,
            )
        new_tokens = generated[:, encoded["input_ids"].shape[1] :].tolist()
        prompt_lengths = encoded["attention_mask"].sum(dim=1).tolist()
        outputs = []
        stops = set(self.stop_token_ids)
        for tokens, prompt_length in zip(new_tokens, prompt_lengths, strict=True):
            end = next((i for i, token in enumerate(tokens) if token in stops), len(tokens))
            text = self.tokenizer.decode(tokens[:end], skip_special_tokens=True)
            outputs.append(GenerationOutput(text, int(prompt_length), end + (1 if end < len(tokens) else 0)))
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
            _LOADED[key] = HFChatModel(model, dtype=dtype, device=device, max_batch=max_batch)
        loaded = _LOADED[key]
        loaded.max_batch = max_batch
        return loaded


class HFBackend(ChatBackend):
    def __init__(self, model: HFChatModel) -> None:
        self.model = model
        self.name = model.name

    def complete(
        self, chats: Sequence[Chat], sampling: Sampling, seeds: Sequence[int]
    ) -> list[Completion | AgentFailure]:
        # One generate call serves the whole batch, so the batch shares one seed derived from its members'.
        batch_seed = sum(seeds) % 2**31
        return [
            Completion(out.text, prompt_tokens=out.prompt_tokens, completion_tokens=out.completion_tokens)
            for out in self.model.generate(chats, sampling, batch_seed)
        ]
