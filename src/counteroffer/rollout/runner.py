"""The rollout engine: many episodes at once, in rounds.

Each round, every live episode has exactly one pending turn; :func:`~counteroffer.rollout.turns.play_turns` groups
the pending turns by the agent that must answer them and each agent answers its whole group with one
:meth:`Agent.act` call (one batched ``generate`` for a local model, concurrent requests for an endpoint).
Finished episodes leave the pool and are handed to ``on_finished`` at once (the bench appends them to the
episodes file), and the pool is refilled from the queue so batches stay full.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from counteroffer.agents.base import Agent
from counteroffer.catalog.models import Scenario
from counteroffer.game.negotiation import GameConfig, Negotiation
from counteroffer.game.records import EpisodeRecord, EpisodeStatus, episode_key
from counteroffer.rollout.turns import PendingTurn, play_turns
from counteroffer.seeding import derive_seed


@dataclass(frozen=True, slots=True)
class EpisodeJob:
    """One episode to play: who plays, on which scenario, which rollout, with which seed."""

    buyer: str
    seller: str
    persona: str
    scenario: Scenario
    rollout_index: int
    seed: int

    @property
    def key(self) -> str:
        return episode_key(self.buyer, self.seller, self.persona, self.scenario.scenario_id, self.rollout_index)


def episode_seed(base_seed: int, scenario_id: str, rollout_index: int) -> int:
    """A stable seed per (scenario, rollout), the same for every buyer, so buyers are compared on paired episodes."""
    return derive_seed(base_seed, scenario_id, rollout_index)


def plan_jobs(
    scenarios: Sequence[Scenario],
    buyers: Sequence[str],
    seller: str,
    persona: str,
    rollouts: int,
    base_seed: int = 0,
) -> list[EpisodeJob]:
    return [
        EpisodeJob(buyer, seller, persona, scenario, index, episode_seed(base_seed, scenario.scenario_id, index))
        for buyer in buyers
        for scenario in scenarios
        for index in range(rollouts)
    ]


@dataclass(slots=True)
class _Live:
    job: EpisodeJob
    game: Negotiation
    buyer: Agent
    seller: Agent


def record_of(job: EpisodeJob, game: Negotiation, error: str | None = None) -> EpisodeRecord:
    """The record of a finished (or, with ``error``, an errored) episode."""
    finished = error is None
    return EpisodeRecord(
        key=job.key,
        status=EpisodeStatus.OK if finished else EpisodeStatus.ERRORED,
        buyer=job.buyer,
        seller=job.seller,
        persona=job.persona,
        rollout_index=job.rollout_index,
        seed=job.seed,
        max_turns=game.config.max_turns,
        scenario=job.scenario,
        messages=game.messages,
        outcome=game.outcome,
        price=game.price,
        reward=game.reward if finished else 0.0,
        metrics=game.metrics() if finished else None,
        error=error,
    )


def _agent_up(episode: _Live) -> Agent:
    """The agent whose turn it is in ``episode``."""
    return episode.buyer if episode.game.next_role is episode.buyer.role else episode.seller


def run_episodes(
    jobs: Iterable[EpisodeJob],
    agents: Callable[[EpisodeJob], tuple[Agent, Agent]],
    on_finished: Callable[[EpisodeRecord], None],
    *,
    config: GameConfig | None = None,
    concurrency: int = 64,
) -> int:
    """Play ``jobs`` with ``agents(job) -> (buyer, seller)``, at most ``concurrency`` at once.

    Every episode ends in exactly one ``on_finished`` call: scored, or ``errored`` when its agent failed (returned,
    or raised for its whole batch, an :class:`~counteroffer.agents.base.AgentFailure`): the record's ``error`` is
    the :class:`~counteroffer.rollout.turns.TurnFailure`, ``"SPEC: CAUSE"``, and the bench re-runs the episode on
    resume. Any other exception from an agent is a bug and propagates (the failure policy of
    :mod:`counteroffer.rollout.turns`). Returns the number of episodes played.
    """
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, got {concurrency}")
    config = config or GameConfig()
    queue = iter(jobs)
    live: list[_Live] = []
    played = 0
    exhausted = False
    while True:
        while not exhausted and len(live) < concurrency:
            job = next(queue, None)
            if job is None:
                exhausted = True
                break
            buyer, seller = agents(job)
            live.append(_Live(job, Negotiation(job.scenario, config), buyer, seller))
        if not live:
            return played
        # Every live episode's pending turn, answered by its buyer or its seller; play_turns batches them by agent
        # and by joint_key (a buyer and a seller on one local model: one generate call).
        failures = play_turns([PendingTurn(_agent_up(e), e.game, e.job.seed) for e in live])
        still_live = []
        for episode, failure in zip(live, failures, strict=True):
            if failure is not None or episode.game.done:
                on_finished(record_of(episode.job, episode.game, None if failure is None else str(failure)))
                played += 1
            else:
                still_live.append(episode)
        live = still_live
