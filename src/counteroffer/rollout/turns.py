"""The turn loop: an agent answers the pending turns of games and its answers are played, in one place.

Every caller that lets an agent speak goes through here: the rollout engine (:func:`~counteroffer.rollout.runner.
run_episodes`, many turns a round), the Gymnasium environment and the verifiers environment (the seller answering
the driven buyer, with :func:`play_exchange`), and the web app (the agent answering a person). :func:`play_turns`
asks each agent for its turns (agents sharing a ``joint_key`` in one :meth:`~counteroffer.agents.base.Agent.
act_jointly` call), plays the answers with :func:`play_message` and returns what failed.

Failure policy:

- **An agent failure** is an :class:`~counteroffer.agents.base.AgentFailure`, returned by ``act`` for one request
  or raised by ``act`` / ``act_jointly`` for its whole batch (every turn of the batch then fails). Each failed turn
  comes back as one :class:`TurnFailure` that names the agent's spec and the cause, and nothing is played into
  that turn's game: the game is exactly as it was, so asking again later is always safe. The other turns of the
  batch are played.
- **Anything else is a bug** and propagates: another exception from an agent, or an agent that answers with the
  wrong number of messages. It is never turned into a failed turn (an errored record would hide it, and re-running
  it on resume would hit it again).
- **No retry here.** An agent retries what is worth retrying where it knows how: an endpoint agent retries each
  request with exponential backoff and jitter on connection errors, timeouts, 429s, 5xx and malformed responses,
  and moves to another server when there is one (:mod:`counteroffer.models.endpoint`); a local model and a
  scripted agent do not fail transiently. An ``AgentFailure`` is what is left once those retries are spent, so
  retrying it at once would multiply the endpoint's attempts, and the episodes of the same round would wait for
  it. The retry is an episode's instead, one level up, where each caller has one: the bench re-runs errored
  episodes on resume, verifiers re-runs a rollout that raised ``vf.InfraError`` (``max_retries``), a Gymnasium
  caller calls ``step`` again with the same action (:func:`play_exchange` leaves the game as it was before the
  action).

How each caller maps a :class:`TurnFailure`: ``run_episodes`` records the episode as errored (excluded from the
scores, re-run on resume); :class:`~counteroffer.rollout.env.NegotiationEnv` raises it from ``step`` with the game
as before the step; the verifiers environment raises ``vf.InfraError``; the web app stores the game as errored and
says so on the page.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

from counteroffer.agents.base import Agent, AgentFailure, Message, TurnRequest
from counteroffer.game.negotiation import Negotiation, repair_text
from counteroffer.game.records import EventKind, GameEvent


class TurnFailure(AgentFailure):
    """An agent failed to answer a turn; nothing was played for it. ``str()`` is ``"SPEC: CAUSE"``, the ``error``
    of an errored episode record."""

    def __init__(self, spec: str, cause: AgentFailure) -> None:
        super().__init__(f"{spec}: {cause}")
        self.spec = spec
        self.cause = cause

    def __reduce__(self) -> tuple[type[TurnFailure], tuple[str, AgentFailure]]:
        return type(self), (self.spec, self.cause)


@dataclass(frozen=True, slots=True)
class PendingTurn:
    """A game waiting for ``agent`` (who must play its next role), with the episode's seed."""

    agent: Agent
    game: Negotiation
    seed: int

    def request(self) -> TurnRequest:
        """The turn as the agent sees it (the full scenario only for agents that declare they need it)."""
        game = self.game
        scenario = game.scenario if self.agent.needs_full_scenario else None
        return TurnRequest(game.view(game.next_role), self.seed, scenario)


def play_message(game: Negotiation, message: Message) -> None:
    """Play an agent's message and record how it was produced (reasoning, re-asks, fallback)."""
    if isinstance(message, str):
        game.step(message)
        return
    record = game.step(message.text)
    # Everything kept in the record must encode: the game repaired the message; these come straight from the agent.
    record.reasoning = repair_text(message.reasoning)[0]
    for attempt in message.reasks:
        record.events.append(GameEvent(EventKind.AGENT_REASKED, record.role, record.turn, repair_text(attempt)[0]))
    if message.fallback is not None:
        record.events.append(GameEvent(EventKind.AGENT_FALLBACK, record.role, record.turn, message.fallback))
        record.replaced_raw = repair_text(message.replaced)[0]


def play_turns(turns: Sequence[PendingTurn]) -> list[TurnFailure | None]:
    """Ask for and play every turn: one :class:`TurnFailure` (nothing played) or ``None`` (played) per turn, in order.

    Turns are grouped by agent, and agents by ``joint_key`` (an agent without one is its own group), in the order
    they first appear; each group is one ``act_jointly`` call of its first agent. See the module docstring for
    what fails and what propagates.
    """
    for turn in turns:
        if turn.game.done or turn.game.next_role is not turn.agent.role:
            raise ValueError(f"{turn.agent!r} has no turn to play in this game")
    groups: dict[object, dict[int, tuple[Agent, list[int]]]] = {}
    for index, turn in enumerate(turns):
        agent = turn.agent
        shared = groups.setdefault(agent.joint_key or id(agent), {})
        shared.setdefault(id(agent), (agent, []))[1].append(index)
    failures: list[TurnFailure | None] = [None] * len(turns)
    for members in groups.values():
        batches = [(agent, [turns[i].request() for i in indices]) for agent, indices in members.values()]
        try:
            answers = batches[0][0].act_jointly(batches)
        except AgentFailure as exc:
            for agent, indices in members.values():
                for i in indices:
                    failures[i] = TurnFailure(agent.spec, exc)
            continue
        if len(answers) != len(batches):
            raise RuntimeError(f"{batches[0][0]!r} answered {len(answers)} agents' batches for {len(batches)}")
        for (agent, indices), messages in zip(members.values(), answers, strict=True):
            if len(messages) != len(indices):
                raise RuntimeError(f"{agent!r} returned {len(messages)} messages for {len(indices)} requests")
            for i, message in zip(indices, messages, strict=True):
                if isinstance(message, AgentFailure):
                    failures[i] = TurnFailure(agent.spec, message)
                else:
                    play_message(turns[i].game, message)
    return failures


def play_turn(agent: Agent, game: Negotiation, seed: int) -> TurnFailure | None:
    """:func:`play_turns` for one turn: ``agent`` plays its turn in ``game``, or the failure (nothing played)."""
    return play_turns([PendingTurn(agent, game, seed)])[0]


def play_exchange(game: Negotiation, message: Message, responder: Agent, seed: int) -> TurnFailure | None:
    """Play ``message`` (the side the caller drives: a policy, a model) and, unless it ended the game,
    ``responder``'s answer, as one step: when the responder fails (its :class:`TurnFailure` is returned) or anything
    raises, ``game`` is restored to exactly what it was before ``message``, so the caller can play the same message
    again and the turn is played once."""
    before = _copy(game)
    try:
        play_message(game, message)
        failure = None if game.done else play_turn(responder, game, seed)
    except BaseException:
        _restore(game, before)
        raise
    if failure is not None:
        _restore(game, before)
    return failure


def _copy(game: Negotiation) -> Negotiation:
    """A deep copy of the game's state that shares its (immutable) scenario and config."""
    return copy.deepcopy(game, {id(game.scenario): game.scenario, id(game.config): game.config})


def _restore(game: Negotiation, saved: Negotiation) -> None:
    for name in Negotiation.__slots__:
        setattr(game, name, getattr(saved, name))
