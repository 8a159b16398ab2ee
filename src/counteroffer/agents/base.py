"""The agent interface: a batch of role views in, one message per view out.

An agent speaks for one role. :meth:`Agent.act` receives the pending turns of many live episodes at once, so an
LLM agent can answer them with one batched ``generate`` call or many concurrent requests, and returns one raw
message per request, in order. The game parses and scores whatever comes back.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

from counteroffer.catalog.models import Scenario
from counteroffer.errors import ConfigError
from counteroffer.game.messages import Role
from counteroffer.game.negotiation import RoleView
from counteroffer.models.backend import AgentFailure  # a backend's error, passed on by agents

__all__ = ["Agent", "AgentFailure", "AgentSpecError", "Message", "Reply", "TurnRequest", "turn_seed"]
from counteroffer.seeding import derive_seed


@dataclass(frozen=True, slots=True)
class TurnRequest:
    """One pending turn: the role's view and the episode's seed.

    ``scenario`` carries both private values and is given only to agents that declare
    ``needs_full_scenario`` (the oracle buyer, an upper bound by design); everyone else sees only ``view``.
    """

    view: RoleView
    seed: int
    scenario: Scenario | None = None


def turn_seed(request: TurnRequest) -> int:
    """The sampling seed of one turn: the episode's seed and the turn number (so rollouts differ, turns differ,
    and the same episode replays the same text)."""
    return derive_seed(request.seed, "turn", request.view.turn, bits=31)


@dataclass(frozen=True, slots=True)
class Reply:
    """An agent's message with what the record should know about how it was produced.

    ``reasoning`` is a model's separate reasoning (``<think>`` blocks, a reasoning field), kept out of the message
    the game parses and the other side sees; ``reasks`` are earlier malformed attempts that were asked again;
    ``fallback`` names the agent that wrote ``text`` when the agent itself could not produce a valid message, and
    ``replaced`` is the agent's own last (unusable) text in that case, kept for the record.
    """

    text: str
    reasoning: str = ""
    reasks: tuple[str, ...] = ()
    fallback: str | None = None
    replaced: str = ""


Message = str | Reply


class Agent(ABC):
    """A negotiator for one role. Subclasses implement :meth:`act`."""

    needs_full_scenario = False

    def __init__(self, spec: str, role: Role) -> None:
        self.spec = spec
        self.role = role

    @abstractmethod
    def act(self, requests: Sequence[TurnRequest]) -> list[Message | AgentFailure]:
        """One message per request, in the same order: raw text, a :class:`Reply`, or an :class:`AgentFailure`
        for a request that failed on its own (the others in the batch still count)."""

    @property
    def joint_key(self) -> object | None:
        """Agents with the same non-None key can answer their turns in one :meth:`act_jointly` call (a buyer and
        a seller on one local model: one ``generate`` for both)."""
        return None

    def act_jointly(self, groups: Sequence[tuple[Agent, Sequence[TurnRequest]]]) -> list[list[Message | AgentFailure]]:
        """:meth:`act` for several agents sharing this agent's ``joint_key``; by default one call each."""
        return [agent.act(requests) for agent, requests in groups]

    def bind_opponent(self, opponent: Agent) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Called once before a run with the agent on the other side (the oracle simulates it)."""

    def close(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Release resources (model memory, HTTP clients)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec!r}, {self.role})"


class AgentSpecError(ConfigError):
    """An agent spec string that names no known agent or has bad parameters."""
