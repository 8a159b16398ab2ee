"""Who speaks: the agent interface, scripted agents, LLM agents and the spec registry."""

from counteroffer.agents.base import Agent, AgentFailure, AgentSpecError, Message, Reply, TurnRequest
from counteroffer.agents.registry import make_agent

__all__ = ["Agent", "AgentFailure", "AgentSpecError", "Message", "Reply", "TurnRequest", "make_agent"]
