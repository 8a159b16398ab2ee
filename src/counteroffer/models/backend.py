"""What an LLM agent needs from a model: complete a batch of chats. Local models and endpoints implement it.

Also the vocabulary every backend shares: :class:`Sampling` settings, :class:`Completion` results,
:func:`split_reasoning` and :class:`AgentFailure`, the error a backend returns for a chat that failed by itself.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

ChatMessage = dict[str, str]
Chat = list[ChatMessage]

_THINK_RE = re.compile(r"<think>(.*?)(?:</think>|$)", re.DOTALL | re.IGNORECASE)
_ORPHAN_CLOSE_RE = re.compile(r"^(.*?)</think>", re.DOTALL | re.IGNORECASE)


class AgentFailure(RuntimeError):
    """An agent could not produce messages (an endpoint still failing after its retries, say).

    Backends return it for a chat that failed by itself; agents pass it on. The rollout engine records the
    affected episodes as errored; they are excluded from scores and re-run on resume. Any other exception from an
    agent is a bug and propagates. (Re-exported by :mod:`counteroffer.agents`.)
    """


@dataclass(frozen=True, slots=True)
class Sampling:
    temperature: float
    top_p: float = 1.0
    max_new_tokens: int = 128


@dataclass(frozen=True, slots=True)
class Completion:
    text: str
    reasoning: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0


def split_reasoning(text: str, reasoning: str = "") -> tuple[str, str]:
    """Separate a model's reasoning from its message.

    ``<think>…</think>`` blocks (an unclosed one runs to the end) and a leading ``…</think>`` whose opening tag
    the chat template already emitted are reasoning; so is a separate reasoning field (``reasoning``). Neither is
    parsed by the game or shown to the other side.
    """
    parts = [reasoning] if reasoning else []
    orphan = _ORPHAN_CLOSE_RE.match(text)
    if orphan is not None and "<think>" not in orphan.group(1).lower():
        parts.append(orphan.group(1))
        text = text[orphan.end() :]
    parts.extend(match.group(1) for match in _THINK_RE.finditer(text))
    content = _THINK_RE.sub("", text)
    return content.strip(), "\n".join(p.strip() for p in parts if p.strip())


class ChatBackend(ABC):
    """A model behind a chat interface. ``complete`` returns one item per chat, in order: a completion, or an
    :class:`AgentFailure` for a chat that failed by itself (an endpoint request that ran out of retries)."""

    name: str

    @property
    def joint_key(self) -> object | None:
        """Backends with the same key can complete chats of different agents in one call (one local model)."""
        return None

    @abstractmethod
    def complete(
        self, chats: Sequence[Chat], samplings: Sequence[Sampling], seeds: Sequence[int]
    ) -> list[Completion | AgentFailure]:
        """Complete every chat; ``samplings`` and ``seeds`` have one entry per chat."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the model or client."""
