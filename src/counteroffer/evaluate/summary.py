"""Aggregate metrics of a set of episodes, overall and split by mutual / conflicting interest."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from pydantic import BaseModel

from counteroffer.evaluate.stats import Estimate, bootstrap_mean, rate_estimate
from counteroffer.game.records import EpisodeMetrics, EpisodeRecord, EpisodeStatus
from counteroffer.rollout.store import StoredEpisode


class GroupSummary(BaseModel):
    episodes: int
    reward: Estimate
    deal_rate: Estimate
    bargained_ratio: Estimate  # over mutual-interest deals only
    overshoot_rate: Estimate
    first_offer_ratio: Estimate
    turns: Estimate
    format_error_rate: Estimate
    protocol_error_rate: Estimate
    regulator_interventions: Estimate  # per episode
    misquote_rate: Estimate  # episodes where the buyer misquoted its budget or arithmetic (game/quotes.py)
    # Episodes where the buyer's Talk made a checked argument, and where one was false (game/arguments.py); None in
    # summaries written before they were counted.
    argument_rate: Estimate | None = None
    false_claim_rate: Estimate | None = None
    # Episodes whose arguments answered the seller's hint (game/hints.py), over those with a hint.
    argument_match_rate: Estimate | None = None


class RowSummary(BaseModel):
    """One (buyer, seller, persona) cell of a bench."""

    buyer: str
    seller: str
    persona: str
    episodes: int
    errored: int  # excluded from every metric; re-run on resume
    overall: GroupSummary
    mutual_interest: GroupSummary
    conflicting_interest: GroupSummary


_METRICS: dict[str, Callable[[EpisodeMetrics], float | None]] = {
    "reward": lambda m: m.reward,
    "deal_rate": lambda m: float(m.deal),
    # A conflicting-interest deal is always an overshoot, and its (B - P)/(B - C) is positive and above 1: it would
    # read as excellent bargaining, so the ratio is taken over mutual-interest deals only.
    "bargained_ratio": lambda m: m.bargained_ratio if m.mutual_interest else None,
    "overshoot_rate": lambda m: float(m.overshoot),
    "first_offer_ratio": lambda m: m.first_offer_ratio,
    "turns": lambda m: float(m.turns),
    "format_error_rate": lambda m: float(m.format_error),
    "protocol_error_rate": lambda m: float(m.protocol_error),
    "regulator_interventions": lambda m: float(m.regulator_interventions),
    "misquote_rate": lambda m: float(m.misquote) if m.misquote is not None else None,
    "argument_rate": lambda m: float(m.arguments > 0) if m.arguments is not None else None,
    "false_claim_rate": lambda m: float(m.false_claims > 0) if m.false_claims is not None else None,
    "argument_match_rate": lambda m: float(m.argument_match) if m.argument_match is not None else None,
}


def mean_metrics(metrics: Sequence[EpisodeMetrics]) -> dict[str, float | None]:
    """Plain means of every metric (no intervals): for training logs, where a step has few episodes."""
    means: dict[str, float | None] = {}
    for name, read in _METRICS.items():
        values = [v for v in map(read, metrics) if v is not None]
        means[name] = sum(values) / len(values) if values else None
    return means


# The metrics that are shares of episodes with an event: they also get the exact binomial interval.
_RATES = frozenset(name for name in _METRICS if name.endswith("_rate"))


def summarize_group(metrics: Sequence[EpisodeMetrics], products: Sequence[str], seed: int = 0) -> GroupSummary:
    """Every metric's mean with its interval, resampling ``products`` (each episode's product, in order)."""
    estimates = {}
    for name, read in _METRICS.items():
        pairs = [(product, v) for product, v in zip(products, map(read, metrics), strict=True) if v is not None]
        values, clusters = [v for _, v in pairs], [product for product, _ in pairs]
        estimate = rate_estimate if name in _RATES else bootstrap_mean
        estimates[name] = estimate(values, clusters=clusters, seed=seed)
    return GroupSummary(episodes=len(metrics), **estimates)


def _summarize_pairs(pairs: Sequence[tuple[str, EpisodeMetrics]], seed: int) -> GroupSummary:
    return summarize_group([m for _, m in pairs], [product for product, _ in pairs], seed)


def summarize(
    records: Iterable[EpisodeRecord | StoredEpisode], seed: int = 0, seller_label: str | None = None
) -> list[RowSummary]:
    """One row per (buyer, seller, persona), in first-seen order (full records or the store's summaries);
    with ``seller_label``, every seller's episodes are pooled into one row per (buyer, persona) under that label."""
    cells: dict[tuple[str, str, str], list[EpisodeRecord | StoredEpisode]] = {}
    for record in records:
        cells.setdefault((record.buyer, seller_label or record.seller, record.persona), []).append(record)
    rows = []
    for (buyer, seller, persona), cell in cells.items():
        scored = [(r.scenario_id, r.metrics) for r in cell if r.status is EpisodeStatus.OK and r.metrics is not None]
        mutual = [(product, m) for product, m in scored if m.mutual_interest]
        conflicting = [(product, m) for product, m in scored if not m.mutual_interest]
        rows.append(
            RowSummary(
                buyer=buyer,
                seller=seller,
                persona=persona,
                episodes=len(scored),
                errored=sum(r.status is EpisodeStatus.ERRORED for r in cell),
                overall=_summarize_pairs(scored, seed),
                mutual_interest=_summarize_pairs(mutual, seed),
                conflicting_interest=_summarize_pairs(conflicting, seed),
            )
        )
    return rows
