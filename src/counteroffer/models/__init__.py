"""The model runtime: what an LLM agent, the trainer and the server ask of a model.

- :mod:`.backend`: the chat-backend protocol (:class:`ChatBackend`), :class:`Sampling`, :class:`Completion`,
  :func:`split_reasoning` and :class:`AgentFailure` (a chat that failed by itself);
- :mod:`.engine`: the prefix-caching generator (:class:`~counteroffer.models.engine.CachedGenerator`);
- :mod:`.hf`: local Hugging Face chat models and their backend;
- :mod:`.bundled`: the bundled CPU model (SmolLM2-135M);
- :mod:`.endpoint`: OpenAI-compatible endpoints.

Importing this package loads only :mod:`.backend` (no torch, no openai client) and never the agents.
"""

from counteroffer.models.backend import (
    AgentFailure,
    Chat,
    ChatBackend,
    ChatMessage,
    Completion,
    Sampling,
    split_reasoning,
)

__all__ = ["AgentFailure", "Chat", "ChatBackend", "ChatMessage", "Completion", "Sampling", "split_reasoning"]
