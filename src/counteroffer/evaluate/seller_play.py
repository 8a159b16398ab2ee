"""How an LLM seller plays: whether its own messages carry the game, and how it concedes, per seller and persona.

A seller's malformed message is asked again, and if it still fails the scripted fallback writes the turn, so a
seller that cannot follow the format still yields playable episodes — whose numbers are the fallback's. This
summary says how much of the play was the model's own:

- ``reask_rate``: the share of seller turns whose first message did not parse (the model was asked again);
- ``fallback_rate``: the share of seller turns written by the fallback (the re-asks failed too);
- ``regulator_interventions``: per episode, the game's corrections of a seller (a price below cost blocked, a
  stated cost redacted), counted whatever the model writes;
- ``deal_rate`` and ``seller_reward`` (:func:`~counteroffer.game.reward.seller_reward`, the seller's share of the
  surplus) with 95% intervals: its concession behaviour.

Intervals resample products (:mod:`counteroffer.evaluate.stats`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from pydantic import BaseModel

from counteroffer.evaluate.stats import Estimate, bootstrap_mean, rate_estimate
from counteroffer.game.messages import Role
from counteroffer.game.records import EpisodeRecord, EpisodeStatus, EventKind, Outcome
from counteroffer.game.reward import seller_reward


class SellerPlay(BaseModel):
    seller: str
    persona: str
    episodes: int
    seller_turns: int
    reask_rate: float | None
    fallback_rate: float | None
    regulator_interventions: Estimate
    deal_rate: Estimate
    seller_reward: Estimate


def _seller_play(seller: str, persona: str, records: list[EpisodeRecord]) -> SellerPlay:
    turns = [m for r in records for m in r.messages if m.role is Role.SELLER]
    kinds = [{event.kind for event in m.events} for m in turns]
    reasked = sum(EventKind.AGENT_REASKED in k for k in kinds)
    fell_back = sum(EventKind.AGENT_FALLBACK in k for k in kinds)
    interventions = [
        sum(e.kind.is_regulator_intervention for m in r.messages if m.role is Role.SELLER for e in m.events)
        for r in records
    ]
    products = [r.scenario_id for r in records]
    return SellerPlay(
        seller=seller,
        persona=persona,
        episodes=len(records),
        seller_turns=len(turns),
        reask_rate=reasked / len(turns) if turns else None,
        fallback_rate=fell_back / len(turns) if turns else None,
        regulator_interventions=bootstrap_mean(interventions, clusters=products),
        deal_rate=rate_estimate([r.outcome is Outcome.DEAL for r in records], clusters=products),
        seller_reward=bootstrap_mean(
            [seller_reward(r.outcome, r.price, r.scenario.budget, r.scenario.cost) for r in records],
            clusters=products,
        ),
    )


def summarize_seller_play(records: Iterable[EpisodeRecord]) -> list[SellerPlay]:
    """One row per (seller, persona), over the finished episodes (errored ones are left out), sorted."""
    groups: dict[tuple[str, str], list[EpisodeRecord]] = defaultdict(list)
    for record in records:
        if record.status is EpisodeStatus.OK and record.outcome is not None:
            groups[record.seller, record.persona].append(record)
    return [_seller_play(seller, persona, groups[seller, persona]) for seller, persona in sorted(groups)]
