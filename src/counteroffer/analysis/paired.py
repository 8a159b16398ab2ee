"""Paired comparisons within one evaluation suite: each buyer's reward minus a reference buyer's, episode by
episode, over the episodes both played with the same product, seller, persona and rollout (a suite seeds them
alike). When two buyers meet the same products, most of the spread of their rewards is the products'; the paired
difference removes it, so its interval is far tighter than the two buyers' unpaired intervals side by side.

The interval resamples products, not pairs: a product's pairs against several sellers and rollouts move together
(see :mod:`counteroffer.evaluate.stats`).
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel

from counteroffer.analysis.tables import suite_records
from counteroffer.errors import ConfigError
from counteroffer.evaluate.stats import Estimate, bootstrap_mean
from counteroffer.evaluate.suite import Cell, SuiteConfig, table_cells
from counteroffer.game.records import EpisodeRecord, EpisodeStatus

PAIRED_FILE = "paired.json"


class PairedDifference(BaseModel):
    table: str
    buyer: str
    reference: str
    difference: Estimate  # the mean of (buyer − reference) over the paired episodes; its interval resamples products
    better: int  # pairs the buyer won
    worse: int  # pairs the reference won


@dataclass(frozen=True, slots=True)
class _Pair:
    cell: Cell
    scenario_id: str
    rollout_index: int


def check_reference(config: SuiteConfig, reference: str) -> None:
    if reference not in config.buyers:
        raise ConfigError(f"{reference!r} is not a buyer of this suite; its buyers: {', '.join(config.buyers)}")


def paired_differences(
    config: SuiteConfig, reference: str, records: dict[Cell, list[EpisodeRecord]] | None = None
) -> list[PairedDifference]:
    """Every other buyer against ``reference``, per table of the suite, from the episodes played so far (errored
    ones left out); ``records``: :func:`~counteroffer.analysis.tables.suite_records`, if read already."""
    check_reference(config, reference)
    records = suite_records(config) if records is None else records
    differences = []
    for table in config.tables:
        rewards: dict[str, dict[_Pair, float]] = {}
        for _, cell in table_cells(config, table):
            for record in records[cell]:
                if record.status is EpisodeStatus.OK:
                    pair = _Pair(cell, record.scenario.scenario_id, record.rollout_index)
                    rewards.setdefault(record.buyer, {})[pair] = record.reward
        base = rewards.get(reference, {})
        for buyer in config.buyers:
            if buyer == reference or buyer not in rewards:
                continue
            pairs = list(rewards[buyer].keys() & base.keys())  # the interval does not depend on their order
            deltas = [rewards[buyer][pair] - base[pair] for pair in pairs]
            differences.append(
                PairedDifference(
                    table=table.name,
                    buyer=buyer,
                    reference=reference,
                    difference=bootstrap_mean(deltas, clusters=[pair.scenario_id for pair in pairs], seed=config.seed),
                    better=sum(delta > 0 for delta in deltas),
                    worse=sum(delta < 0 for delta in deltas),
                )
            )
    return differences
