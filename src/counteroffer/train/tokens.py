"""One multi-turn episode as the token sequence the buyer model saw, with a mask of the tokens it wrote.

GRPO trains on exactly the tokens that were sampled, so the sequence is built incrementally: the first prompt is
the chat template over the buyer's first chat; each buyer turn appends the tokens the model generated (mask 1);
each seller reply appends only the *new* text the template adds for it (the end of the buyer's turn, the
seller's message as the buyer is shown it, the opening of the next assistant turn; mask 0). Earlier tokens are
never re-rendered, so a template that would render past turns differently cannot silently change what is
trained; a template whose rendering of the earlier turns changes is refused with :class:`TemplateDriftError`.

SFT builds demonstrations with the same class (the scripted buyer's text tokenised in place of sampled tokens),
so the warm start and the RL stage train on one format, the one the ``hf:`` agent prompts with.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from counteroffer.errors import CounterofferError
from counteroffer.models.backend import Chat
from counteroffer.models.stop_tokens import stop_token_ids

# An assistant message the template cannot mistake for anything else; where it lands splits old text from new.
_SENTINEL = "\u2063COUNTEROFFER-SENTINEL\u2063"


class TemplateDriftError(CounterofferError, RuntimeError):
    """The chat template renders earlier turns differently once a new turn is added."""


class ChatTokenizer:
    """The chat template and tokenizer of one model, with the end-of-turn token it stops on."""

    def __init__(self, tokenizer) -> None:  # noqa: ANN001 - any HF tokenizer
        self.tokenizer = tokenizer
        self.stop_token_ids = frozenset(stop_token_ids(tokenizer))
        # The token that closes an assistant turn in the template: the first stop token the template emits.
        probe = self.render([{"role": "user", "content": "x"}, {"role": "assistant", "content": _SENTINEL}], False)
        after = probe[probe.index(_SENTINEL) + len(_SENTINEL) :]
        ids = self.encode(after)
        self.end_of_turn_id = next((t for t in ids if t in self.stop_token_ids), tokenizer.eos_token_id)

    def render(self, chat: Chat, generation_prompt: bool = True) -> str:
        return self.tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=generation_prompt)

    def encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def decode_message(self, ids: Sequence[int]) -> str:
        """The text of a generated turn: up to its end-of-turn token, without special tokens."""
        end = next((i for i, token in enumerate(ids) if token in self.stop_token_ids), len(ids))
        return self.tokenizer.decode(list(ids[:end]), skip_special_tokens=True).strip()


@dataclass(slots=True)
class EpisodeTokens:
    """The growing token sequence of one episode: ``prompt_ids`` then ``completion_ids`` with a mask and the
    sampling log-probabilities of the generated tokens (0 for inserted text, which the mask excludes)."""

    prompt_ids: list[int] = field(default_factory=list)
    completion_ids: list[int] = field(default_factory=list)
    mask: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    _rendered: str = ""  # the template's text of everything so far, up to the buyer's pending reply
    _last_chat: Chat = field(default_factory=list)

    @property
    def ids(self) -> list[int]:
        """What the model is fed for its next turn."""
        return self.prompt_ids + self.completion_ids

    def observe(self, chat: Chat, chat_tokenizer: ChatTokenizer) -> None:
        """Bring the sequence up to ``chat`` (the buyer's chat at its next turn, ending in a user message)."""
        if not self.prompt_ids:
            self._rendered = chat_tokenizer.render(chat)
            self.prompt_ids = chat_tokenizer.encode(self._rendered)
            self._last_chat = list(chat)
            return
        known = len(self._last_chat)
        if chat[:known] != self._last_chat or len(chat) < known + 2 or chat[known]["role"] != "assistant":
            raise ValueError("the new chat must extend the previous one by the buyer's reply and new messages")
        probe_chat = [*self._last_chat, {"role": "assistant", "content": _SENTINEL}, *chat[known + 1 :]]
        probe = chat_tokenizer.render(probe_chat)
        cut = probe.find(_SENTINEL)
        if cut < 0 or probe[:cut] != self._rendered:
            raise TemplateDriftError(
                "the chat template renders the earlier turns differently once a turn is added; multi-turn training "
                "needs a template that only appends (ChatML, Llama 3 and Qwen instruct templates do)"
            )
        new_text = probe[cut + len(_SENTINEL) :]
        if self.completion_ids and self.completion_ids[-1] in chat_tokenizer.stop_token_ids:
            # The buyer's own end-of-turn token was sampled (and trained); only the text after it is new.
            closing = chat_tokenizer.tokenizer.decode([self.completion_ids[-1]])
            if new_text.startswith(closing):
                new_text = new_text[len(closing) :]
        inserted = chat_tokenizer.encode(new_text)
        self.completion_ids.extend(inserted)
        self.mask.extend([0] * len(inserted))
        self.logprobs.extend([0.0] * len(inserted))
        self._rendered = chat_tokenizer.render(chat)
        self._last_chat = list(chat)

    def add_generated(self, ids: Sequence[int], logprobs: Sequence[float] | None = None) -> None:
        """Append the tokens the buyer wrote this turn (mask 1)."""
        self.completion_ids.extend(ids)
        self.mask.extend([1] * len(ids))
        self.logprobs.extend(logprobs if logprobs is not None else [0.0] * len(ids))

    def add_written(self, text: str, chat_tokenizer: ChatTokenizer) -> None:
        """Append a message written outside the model (an SFT demonstration) as if the model had generated it,
        closed by the template's end-of-turn token."""
        self.add_generated([*chat_tokenizer.encode(text), chat_tokenizer.end_of_turn_id])
