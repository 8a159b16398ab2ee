"""The experiment's stages, from one training config: baselines, SFT, its test evaluation, GRPO, the evaluations,
the summary (and optionally the HTML report). Every stage resumes: a re-run skips what is finished.

1. ``baselines``: every registered scripted buyer family is grid-searched on the *train* split against the
   training mixture (uniform: seller weights only shape what GRPO trains on); the winner is the "best scripted
   buyer", and the best of those that never argue the "best talk-blind buyer". A re-run with the same search reads
   them back from ``RESULTS/baselines.json``.
2. ``sft``: SFT on the config's demonstrations (skipped once ``OUT/sft/final`` exists; else it continues from the
   last checkpoint). ``evaluate_sft``: the SFT checkpoint against the training sellers before GRPO starts.
3. ``grpo``: GRPO against the mixture (skipped once ``OUT/grpo/final`` exists), with the validation curve on
   held-out train products in its log.
4. The evaluations on the test products (an evaluation suite under ``OUT/eval``), in order of importance so that
   a run cut short has the cells the claims rest on: ``evaluate_scripted`` (the scripted rows), then
   ``evaluate_training`` (the trained buyers against the training mixture and each training seller),
   ``evaluate_unseen`` (a Boulware seller, the unyielding persona, CraigslistBargain) and ``evaluate_base`` (the
   untrained model); the last two at ``later_rollouts``. Each resumes the suite: finished episodes are kept. The
   config's ``evaluation.held_out_tables`` replace the unseen opponents (e.g. held-out hint wordings and levers).
   Against sellers that read words (``reads_talk``), the rows also hold the best talk-blind buyer and the GRPO
   buyer with its Talk replaced by the scripted template (``talk=plain``: the talk ablation).
5. The summary, written into the results folder (see :func:`summarize`).

The wall time of every stage, summed over the run's resumptions, goes to ``RESULTS/timings.json``.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from counteroffer.agents.registry import reads_talk
from counteroffer.analysis.paired import PAIRED_FILE
from counteroffer.analysis.phases import PhaseBand, StepSignals, analyse_entries
from counteroffer.analysis.tables import TABLES_MARKDOWN, suite_records, suite_tables, write_tables
from counteroffer.errors import ConfigError
from counteroffer.evaluate.baselines import BASELINES_FILE, BaselineSearch, run_baselines
from counteroffer.evaluate.suite import SuiteConfig, SuiteTable, run_suite
from counteroffer.experiment.config import ExperimentConfig
from counteroffer.experiment.summary import (
    claims_paired,
    grpo_paired,
    paired_against,
    record_test_evaluation,
    ship_episodes,
    summary_markdown,
    summary_rows,
)
from counteroffer.files import write_text_atomic
from counteroffer.game.messages import Role
from counteroffer.train.config import TrainConfig
from counteroffer.train.log_records import LOG_FILE, TrainLogEntry, read_train_log

TIMINGS_FILE = "timings.json"
_TABLE_NAME = re.compile(r"[^A-Za-z0-9_-]+")  # a seller spec's name as a file-safe table name
SUMMARY_FILE = "summary.json"
SUMMARY_MARKDOWN = "summary.md"
PHASES_FILE = "phases.json"
CURVES_FILE = "curves.png"
TRAINED_STAGES = ("sft", "grpo")

UNSEEN = [
    SuiteTable(name="boulware", title="Unseen: a Boulware seller", seller="scripted:boulware"),
    SuiteTable(
        name="unyielding", title="Unseen: the unyielding persona", seller="scripted:linear", personas=["unyielding"]
    ),
    SuiteTable(name="craigslist", title="Unseen: CraigslistBargain", seller="scripted:linear", catalogs=["craigslist"]),
]

Log = Callable[[str], None]
T = TypeVar("T")


def _silent(_: str) -> None:
    pass


class ExperimentError(ConfigError):
    """An experiment that cannot run as asked (e.g. a summary without the trained checkpoints)."""


class Timings:
    """Wall seconds per stage of one run, summed over its resumptions. The file names the run (an id written into
    the run folder when it is created), so the times of an earlier run, or another machine's, are not added on."""

    def __init__(self, path: Path, run: Path, log: Log = _silent) -> None:
        self.path = path
        self.log = log
        run.mkdir(parents=True, exist_ok=True)
        id_file = run / "run_id"
        if not id_file.is_file():
            write_text_atomic(id_file, uuid.uuid4().hex + "\n")
        self.run_id = id_file.read_text().strip()
        saved = json.loads(path.read_text()) if path.is_file() else {}
        self.seconds: dict[str, float] = saved.get("seconds", {}) if saved.get("run_id") == self.run_id else {}

    def run(self, stage: str, work: Callable[[], T]) -> T:
        started = time.perf_counter()
        result = work()
        self.seconds[stage] = round(self.seconds.get(stage, 0.0) + time.perf_counter() - started, 1)
        write_text_atomic(self.path, json.dumps({"run_id": self.run_id, "seconds": self.seconds}, indent=2) + "\n")
        self.log(f"{stage}: {self.seconds[stage]:.0f} s")
        return result


def llm_spec(model: str, config: TrainConfig, *, with_prompts: bool) -> str:
    """An ``hf:`` buyer spec for evaluation, sampled at the validation curve's temperature (the test and the curve
    that picks ``grpo/best`` see the same policy); a trained checkpoint carries its own prompt format."""
    from counteroffer.train.stage import native_bf16  # transformers: only when the specs are made

    dtype = "bfloat16" if native_bf16() else "float32"
    spec = (
        f"hf:{model}?dtype={dtype}&max_batch=128&max_new_tokens={config.grpo.max_new_tokens}"
        f"&temperature={config.evaluation.temperature:g}"
    )
    if with_prompts:
        spec += "&" + config.prompts.spec_query()
    return spec


def training_tables(config: TrainConfig) -> list[SuiteTable]:
    """The tables of the sellers GRPO trained against: their mixture (pooled) and each one alone, named by its
    strategy (``scripted:reading-linear?levers=...`` → ``reading-linear``)."""
    training = [choice.spec for choice in config.grpo.sellers if choice.persona == "neutral"]
    tables = [SuiteTable(name="mixture", title="The training mixture (pooled)", sellers=training)]
    names = [_TABLE_NAME.sub("-", spec.partition("?")[0].split(":", 1)[-1]).strip("-") for spec in training]
    return tables + [
        SuiteTable(
            name=name if names.count(name) == 1 else f"{name}-{index}", title=f"Training seller {spec}", seller=spec
        )
        for index, (name, spec) in enumerate(zip(names, training, strict=True), start=1)
    ]


def held_out_tables(config: TrainConfig) -> list[SuiteTable]:
    """The tables after the training sellers': the config's ``evaluation.held_out_tables``, else :data:`UNSEEN`."""
    return UNSEEN if config.evaluation.held_out_tables is None else config.evaluation.held_out_tables


def sellers_read_talk(config: TrainConfig) -> bool:
    """Whether any seller GRPO trains against reads the buyer's words: then the experiment also plays the best
    talk-blind buyer and the talk ablation of the GRPO buyer."""
    return any(reads_talk(choice.spec, Role.SELLER) for choice in config.grpo.sellers)


def evaluation_suite(config: TrainConfig, buyers: list[str], rollouts: int, limit: int | None = None) -> SuiteConfig:
    """The test evaluation: every buyer against the training tables and the unseen opponents (``OUT/eval``)."""
    return SuiteConfig(
        out=config.out / "eval",
        buyers=buyers,
        split="test",
        rollouts=rollouts,
        limit=limit,
        max_turns=config.max_turns,
        seed=config.seed,
        data_root=config.data_root,
        tables=training_tables(config) + held_out_tables(config),
    )


def evaluate(
    config: TrainConfig, buyers: list[str], rollouts: int, limit: int | None, tables: set[str] | None = None
) -> None:
    """Play (or resume) the evaluation suite (only the named tables, if given), then free the models it loaded."""
    from counteroffer.models.hf import release_chat_models

    suite = evaluation_suite(config, buyers, rollouts, limit)
    if tables is not None:
        suite.tables = [table for table in suite.tables if table.name in tables]
    try:
        run_suite(suite)
    finally:
        release_chat_models()


@dataclass(slots=True)
class Buyers:
    """The buyers of the evaluation, by role, and each one's kind (the summary's line labels). Against sellers
    that read words, also the best talk-blind buyer, the oracle and the GRPO buyer with its Talk replaced by the
    scripted template (``grpo_talk_ablated``)."""

    best_scripted: str
    scripted: list[str]  # scripted:anchor, the best scripted buyer, the SFT teachers (and the talk bounds)
    sft: str
    grpo: str
    base: str
    kinds: dict[str, str] = field(default_factory=dict)
    best_talk_blind: str | None = None
    grpo_talk_ablated: str | None = None

    @classmethod
    def of(
        cls, config: TrainConfig, best_scripted: str, best_talk_blind: str | None = None, words: bool = False
    ) -> Buyers:
        """The buyers; with ``words`` (the sellers read them), the talk ablation and the talk-blind bound too."""
        teachers = [spec for spec in config.sft.demo_buyers if spec != best_scripted]
        trained = {
            stage: llm_spec(str(config.out / stage / "final"), config, with_prompts=False) for stage in TRAINED_STAGES
        }
        base = llm_spec(config.model, config, with_prompts=True)
        # The oracle is played by the suite itself, against every scripted seller.
        bounds = [best_talk_blind] if words and best_talk_blind is not None else []
        kinds = {"scripted:anchor": "anchor", best_scripted: "best_scripted", "scripted:oracle": "oracle"}
        kinds.update({spec: "teacher" for spec in teachers})
        if bounds:
            kinds[best_talk_blind] = "best_talk_blind" if best_talk_blind != best_scripted else "best_scripted"
        kinds.update({spec: stage for stage, spec in trained.items()} | {base: "base"})
        ablated = trained["grpo"] + "&talk=plain" if words else None
        if ablated is not None:
            kinds[ablated] = "grpo_talk_ablated"
        scripted = list(dict.fromkeys(["scripted:anchor", best_scripted, *bounds, *teachers]))
        talk_blind = best_talk_blind if bounds else None
        return cls(best_scripted, scripted, trained["sft"], trained["grpo"], base, kinds, talk_blind, ablated)

    @property
    def trained(self) -> list[str]:
        """The scripted rows and the trained buyers (the claims' rows)."""
        ablation = [self.grpo_talk_ablated] if self.grpo_talk_ablated else []
        return [*self.scripted, self.grpo, self.sft, *ablation]

    @property
    def every(self) -> list[str]:
        return [*self.trained, self.base]

    def references(self) -> dict[str, str]:
        """The buyers every other is compared with, paired, by name: the best scripted buyer and SFT; against
        sellers that read, also the best talk-blind buyer and GRPO itself (what its talk ablation loses)."""
        references = {"best_scripted": self.best_scripted, "sft": self.sft}
        if self.best_talk_blind is not None:
            references["best_talk_blind"] = self.best_talk_blind
        if self.grpo_talk_ablated is not None:
            references["grpo"] = self.grpo
        return references


def check_ready(experiment: ExperimentConfig) -> None:
    """Refuse, before any work, what cannot succeed: a summary without both trained checkpoints."""
    if experiment.summarize_only:
        missing = [stage for stage in TRAINED_STAGES if not (experiment.train.out / stage / "final").is_dir()]
        if missing:
            folders = ", ".join(str(experiment.train.out / stage / "final") for stage in missing)
            raise ExperimentError(
                f"--summarize-only needs the trained checkpoints, and {folders} "
                f"{'is' if len(missing) == 1 else 'are'} missing: run the experiment without --summarize-only first "
                f"(or point --set out=... at the run folder)"
            )


def best_scripted_buyers(experiment: ExperimentConfig, timings: Timings, log: Log = _silent) -> tuple[str, str | None]:
    """The baselines stage: the winner of the scripted buyers' grid on the train split, and the best talk-blind
    buyer among them (a resumed run keeps the search it made, read back from the results folder)."""
    config = experiment.train
    search = BaselineSearch(
        sellers=[c.model_copy(update={"weight": 1.0}) for c in config.grpo.sellers],
        limit=experiment.limit,
        max_turns=config.max_turns,
        seed=config.seed,
        data_root=config.data_root,
    )
    saved_path = experiment.results / BASELINES_FILE
    saved = json.loads(saved_path.read_text()) if saved_path.is_file() else None
    if saved is not None and saved["search"] == search.model_dump(mode="json"):
        leader, talk_blind = saved["rows"][0], saved.get("best_talk_blind")
    else:
        result = timings.run("baselines", lambda: run_baselines(search, experiment.results))
        leader = {"buyer": result.best.buyer, "reward": result.best.reward}
        talk_blind = result.best_talk_blind.buyer if result.best_talk_blind else None
    log(f"best scripted buyer on train: {leader['buyer']} ({leader['reward']:.3f}); best talk-blind: {talk_blind}")
    return leader["buyer"], talk_blind


def evaluation_stages(
    experiment: ExperimentConfig, buyers: Buyers
) -> list[tuple[str, list[str], int, set[str] | None]]:
    """The evaluations after GRPO, most important first: (stage, buyers, rollouts, tables or None for all)."""
    full, later = experiment.evaluation_rollouts
    claims = {table.name for table in training_tables(experiment.train)}
    return [
        ("evaluate_scripted", buyers.scripted, full, None),  # seconds: every scripted row at full size
        ("evaluate_training", buyers.trained, full, claims),
        ("evaluate_unseen", buyers.trained, later, None),
        ("evaluate_base", buyers.every, later, None),
    ]


def train_and_evaluate(experiment: ExperimentConfig, buyers: Buyers, timings: Timings) -> None:
    """SFT, its evaluation, GRPO, then the evaluations; a finished stage is not trained again."""
    from counteroffer.train import run_grpo, run_sft

    config, limit = experiment.train, experiment.limit

    def train(stage: str, run: Callable[..., Any]) -> None:
        if not (config.out / stage / "final").is_dir():
            timings.run(stage, lambda: run(config, resume=True))

    train("sft", run_sft)
    # The SFT checkpoint alone, before GRPO starts from it.
    claims = {table.name for table in training_tables(config)}
    sft_buyers = [*buyers.scripted, buyers.sft]
    timings.run("evaluate_sft", lambda: evaluate(config, sft_buyers, experiment.rollouts, limit, claims))
    train("grpo", run_grpo)
    for stage, stage_buyers, rollouts, tables in evaluation_stages(experiment, buyers):
        timings.run(stage, lambda b=stage_buyers, r=rollouts, t=tables: evaluate(config, b, r, limit, t))


def write_curves(
    config: TrainConfig,
    results: Path,
    entries: Sequence[TrainLogEntry],
    steps: Sequence[StepSignals],
    bands: Sequence[PhaseBand],
) -> Path:
    """``RESULTS/curves.png``: the GRPO curves over the phase bands, with SFT's loss and token accuracy."""
    from counteroffer.report.plots import grpo_curves  # matplotlib: only when the figure is drawn

    sft_log = config.sft_dir / LOG_FILE
    sft = read_train_log(sft_log) if sft_log.is_file() else None
    path = results / CURVES_FILE
    path.write_bytes(grpo_curves(entries, steps, bands, sft=sft))
    return path


def summarize(experiment: ExperimentConfig, buyers: Buyers, timings: Timings) -> dict[str, Any]:
    """Write the results from the episodes played so far (every row says its ``n``) into the results folder:

    - ``summary.json``: one row per buyer × opponent (reward with its 95% interval, deal rate, overshoot, format
      errors, misquotes, bargained ratio, the conflicting-interest columns), SFT + GRPO's paired differences from
      the best scripted buyer and from SFT on the mixture (``grpo_paired``), the best scripted buyer,
      ``test_evaluations`` (this configuration's number in the ledger), the shipped episodes, the machine, the
      command, the config file and the stage timings; ``summary.md``: its table as BENCHMARKS.md shows it;
    - ``paired.json`` (every buyer against both references, per table), ``tables.md`` (the suite's tables),
      ``phases.json`` (GRPO's steps, phase tests and bands), ``curves.png`` and ``episodes.jsonl.gz`` (every
      evaluation episode the tables rest on, with its transcript);
    - with ``report``, the run's HTML report there.
    """
    from counteroffer.experiment.machine import describe_machine

    config, results = experiment.train, experiment.results
    suite = evaluation_suite(config, buyers.every, experiment.rollouts, experiment.limit)
    records = suite_records(suite)
    tables = suite_tables(suite, records)
    paired = paired_against(suite, buyers.references(), records)
    write_text_atomic(results / PAIRED_FILE, json.dumps(paired, indent=2) + "\n")
    write_tables(suite.out, tables)
    write_text_atomic(results / TABLES_MARKDOWN, (suite.out / TABLES_MARKDOWN).read_text())
    # The steps, the phase bands, and each phase's trend test (the labeller's settings with them).
    entries = read_train_log(config.grpo_dir / LOG_FILE)
    phases = analyse_entries(entries)
    write_text_atomic(results / PHASES_FILE, json.dumps(phases.as_dict(), indent=1) + "\n")
    write_curves(config, results, entries, phases.steps, phases.bands)
    summary = {
        "rows": summary_rows(tables, buyers.kinds),
        "grpo_paired": grpo_paired(paired, buyers.grpo),
        "paired": claims_paired(paired, buyers.kinds),
        "best_scripted": buyers.best_scripted,
        "checkpoint": "grpo/final (fixed before the run; grpo/best is chosen on validation products only)",
        "test_evaluations": record_test_evaluation(experiment.ledger, experiment.source, config, results),
        "episodes": ship_episodes(records, results),
        "machine": describe_machine(),
        "command": experiment.command(),
        "config": str(experiment.source),
        "timings_seconds": timings.seconds,
    }
    write_text_atomic(results / SUMMARY_FILE, json.dumps(summary, indent=2) + "\n")
    write_text_atomic(results / SUMMARY_MARKDOWN, summary_markdown(summary["rows"]))
    if experiment.report is not None:
        from counteroffer.report.html import write_report

        write_report([config.out], experiment.report, title=f"counteroffer experiment: {experiment.source.stem}")
    return summary


def run_experiment(experiment: ExperimentConfig, log: Log = _silent) -> dict[str, Any]:
    """Run (or resume) every stage and write the summary; with ``summarize_only``, only the summary (from the
    episodes played so far; the baselines are searched if they were not). Returns the summary. ``log`` gets a
    line per finished stage."""
    check_ready(experiment)
    experiment.results.mkdir(parents=True, exist_ok=True)
    timings = Timings(experiment.results / TIMINGS_FILE, experiment.train.out, log)
    best, best_talk_blind = best_scripted_buyers(experiment, timings, log)
    buyers = Buyers.of(experiment.train, best, best_talk_blind, words=sellers_read_talk(experiment.train))
    if not experiment.summarize_only:
        train_and_evaluate(experiment, buyers, timings)
    return summarize(experiment, buyers, timings)
