"""``counteroffer report RUN...``: one self-contained HTML file (figures embedded as PNG) for one or more runs.

A RUN folder may be:

- a training run (``OUT`` of a train config): the SFT loss, the GRPO curves over phase bands and the phase table,
  plus every bench below it (``OUT/eval/*/episodes.jsonl``, as the CPU experiment writes);
- an evaluation suite (``counteroffer evaluate``): its tables;
- a bench folder (``counteroffer bench``): its episodes as one table, a row per buyer and seller/persona.

Every run with episodes also gets per-category results and sample episodes (one deal and one non-deal per buyer)
with their offer-trajectory charts and transcripts.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import jinja2

from counteroffer.analysis.phases import PhaseBand, StepSignals, analyse_entries, phase_bands
from counteroffer.analysis.tables import (
    COLUMNS,
    CategoryPivot,
    PaperTable,
    build_table,
    category_pivot,
    category_results,
    format_cell,
    suite_records,
    suite_tables,
)
from counteroffer.errors import InputNotFoundError
from counteroffer.evaluate.bench import find_episode_files
from counteroffer.evaluate.suite import ORACLE_SPEC, SUITE_FILE, read_suite
from counteroffer.files import write_text_atomic
from counteroffer.game.messages import format_money_or_dash
from counteroffer.game.records import EpisodeRecord, EpisodeStatus
from counteroffer.report.plots import category_bars, grpo_curves, offer_trajectory_plot, sft_curve, short_spec
from counteroffer.rollout.store import read_episodes
from counteroffer.train.log_records import LOG_FILE, read_train_log


def data_uri(png: bytes) -> str:
    return f"data:image/png;base64,{base64.b64encode(png).decode()}"


@dataclass(slots=True)
class SampleEpisode:
    record: EpisodeRecord
    chart: str  # data URI of the offer-trajectory PNG


@dataclass(slots=True)
class RunReport:
    name: str
    path: Path
    kinds: list[str] = field(default_factory=list)
    sft_chart: str | None = None
    grpo_chart: str | None = None
    phases: list[StepSignals] = field(default_factory=list)
    bands: list[PhaseBand] = field(default_factory=list)
    tables: list[PaperTable] = field(default_factory=list)
    categories: CategoryPivot | None = None
    category_chart: str | None = None
    samples: list[SampleEpisode] = field(default_factory=list)


def _nested_suites(run: Path) -> list[Path]:
    return sorted(p.parent for p in run.glob(f"*/**/{SUITE_FILE}"))


def _records(path: Path) -> list[EpisodeRecord]:
    return sorted(read_episodes(path), key=lambda r: r.key)


def episodes_table(name: str, records: Sequence[EpisodeRecord]) -> PaperTable:
    """Every bench's episodes as one table: a row per buyer under each seller / persona / catalogue."""
    conditions: dict[str, list[EpisodeRecord]] = {}
    for record in records:
        condition = f"{record.seller} / {record.persona} / {record.scenario.product.source}"
        conditions.setdefault(condition, []).append(record)
    label = "seller / persona / catalogue" if len(conditions) > 1 else ""
    title = f"Evaluation: {next(iter(conditions))}" if len(conditions) == 1 else "Evaluation"
    oracle = ORACLE_SPEC if any(r.buyer == ORACLE_SPEC for r in records) else None
    return build_table(name, title, list(conditions.items()), condition_label=label, oracle=oracle)


def _samples(records: Sequence[EpisodeRecord], per_buyer: int) -> list[SampleEpisode]:
    """Per buyer, the first deal and the first episode without one (by key), then more of either up to
    ``per_buyer``: deterministic, and showing both how deals are reached and how they fail."""
    by_buyer: dict[str, list[EpisodeRecord]] = {}
    for record in records:
        if record.status is EpisodeStatus.OK:
            by_buyer.setdefault(record.buyer, []).append(record)
    chosen: list[EpisodeRecord] = []
    for episodes in by_buyer.values():
        deals = [r for r in episodes if r.metrics is not None and r.metrics.deal]
        others = [r for r in episodes if r.metrics is None or not r.metrics.deal]
        picked = (deals[:1] + others[:1] + deals[1:] + others[1:])[:per_buyer]
        chosen += picked
    return [SampleEpisode(r, data_uri(offer_trajectory_plot(r))) for r in chosen]


def load_run(run: Path, samples_per_buyer: int = 2) -> RunReport:
    """Everything the report shows about one run folder."""
    if not run.is_dir():
        raise InputNotFoundError(f"{run} is not a folder")
    report = RunReport(name=run.name, path=run)
    sft_log, grpo_log = run / "sft" / LOG_FILE, run / "grpo" / LOG_FILE
    if sft_log.is_file():
        report.kinds.append("SFT")
        report.sft_chart = data_uri(sft_curve(read_train_log(sft_log)))
    if grpo_log.is_file():
        report.kinds.append("GRPO")
        entries = read_train_log(grpo_log)
        report.phases = analyse_entries(entries).steps
        report.bands = phase_bands(report.phases)
        report.grpo_chart = data_uri(grpo_curves(entries, report.phases, report.bands))
    # The episodes of suites nested in the run are reported as those suites' tables, not mixed into the run's.
    nested_suites = _nested_suites(run)
    records = [r for path in find_episode_files(run, excluding=nested_suites) for r in _records(path)]
    if (run / SUITE_FILE).is_file():
        report.kinds.append("evaluation suite")
        report.tables = suite_tables(read_suite(run))
    elif records:
        report.kinds.append("bench")
        report.tables = [episodes_table(run.name, records)]
    for suite in nested_suites:
        report.kinds.append(f"suite {suite.relative_to(run)}")
        config = read_suite(suite)
        by_cell = suite_records(config)
        report.tables += suite_tables(config, by_cell)
        # A suite's episodes show in the samples and categories too: a run's claims rest on them.
        records += sorted({r.key: r for cell in by_cell.values() for r in cell}.values(), key=lambda r: r.key)
    if records:
        report.categories = category_pivot(category_results(records))
        report.category_chart = data_uri(category_bars(report.categories))
        report.samples = _samples(records, samples_per_buyer)
    if not report.kinds:
        raise InputNotFoundError(f"{run} holds no training log, suite or episodes file")
    return report


def template_environment(*packages: str) -> jinja2.Environment:
    """The report's templates (the episode and table macros, the style) behind those of ``packages`` (the web
    app's pages), with the filters they use; everything is HTML-escaped."""
    loaders = [jinja2.PackageLoader(package, "templates") for package in (*packages, "counteroffer.report")]
    environment = jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders), autoescape=True, trim_blocks=True, lstrip_blocks=True
    )
    environment.filters["cell"] = format_cell
    environment.filters["money"] = format_money_or_dash
    environment.filters["short"] = short_spec
    environment.globals["COLUMNS"] = COLUMNS
    return environment


def render_report(runs: Sequence[RunReport], title: str = "counteroffer report") -> str:
    template = template_environment().get_template("report.html.j2")
    return template.render(runs=runs, title=title, generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"))


def write_report(
    runs: Sequence[Path], out: Path, title: str = "counteroffer report", samples_per_buyer: int = 2
) -> Path:
    """Write the report of ``runs`` to ``out`` (an ``.html`` file, or a folder that gets ``index.html``)."""
    target = out if out.suffix == ".html" else out / "index.html"
    target.parent.mkdir(parents=True, exist_ok=True)
    reports = [load_run(run, samples_per_buyer) for run in runs]
    write_text_atomic(target, render_report(reports, title))
    return target
