"""Runs side by side: each row's mean reward in every run, its difference from the first run, and whether the two
95% intervals overlap (disjoint intervals are the quick sign that a difference is more than noise).

Rows are matched by buyer and condition when every run has one row per (buyer, condition) (the same buyers
against another seller, another checkpoint of a model, another seed), else by (buyer, seller, persona,
condition); a row missing from a run is left empty there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from counteroffer.analysis.tables import PaperTable, TableRow
from counteroffer.evaluate.stats import Estimate


@dataclass(frozen=True, slots=True)
class ComparedCell:
    reward: Estimate
    difference: float | None  # this run's mean minus the first run's; None in the first run or without a mean
    overlaps: bool | None  # whether this run's interval overlaps the first run's; None where either is missing


@dataclass(frozen=True, slots=True)
class ComparedRow:
    buyer: str
    seller: str  # the first run's that has the row (runs matched by buyer may differ in seller)
    persona: str
    condition: str
    cells: list[ComparedCell | None]  # one per run, in the runs' order


def row_key(table: PaperTable, row: TableRow, by_buyer: bool) -> tuple[str, ...]:
    condition = row.condition if table.condition_label else ""  # a one-condition table's rows are just its rows
    if by_buyer:
        return (row.summary.buyer, condition)
    return (row.summary.buyer, row.summary.seller, row.summary.persona, condition)


def intervals_overlap(first: Estimate, second: Estimate) -> bool | None:
    if None in (first.ci_low, first.ci_high, second.ci_low, second.ci_high):
        return None
    return first.ci_low <= second.ci_high and second.ci_low <= first.ci_high  # type: ignore[operator]


def compare_tables(tables: Sequence[PaperTable]) -> list[ComparedRow]:
    """One row per row key seen in any table, in first-seen order; cells compared with the first table's."""
    by_buyer = all(len({row_key(table, row, True) for row in table.rows}) == len(table.rows) for table in tables)
    keys: dict[tuple[str, ...], TableRow] = {}
    by_table = []
    for table in tables:
        rows = {row_key(table, row, by_buyer): row for row in table.rows}
        by_table.append(rows)
        for key, row in rows.items():
            keys.setdefault(key, row)
    compared = []
    for key, first_seen in keys.items():
        base = by_table[0].get(key) if by_table else None
        cells: list[ComparedCell | None] = []
        for index, rows in enumerate(by_table):
            row = rows.get(key)
            if row is None:
                cells.append(None)
                continue
            reward = row.summary.overall.reward
            if index == 0 or base is None or reward.mean is None or base.summary.overall.reward.mean is None:
                cells.append(ComparedCell(reward, None, None))
                continue
            first = base.summary.overall.reward
            cells.append(ComparedCell(reward, reward.mean - first.mean, intervals_overlap(first, reward)))
        summary = first_seen.summary
        compared.append(ComparedRow(summary.buyer, summary.seller, summary.persona, first_seen.condition, cells))
    return compared
