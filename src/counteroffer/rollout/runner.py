"""The rollout engine: many episodes at once, in rounds.

Each round, every live episode has exactly one pending turn; the pending turns are grouped by the agent that
must answer them and each agent answers its whole group with one :meth:`Agent.act` call (one batched
``generate`` for a local model, concurrent requests for an endpoint). Finished episodes leave the pool and are
handed to ``on_finished`` at once (the bench appends them to the episodes file), and the pool is refilled from
the queue so batches stay full.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from counteroffer.agents.base import Agent, AgentFailure, Message, TurnRequest
from counteroffer.catalog.models import Scenario
from counteroffer.game.negotiation import GameConfig, Negotiation, repair_text
from counteroffer.game.records import EpisodeRecord, EpisodeStatus, EventKind, GameEvent, episode_key
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


def _turn_request(episode: _Live, agent: Agent) -> TurnRequest:
    """The pending turn of ``episode`` as ``agent`` sees it (the full scenario only for agents that declare it)."""
    return TurnRequest(
        episode.game.view(episode.game.next_role),
        episode.job.seed,
        episode.job.scenario if agent.needs_full_scenario else None,
    )


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


def run_episodes(
    jobs: Iterable[EpisodeJob],
    agents: Callable[[EpisodeJob], tuple[Agent, Agent]],
    on_finished: Callable[[EpisodeRecord], None],
    *,
    config: GameConfig | None = None,
    concurrency: int = 64,
) -> int:
    """Play ``jobs`` with ``agents(job) -> (buyer, seller)``, at most ``concurrency`` at once.

    Every episode ends in exactly one ``on_finished`` call: scored, or ``errored`` when its agent returned (or
    raised, for its whole batch) an :class:`AgentFailure`. Returns the number of episodes played.
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
        # Pending turns grouped by the agent that answers them, and agents by what they can share: the turns of a
        # buyer and a seller on one local model go through one generate call.
        groups: dict[object, dict[int, tuple[Agent, list[_Live]]]] = {}
        for episode in live:
            agent = episode.buyer if episode.game.next_role is episode.buyer.role else episode.seller
            shared = groups.setdefault(agent.joint_key or id(agent), {})
            shared.setdefault(id(agent), (agent, []))[1].append(episode)
        failed: dict[int, str] = {}
        for members in groups.values():
            batches = [(agent, [_turn_request(e, agent) for e in episodes]) for agent, episodes in members.values()]
            lead = batches[0][0]
            try:
                answers = lead.act_jointly(batches)
            except AgentFailure as exc:
                for agent, episodes in members.values():
                    for e in episodes:
                        failed[id(e)] = f"{agent.spec}: {exc}"
                continue
            for (agent, episodes), messages in zip(members.values(), answers, strict=True):
                if len(messages) != len(episodes):
                    raise RuntimeError(f"{agent!r} returned {len(messages)} messages for {len(episodes)} requests")
                for episode, message in zip(episodes, messages, strict=True):
                    if isinstance(message, AgentFailure):
                        failed[id(episode)] = f"{agent.spec}: {message}"
                    else:
                        play_message(episode.game, message)
        still_live = []
        for episode in live:
            error = failed.get(id(episode))
            if error is not None or episode.game.done:
                on_finished(record_of(episode.job, episode.game, error))
                played += 1
            else:
                still_live.append(episode)
        live = still_live
