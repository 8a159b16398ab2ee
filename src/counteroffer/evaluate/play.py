"""Play a single episode between two agent specs (what ``counteroffer play`` shows)."""

from __future__ import annotations

from counteroffer.agents.registry import make_agent
from counteroffer.catalog.models import Scenario
from counteroffer.defaults import DEFAULT_PERSONA
from counteroffer.game.messages import Role
from counteroffer.game.negotiation import DEFAULT_MAX_TURNS, GameConfig
from counteroffer.game.records import EpisodeRecord
from counteroffer.rollout.runner import plan_jobs, run_episodes


def play_episode(
    scenario: Scenario,
    buyer: str,
    seller: str,
    *,
    persona: str = DEFAULT_PERSONA,
    seed: int = 0,
    max_turns: int = DEFAULT_MAX_TURNS,
) -> EpisodeRecord:
    seller_agent = make_agent(seller, Role.SELLER, persona)
    buyer_agent = make_agent(buyer, Role.BUYER)
    buyer_agent.bind_opponent(seller_agent)
    records: list[EpisodeRecord] = []
    try:
        run_episodes(
            plan_jobs([scenario], [buyer], seller, persona, rollouts=1, base_seed=seed),
            lambda _: (buyer_agent, seller_agent),
            records.append,
            config=GameConfig(max_turns=max_turns),
        )
    finally:
        buyer_agent.close()
        seller_agent.close()
    return records[0]
