"""Who speaks: the agent interface, scripted agents, LLM agents and the spec registry.

The models they run on live in :mod:`counteroffer.models`, the prompts they render in :mod:`counteroffer.prompts`.
:class:`LLMAgent` is loaded on first use, so importing this package (as the game, the rollout engine and the
training config do) leaves :mod:`counteroffer.agents.llm` unloaded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from counteroffer.agents.base import Agent, AgentFailure, AgentSpecError, Message, Reply, TurnRequest
from counteroffer.agents.registry import make_agent

if TYPE_CHECKING:
    from counteroffer.agents.llm.agent import LLMAgent

__all__ = ["Agent", "AgentFailure", "AgentSpecError", "LLMAgent", "Message", "Reply", "TurnRequest", "make_agent"]


def __getattr__(name: str) -> object:
    if name == "LLMAgent":
        from counteroffer.agents.llm.agent import LLMAgent

        return LLMAgent
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
