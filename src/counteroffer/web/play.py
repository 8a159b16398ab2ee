"""A person plays one side of a game in the browser; an agent spec plays the other. Same rules, regulator and
scoring as every episode: the person's moves go through :meth:`Negotiation.play`, and the finished game is stored
in an episodes file like any bench's (``human:browser`` is the person's spec)."""

from __future__ import annotations

import random
import secrets
from dataclasses import dataclass, field

from counteroffer.agents.base import Agent, AgentFailure, TurnRequest
from counteroffer.agents.registry import make_agent
from counteroffer.catalog.models import Scenario
from counteroffer.game.messages import Action, ActionKind, Role
from counteroffer.game.negotiation import GameConfig, Negotiation
from counteroffer.game.records import EpisodeRecord, episode_key
from counteroffer.rollout.runner import EpisodeJob, play_message, record_of
from counteroffer.rollout.store import EpisodeStore

HUMAN_SPEC = "human:browser"
ACTIONS = {
    Role.BUYER: (ActionKind.BUY, ActionKind.DEAL, ActionKind.REJECT, ActionKind.QUIT),
    Role.SELLER: (ActionKind.SELL, ActionKind.DEAL, ActionKind.REJECT, ActionKind.QUIT),
}


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
    def opponent_role(self) -> Role:
        return Role.SELLER if self.human is Role.BUYER else Role.BUYER


def start_session(
    scenario: Scenario, human: Role, opponent_spec: str, store: EpisodeStore, *, persona: str, max_turns: int
) -> PlaySession:
    """A new game; when the person is the seller, the agent (the buyer) opens at once."""
    opponent_role = Role.SELLER if human is Role.BUYER else Role.BUYER
    opponent = make_agent(opponent_spec, opponent_role, persona if opponent_role is Role.SELLER else "neutral")
    buyer, seller = (HUMAN_SPEC, opponent_spec) if human is Role.BUYER else (opponent_spec, HUMAN_SPEC)
    # Every game of the same people, persona and scenario gets the next rollout index, so no key repeats.
    taken = {r.key for r in store.records()}
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
    if session.game.done:
        raise ValueError("this game is over")
    session.game.play(Action(kind, price if kind.takes_price else None), talk=talk, thought=thought)
    _opponent_moves(session, store)


def _opponent_moves(session: PlaySession, store: EpisodeStore) -> None:
    game = session.game
    while not game.done and game.next_role is session.opponent_role:
        agent = session.opponent
        request = TurnRequest(
            game.view(agent.role), session.job.seed, game.scenario if agent.needs_full_scenario else None
        )
        [reply] = agent.act([request])
        if isinstance(reply, AgentFailure):
            session.notes.append(f"{agent.spec} failed: {reply}; the game is stored as errored")
            _finish(session, store, error=str(reply))
            return
        play_message(game, reply)
    if game.done:
        _finish(session, store)


def _finish(session: PlaySession, store: EpisodeStore, error: str | None = None) -> None:
    session.record = record_of(session.job, session.game, error)
    store.append(session.record)
    session.opponent.close()
