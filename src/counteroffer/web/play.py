"""A person plays one side of a game in the browser; an agent spec plays the other. Same rules, regulator and
scoring as every episode: the person's moves go through :meth:`Negotiation.play`, and the finished game is stored
in an episodes file like any bench's (``human:browser`` is the person's spec).

The opponent agent is not owned by a session: the app keeps one agent per (spec, side, persona) for all games, so
a local model loads once, and closes them when it stops."""

from __future__ import annotations

import random
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field

from counteroffer.agents.base import Agent, AgentSpecError
from counteroffer.agents.registry import make_agent
from counteroffer.catalog.models import Scenario
from counteroffer.errors import ConfigError
from counteroffer.game.messages import Action, ActionKind, Role
from counteroffer.game.negotiation import GameConfig, Negotiation
from counteroffer.game.records import EpisodeRecord, episode_key
from counteroffer.rollout.runner import EpisodeJob, record_of
from counteroffer.rollout.store import EpisodeStore
from counteroffer.rollout.turns import play_turn

HUMAN_SPEC = "human:browser"
ACTIONS = {
    Role.BUYER: (ActionKind.BUY, ActionKind.DEAL, ActionKind.REJECT, ActionKind.QUIT),
    Role.SELLER: (ActionKind.SELL, ActionKind.DEAL, ActionKind.REJECT, ActionKind.QUIT),
}


class GameStateError(ConfigError):
    """A move that the game cannot take now: it is over, or it is the agent's turn."""


@dataclass(slots=True)
class PlaySession:
    session_id: str
    human: Role
    opponent: Agent
    job: EpisodeJob
    game: Negotiation
    record: EpisodeRecord | None = None  # set when the game is over (and stored)
    notes: list[str] = field(default_factory=list)  # what went wrong, for the page

    @property
    def over(self) -> bool:
        return self.record is not None

    @property
    def awaits_person(self) -> bool:
        return not self.over and self.game.next_role is self.human

    @property
    def opponent_role(self) -> Role:
        return self.human.other


def make_opponent(spec: str, human: Role, persona: str) -> Agent:
    """The agent for the other side of a person's game (the persona shapes a seller only)."""
    role = human.other
    agent = make_agent(spec, role, persona if role is Role.SELLER else "neutral")
    if agent.needs_full_scenario:
        agent.close()
        raise AgentSpecError(f"{spec} plans against a simulated scripted seller, so it cannot play against a person")
    return agent


def start_session(
    scenario: Scenario,
    human: Role,
    opponent: Agent,
    store: EpisodeStore,
    *,
    persona: str,
    max_turns: int,
    in_progress: Iterable[str] = (),
) -> PlaySession:
    """A new game against ``opponent`` (from :func:`make_opponent`); when the person is the seller, the agent (the
    buyer) opens at once. ``in_progress``: the keys of games not finished yet (and so not stored yet)."""
    buyer, seller = (HUMAN_SPEC, opponent.spec) if human is Role.BUYER else (opponent.spec, HUMAN_SPEC)
    # Every game of the same sides, persona and scenario gets the next free rollout index, so no key repeats.
    taken = {r.key for r in store.stored()} | set(in_progress)
    index = next(
        i for i in range(len(taken) + 1) if episode_key(buyer, seller, persona, scenario.scenario_id, i) not in taken
    )
    job = EpisodeJob(buyer, seller, persona, scenario, index, random.SystemRandom().getrandbits(62))
    session = PlaySession(
        secrets.token_urlsafe(8), human, opponent, job, Negotiation(scenario, GameConfig(max_turns=max_turns))
    )
    _opponent_moves(session, store)
    return session


def human_move(
    session: PlaySession, store: EpisodeStore, kind: ActionKind, price: float | None, talk: str, thought: str
) -> None:
    """Play the person's message, then the agent's reply; store the episode when the game ends."""
    if not session.awaits_person:
        raise GameStateError("this game is over" if session.over else "it is not your turn")
    session.game.play(Action(kind, price if kind.takes_price else None), talk=talk, thought=thought)
    _opponent_moves(session, store)


def _opponent_moves(session: PlaySession, store: EpisodeStore) -> None:
    game = session.game
    while not game.done and game.next_role is session.opponent_role:
        # A failing agent (an AgentFailure: an endpoint still failing after its retries) ends the game as errored,
        # stored as a bench would store it and excluded from scores, rather than leaving it stuck on the agent's
        # turn. Any other exception is a bug and propagates.
        failure = play_turn(session.opponent, game, session.job.seed)
        if failure is not None:
            session.notes.append(f"{failure.spec} failed: {failure.cause}; the game is stored as errored")
            _finish(session, store, error=str(failure))
            return
    if game.done:
        _finish(session, store)


def _finish(session: PlaySession, store: EpisodeStore, error: str | None = None) -> None:
    session.record = record_of(session.job, session.game, error)
    store.append(session.record)
