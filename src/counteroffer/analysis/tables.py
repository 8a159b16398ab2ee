"""The paper's evaluation tables, built from episode records.

A table has one row per buyer and condition (a seller persona, a catalogue, or nothing for a single-condition
table) with the paper's metrics and 95% intervals that resample products (not episodes), split by mutual
interest (MI: budget above cost) and conflicting interest (CI). The bargained ratio is reported over MI deals
only: a CI deal is always a budget overshoot and its ratio (B − P)/(B − C) is positive and above 1, which says
nothing about bargaining.

When the cell also holds the oracle buyer's episodes, each row gets the oracle's mean reward under the same
condition (an upper bound: it knows the seller's strategy and cost, and no registered scripted buyer beats it on
any scenario) and the buyer's share of it. The
share is left out when the bound is below :data:`ORACLE_SHARE_MIN` (an unyielding seller leaves even the oracle
about 0.06, and a share of that says nothing).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel

from counteroffer.catalog.models import Scenario
from counteroffer.catalog.recipes import load_scenarios
from counteroffer.evaluate.stats import Estimate, bootstrap_mean, rate_estimate
from counteroffer.evaluate.suite import Cell, SuiteConfig, cell_records, table_cells
from counteroffer.evaluate.summary import RowSummary, summarize
from counteroffer.files import write_text_atomic
from counteroffer.game.records import EpisodeRecord, EpisodeStatus

ORACLE_SHARE_MIN = 0.1


class TableRow(BaseModel):
    condition: str  # the persona or catalogue of this row; "" in a single-condition table
    summary: RowSummary
    oracle_reward: float | None  # the oracle's mean reward under the same condition
    oracle_share: float | None  # this buyer's mean reward / the oracle's, when the oracle's is ORACLE_SHARE_MIN+
    is_oracle: bool = False  # the oracle's own row, the table's upper bound


class PaperTable(BaseModel):
    name: str
    title: str
    condition_label: str  # "persona", "catalogue", ... ; "" when the table has a single condition
    oracle: str | None  # the oracle buyer's spec, if its episodes were played
    rows: list[TableRow]


@dataclass(frozen=True, slots=True)
class Column:
    header: str
    value: Callable[[TableRow], Estimate | float | None]
    percent: bool = False
    events: bool = False  # a rare event: shown as its count with the exact binomial interval


COLUMNS: tuple[Column, ...] = (
    Column("Reward", lambda r: r.summary.overall.reward),
    Column("MI reward", lambda r: r.summary.mutual_interest.reward),
    Column("MI deal", lambda r: r.summary.mutual_interest.deal_rate, percent=True),
    Column("MI bargained", lambda r: r.summary.mutual_interest.bargained_ratio),
    Column("MI overshoot", lambda r: r.summary.mutual_interest.overshoot_rate, percent=True, events=True),
    Column("MI first offer", lambda r: r.summary.mutual_interest.first_offer_ratio),
    Column("CI reward", lambda r: r.summary.conflicting_interest.reward),
    Column("CI deal", lambda r: r.summary.conflicting_interest.deal_rate, percent=True),
    Column("CI overshoot", lambda r: r.summary.conflicting_interest.overshoot_rate, percent=True, events=True),
    Column("CI first offer", lambda r: r.summary.conflicting_interest.first_offer_ratio),
    Column("Misquote", lambda r: r.summary.overall.misquote_rate, percent=True, events=True),
    Column("Oracle", lambda r: r.oracle_reward),
    Column("Share of oracle", lambda r: r.oracle_share, percent=True),
)


def format_cell(value: Estimate | float | None, percent: bool = False, digits: int = 3, events: bool = False) -> str:
    if isinstance(value, Estimate) and events:
        return value.format_events()
    if isinstance(value, Estimate):
        return value.format(digits=1 if percent else digits, percent=percent)
    if value is None:
        return "–"
    return f"{value * 100:.1f}%" if percent else f"{value:.{digits}f}"


def build_table(
    name: str,
    title: str,
    conditions: Sequence[tuple[str, Iterable[EpisodeRecord]]],
    *,
    condition_label: str = "",
    oracle: str | None = None,
    seed: int = 0,
    mixture: str | None = None,
) -> PaperTable:
    """One table from the records of each condition; rows follow the conditions' order, then the buyers' order
    within a condition (the oracle, when present, last). ``mixture``: the records of a condition come from several
    sellers, pooled into one row per buyer under that seller label."""
    rows: list[TableRow] = []
    for condition, records in conditions:
        summaries = summarize(records, seed=seed, seller_label=mixture)
        oracle_reward = next(
            (s.overall.reward.mean for s in summaries if oracle is not None and s.buyer == oracle), None
        )
        ordered = [s for s in summaries if s.buyer != oracle] + [s for s in summaries if s.buyer == oracle]
        for summary in ordered:
            share = None
            if (
                oracle_reward is not None
                and oracle_reward >= ORACLE_SHARE_MIN
                and summary.overall.reward.mean is not None
            ):
                share = summary.overall.reward.mean / oracle_reward
            rows.append(
                TableRow(
                    condition=condition,
                    summary=summary,
                    oracle_reward=oracle_reward,
                    oracle_share=share,
                    is_oracle=summary.buyer == oracle,
                )
            )
    return PaperTable(name=name, title=title, condition_label=condition_label, oracle=oracle, rows=rows)


def table_markdown(table: PaperTable) -> str:
    """The table as GitHub-flavoured Markdown, each metric as mean ±half-width of its 95% interval."""
    first = ["Buyer"] + ([table.condition_label.capitalize()] if table.condition_label else [])
    headers = first + ["Episodes"] + [c.header for c in COLUMNS]
    lines = [f"### {table.title}", "", "| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for row in table.rows:
        cells = [f"`{row.summary.buyer}`"] + ([row.condition] if table.condition_label else [])
        cells.append(str(row.summary.episodes))
        cells += [format_cell(c.value(row), c.percent, events=c.events) for c in COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def suite_records(config: SuiteConfig) -> dict[Cell, list[EpisodeRecord]]:
    """The episodes every cell of a suite holds now. Each cell's file is read once and each split loaded once,
    however many tables share them."""
    splits: dict[tuple[str, str, int | None], list[Scenario]] = {}
    records: dict[Cell, list[EpisodeRecord]] = {}
    for table in config.tables:
        for _, cell in table_cells(config, table):
            if cell not in records:
                split = (cell.catalog, cell.split, cell.limit)
                if split not in splits:
                    splits[split] = load_scenarios(*split[:2], data_root=config.data_root, limit=cell.limit).scenarios
                records[cell] = cell_records(config, cell, splits[split])
    return records


def suite_tables(config: SuiteConfig, records: dict[Cell, list[EpisodeRecord]] | None = None) -> list[PaperTable]:
    """Every table of a suite, from the episodes its cells hold now (a partly run suite gives partial tables);
    ``records``: :func:`suite_records`, if the caller has read them already."""
    records = suite_records(config) if records is None else records
    tables = []
    for table in config.tables:
        conditions: dict[str, list[EpisodeRecord]] = {}
        for condition, cell in table_cells(config, table):
            conditions.setdefault(condition, []).extend(records[cell])
        tables.append(
            build_table(
                table.name,
                table.title,
                list(conditions.items()),
                condition_label=table.condition_label,
                oracle=config.oracle,
                seed=config.seed,
                mixture=table.mixture_label,
            )
        )
    return tables


TABLES_MARKDOWN = "tables.md"
TABLES_JSON = "tables.json"


def write_tables(out: Path, tables: Sequence[PaperTable]) -> tuple[Path, Path]:
    """``OUT/tables.md`` (every table, for reading) and ``OUT/tables.json`` (with every interval, for tools)."""
    markdown = out / TABLES_MARKDOWN
    write_text_atomic(
        markdown,
        "MI / CI: mutual / conflicting-interest scenarios; ± is half the 95% interval (products resampled); rare "
        "events show their count and exact binomial interval; the bargained ratio is over MI deals; Oracle: the "
        "oracle buyer's reward under the same seller.\n\n" + "\n".join(table_markdown(t) for t in tables),
    )
    data = out / TABLES_JSON
    write_text_atomic(data, json.dumps([t.model_dump(mode="json") for t in tables], indent=1) + "\n")
    return markdown, data


@dataclass(frozen=True, slots=True)
class CategoryResult:
    category: str
    buyer: str
    episodes: int
    reward: Estimate  # intervals resample the category's products
    deal_rate: Estimate


def category_results(records: Iterable[EpisodeRecord], seed: int = 0) -> list[CategoryResult]:
    """Mean reward and deal rate per (product category, buyer) over scored episodes, categories by name."""
    cells: dict[tuple[str, str], list[EpisodeRecord]] = {}
    for record in records:
        if record.status is EpisodeStatus.OK and record.metrics is not None:
            cells.setdefault((record.scenario.product.category, record.buyer), []).append(record)
    results = []
    for (category, buyer), cell in sorted(cells.items()):
        products = [r.scenario_id for r in cell]
        results.append(
            CategoryResult(
                category=category,
                buyer=buyer,
                episodes=len(cell),
                reward=bootstrap_mean([r.metrics.reward for r in cell], clusters=products, seed=seed),
                deal_rate=rate_estimate([r.metrics.deal for r in cell], clusters=products, seed=seed),
            )
        )
    return results


@dataclass(frozen=True, slots=True)
class CategoryPivot:
    """Per-category results as a grid: categories (most episodes first) by buyers (first-seen order)."""

    buyers: list[str]
    rows: list[tuple[str, list[CategoryResult | None]]]


def category_pivot(results: Sequence[CategoryResult]) -> CategoryPivot:
    buyers = list(dict.fromkeys(r.buyer for r in results))
    cells = {(r.category, r.buyer): r for r in results}
    episodes: dict[str, int] = {}
    for result in results:
        episodes[result.category] = episodes.get(result.category, 0) + result.episodes
    categories = sorted(episodes, key=lambda c: (-episodes[c], c))
    return CategoryPivot(buyers, [(c, [cells.get((c, b)) for b in buyers]) for c in categories])
