"""Who speaks: the agent interface, scripted agents and the spec registry."""

from counteroffer.agents.base import Agent, AgentFailure, AgentSpecError, TurnRequest
from counteroffer.agents.registry import make_agent

__all__ = ["Agent", "AgentFailure", "AgentSpecError", "TurnRequest", "make_agent"]
