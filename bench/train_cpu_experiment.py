"""The recorded CPU experiment: baselines, SFT, GRPO and the evaluations of the bundled SmolLM2-135M buyer, all from
one training config, resumable at every stage.

    python bench/train_cpu_experiment.py [--config configs/cpu-smollm2.yaml] [--results bench/results/cpu-learning]
                                         [--set FIELD=VALUE ...]

1. **Baselines.** Every registered scripted buyer family (anchor-and-concede, patient, reader) is grid-searched on
   the *train* split against the training mixture (``counteroffer baselines``); the winner is the "best scripted
   buyer".
2. **SFT** on the config's demonstrations, then **GRPO** against the mixture, with the validation curve on
   held-out train products in the log.
3. **Evaluation** on the 128 test products × 2 rollouts (an evaluation suite under ``OUT/eval``): against each
   training seller, the mixture (every product against every training seller, pooled), and unseen opponents (a
   Boulware seller, the unyielding persona, CraigslistBargain). Rows: the untrained model, SFT, SFT + GRPO,
   ``scripted:anchor``, the best scripted buyer, the teacher whose episodes SFT imitated, and the oracle.

Writes into ``--results``: ``summary.json`` (one row per buyer × opponent, SFT + GRPO's paired differences from
the best scripted buyer and from SFT on the mixture, and ``test_evaluations``: how many configurations had been
scored on the test products when this one was, from the ledger ``bench/results/test-evaluations.jsonl``, to which
a run adds itself), ``paired.json``, ``baselines.json``, ``tables.md``, ``phases.json``, ``curves.png``,
``timings.json`` and ``episodes.jsonl.gz`` (every evaluation episode the tables rest on, with its transcript);
checkpoints and the working copies of the episodes go to the config's ``out``. Intervals resample products. A re-run
skips finished evaluations and continues training from the last checkpoint. ``--report DIR`` also writes the
HTML report of the run. The evaluations run in order of importance (the scripted rows; the trained buyers against
the training sellers; against the unseen opponents; the untrained model), so a run cut short has the cells the
claims rest on: ``--later-rollouts 1`` shortens the last two, ``--summarize-only`` writes the results from the
episodes played so far (every row says its ``n``).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import sys
import time
import uuid
from pathlib import Path

from machine import describe_machine

from counteroffer.analysis.paired import paired_differences
from counteroffer.analysis.phases import analyse_run
from counteroffer.analysis.tables import PaperTable, suite_records, suite_tables, write_tables
from counteroffer.config_file import parse_overrides
from counteroffer.evaluate.baselines import BASELINES_FILE, BaselineSearch, run_baselines
from counteroffer.evaluate.stats import Estimate
from counteroffer.evaluate.suite import SuiteConfig, SuiteTable, run_suite
from counteroffer.files import write_text_atomic
from counteroffer.train import TrainConfig, load_config, run_grpo, run_sft
from counteroffer.train.logs import LOG_FILE
from counteroffer.train.stage import native_bf16

UNSEEN = [
    SuiteTable(name="boulware", title="Unseen: a Boulware seller", seller="scripted:boulware"),
    SuiteTable(
        name="unyielding", title="Unseen: the unyielding persona", seller="scripted:linear", personas=["unyielding"]
    ),
    SuiteTable(name="craigslist", title="Unseen: CraigslistBargain", seller="scripted:linear", catalogs=["craigslist"]),
]


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


class Timings:
    """Wall seconds per stage of one run, summed over its resumptions. The file names the run (an id written into
    the run folder when it is created), so the times of an earlier run, or another machine's, are not added on."""

    def __init__(self, path: Path, run: Path) -> None:
        self.path = path
        run.mkdir(parents=True, exist_ok=True)
        id_file = run / "run_id"
        if not id_file.is_file():
            write_text_atomic(id_file, uuid.uuid4().hex + "\n")
        self.run_id = id_file.read_text().strip()
        saved = json.loads(path.read_text()) if path.is_file() else {}
        self.seconds: dict[str, float] = saved.get("seconds", {}) if saved.get("run_id") == self.run_id else {}

    def run(self, stage: str, work):  # noqa: ANN001, ANN201
        started = time.perf_counter()
        result = work()
        self.seconds[stage] = round(self.seconds.get(stage, 0.0) + time.perf_counter() - started, 1)
        write_text_atomic(self.path, json.dumps({"run_id": self.run_id, "seconds": self.seconds}, indent=2) + "\n")
        print(f"{stage}: {self.seconds[stage]:.0f} s", flush=True)
        return result


def llm_spec(model: str, config: TrainConfig, *, with_prompts: bool) -> str:
    """An ``hf:`` buyer spec for evaluation, sampled at the validation curve's temperature (the test and the curve
    that picks ``grpo/best`` see the same policy); a trained checkpoint carries its own prompt format."""
    dtype = "bfloat16" if native_bf16() else "float32"
    spec = (
        f"hf:{model}?dtype={dtype}&max_batch=128&max_new_tokens={config.grpo.max_new_tokens}"
        f"&temperature={config.evaluation.temperature:g}"
    )
    if with_prompts:
        spec += "&" + config.prompts.spec_query()
    return spec


def training_tables(config: TrainConfig) -> list[SuiteTable]:
    """The tables of the sellers GRPO trained against: their mixture (pooled) and each one alone."""
    training = [choice.spec for choice in config.grpo.sellers if choice.persona == "neutral"]
    tables = [SuiteTable(name="mixture", title="The training mixture (pooled)", sellers=training)]
    return tables + [
        SuiteTable(name=spec.split(":")[-1], title=f"Training seller {spec}", seller=spec) for spec in training
    ]


def evaluation_suite(config: TrainConfig, buyers: list[str], rollouts: int, limit: int | None = None) -> SuiteConfig:
    return SuiteConfig(
        out=config.out / "eval",
        buyers=buyers,
        split="test",
        rollouts=rollouts,
        limit=limit,
        max_turns=config.max_turns,
        seed=config.seed,
        data_root=config.data_root,
        tables=training_tables(config) + UNSEEN,
    )


def _exact(rate: Estimate) -> list[float] | None:
    return None if rate.exact_low is None else [rate.exact_low, rate.exact_high]


def summary_rows(tables: list[PaperTable], kinds: dict[str, str]) -> list[dict]:
    rows = []
    for table in tables:
        for row in table.rows:
            summary, ci = row.summary, row.summary.conflicting_interest
            reward = summary.overall.reward
            rows.append(
                {
                    "buyer": summary.buyer,
                    "kind": kinds.get(summary.buyer, "other"),
                    "opponent": "mixture" if table.name == "mixture" else table.title.split(": ", 1)[-1],
                    "table": table.name,
                    "n": summary.episodes,
                    "products": reward.clusters,
                    "reward": reward.mean,
                    "reward_ci": [reward.ci_low, reward.ci_high],
                    "deal_rate": summary.overall.deal_rate.mean,
                    "overshoot": summary.overall.overshoot_rate.mean,
                    "format_errors": summary.overall.format_error_rate.mean,
                    "format_errors_exact_ci": _exact(summary.overall.format_error_rate),
                    "misquote_rate": summary.overall.misquote_rate.mean,
                    "bargained_ratio": summary.mutual_interest.bargained_ratio.mean,
                    "ci_n": ci.episodes,
                    "ci_overshoot": ci.overshoot_rate.mean,
                    "ci_overshoot_events": ci.overshoot_rate.events,
                    "ci_overshoot_exact_ci": _exact(ci.overshoot_rate),
                    "ci_deal_rate": ci.deal_rate.mean,
                }
            )
    return rows


KIND_LABELS = {  # in the order of the summary's lines
    "base": "SmolLM2-135M, untrained",
    "sft": "after SFT",
    "grpo": "after SFT + GRPO",
    "anchor": "`scripted:anchor`",
    "best_scripted": "best scripted buyer",
    "teacher": "SFT teacher",
    "oracle": "`scripted:oracle` (knows cost and strategy)",
}


def summary_markdown(rows: list[dict]) -> str:
    """The summary as BENCHMARKS.md shows it: reward [95% interval] per buyer and opponent, then the mixture's
    other columns. One line per buyer, in KIND_LABELS' order; teachers (a config may name several) are labelled
    by spec."""
    opponents = list(dict.fromkeys(row["opponent"] for row in rows))
    cell = {(row["buyer"], row["opponent"]): row for row in rows}
    kind_of = {row["buyer"]: row["kind"] for row in rows if row["kind"] in KIND_LABELS}
    buyers = sorted(kind_of, key=lambda buyer: list(KIND_LABELS).index(kind_of[buyer]))  # stable: config order within
    labels = {
        buyer: KIND_LABELS[kind_of[buyer]] + (f" `{buyer}`" if kind_of[buyer] == "teacher" else "") for buyer in buyers
    }
    lines = ["| buyer | " + " | ".join(opponents) + " |", "|---|" + "---:|" * len(opponents)]
    for buyer in buyers:
        values = []
        for opponent in opponents:
            row = cell.get((buyer, opponent))
            low, high = row["reward_ci"] if row else (None, None)
            values.append(f"{row['reward']:+.3f} [{low:+.3f}, {high:+.3f}]" if row else "–")
        lines.append(f"| {labels[buyer]} | " + " | ".join(values) + " |")
    header = (
        "| buyer (mixture) | n | deal rate | bargained (MI deals) | overshoot | CI overshoot [exact 95%] "
        "| format errors | misquotes |"
    )
    lines += ["", header, "|---|" + "---:|" * 7]
    for buyer in buyers:
        row = cell.get((buyer, "mixture"))
        if row is None:
            continue
        bargained = "–" if row["bargained_ratio"] is None else f"{row['bargained_ratio']:.3f}"
        ci = "–"
        if row.get("ci_overshoot_exact_ci"):
            low, high = row["ci_overshoot_exact_ci"]
            ci = f"{row['ci_overshoot_events']} of {row['ci_n']} [{low:.1%}, {high:.1%}]"
        misquotes = "–" if row.get("misquote_rate") is None else f"{row['misquote_rate']:.1%}"
        lines.append(
            f"| {labels[buyer]} | {row['n']} | {row['deal_rate']:.1%} | {bargained} | {row['overshoot']:.1%} "
            f"| {ci} | {row['format_errors']:.1%} | {misquotes} |"
        )
    return "\n".join(lines) + "\n"


EPISODES_FILE = "episodes.jsonl.gz"
LEDGER = Path(__file__).parent / "results" / "test-evaluations.jsonl"


def ship_episodes(records: dict, results: Path) -> dict:
    """Every evaluation episode the tables rest on, with transcripts, as ``results/episodes.jsonl.gz`` (sorted by
    key, so a re-summary writes the same bytes): anyone can re-score the claim from the repository."""
    import msgspec

    unique = {record.key: record for cell in records.values() for record in cell}
    encoder = msgspec.json.Encoder()
    lines = b"".join(encoder.encode(unique[key]) + b"\n" for key in sorted(unique))
    data = gzip.compress(lines, compresslevel=9, mtime=0)
    (results / EPISODES_FILE).write_bytes(data)
    return {"file": EPISODES_FILE, "count": len(unique), "bytes": len(data)}


def test_evaluations(config_path: Path, config: TrainConfig, results: Path) -> int:
    """How many configurations had been scored on the test products when this one was: this run's place in the
    repository's ledger, adding it (keyed by its resolved config) the first time it is summarised."""
    fingerprint = hashlib.sha256(config.model_dump_json().encode()).hexdigest()[:16]
    entries = [json.loads(line) for line in LEDGER.read_text().splitlines() if line.strip()] if LEDGER.is_file() else []
    for number, entry in enumerate(entries, start=1):
        if entry["config"] == fingerprint:
            return number
    entry = {"config": fingerprint, "results": str(results), "source": str(config_path), "date": time.strftime("%F")}
    with LEDGER.open("a") as ledger:
        ledger.write(json.dumps(entry) + "\n")
    return len(entries) + 1


def read_log(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def plot(config: TrainConfig, results: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    log = read_log(config.grpo_dir / LOG_FILE)
    train = [e for e in log if e["kind"] == "train" and "game" in e]
    held_out = [e for e in log if e["kind"] == "eval"]
    sft = [e for e in read_log(config.sft_dir / LOG_FILE) if e["kind"] == "train" and "loss" in e["trainer"]]
    figure, axes = plt.subplots(2, 3, figsize=(14, 7.5))
    panels = [
        ("reward", "reward"),
        ("deal_rate", "deal rate"),
        ("first_offer_ratio", "first offer / budget"),
        ("format_error_rate", "format-error rate"),
        ("bargained_ratio", "bargained ratio (MI deals)"),
    ]
    for axis, (metric, title) in zip(axes.flat, panels, strict=False):
        for entries, label, style in ((train, "training episodes", "-"), (held_out, "validation (held out)", "o-")):
            points = [(e["step"], e["game"][metric]) for e in entries if e["game"].get(metric) is not None]
            if points:
                axis.plot(*zip(*points, strict=True), style, label=label, markersize=4)
        if metric == "reward":
            for label in sorted({k for e in train for k in e.get("game_by_seller", {})}):
                points = [
                    (e["step"], e["game_by_seller"][label]["reward"])
                    for e in train
                    if label in e.get("game_by_seller", {})
                ]
                axis.plot(*zip(*points, strict=True), ":", label=label, alpha=0.6)
        axis.set_title(f"GRPO: {title}")
        axis.set_xlabel("step")
        axis.legend(fontsize=7)
    axis = axes.flat[-1]
    if sft:
        axis.plot([e["step"] for e in sft], [e["trainer"]["loss"] for e in sft], color="tab:red")
    axis.set_title("SFT: loss on buyer tokens")
    axis.set_xlabel("step")
    figure.tight_layout()
    figure.savefig(results / "curves.png", dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=Path("configs/cpu-smollm2.yaml"))
    parser.add_argument("--results", type=Path, default=Path("bench/results/cpu-learning"))
    parser.add_argument("--report", type=Path, default=None, help="also write the HTML report of the run here")
    parser.add_argument("--rollouts", type=int, default=2, help="episodes per test product and buyer")
    parser.add_argument(
        "--later-rollouts",
        type=int,
        default=None,
        help="fewer rollouts for the unseen opponents and the untrained model (a shorter run; the summary's n says)",
    )
    parser.add_argument("--limit", type=int, default=None, help="evaluate on the first K products only (a smoke run)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        metavar="FIELD=VALUE",
        help="override a config field as `counteroffer train --set` does (a variant of the recipe: give it its own "
        "out and --results); repeatable",
    )
    parser.add_argument(
        "--summarize-only", action="store_true", help="write the results from the episodes played so far"
    )
    args = parser.parse_args()
    config = load_config(args.config, parse_overrides(args.overrides))
    results = args.results
    results.mkdir(parents=True, exist_ok=True)
    timings = Timings(results / "timings.json", config.out)

    # The claims are on the uniform mixture; seller weights only shape what GRPO trains on.
    search = BaselineSearch(
        sellers=[c.model_copy(update={"weight": 1.0}) for c in config.grpo.sellers],
        max_turns=config.max_turns,
        seed=config.seed,
        data_root=config.data_root,
    )
    saved = results / BASELINES_FILE
    if saved.is_file() and json.loads(saved.read_text())["search"] == search.model_dump(mode="json"):
        leader = json.loads(saved.read_text())["rows"][0]  # a resumed run keeps the search it made
    else:
        best = timings.run("baselines", lambda: run_baselines(search, results)).best
        leader = {"buyer": best.buyer, "reward": best.reward}
    best_scripted = leader["buyer"]
    print(f"best scripted buyer on train: {best_scripted} ({leader['reward']:.3f})", flush=True)

    teachers = [spec for spec in config.sft.demo_buyers if spec != best_scripted]
    scripted = list(dict.fromkeys(["scripted:anchor", best_scripted, *teachers]))
    kinds = {"scripted:anchor": "anchor", best_scripted: "best_scripted", "scripted:oracle": "oracle"}
    kinds.update({spec: "teacher" for spec in teachers})
    claims = {table.name for table in training_tables(config)}
    trained = {}
    for stage, train in (("sft", run_sft), ("grpo", run_grpo)):
        final = config.out / stage / "final"
        if not final.is_dir() and not args.summarize_only:  # a finished stage is not trained again
            timings.run(stage, lambda train=train: train(config, resume=True))
        trained[stage] = llm_spec(str(final), config, with_prompts=False)
        if stage == "sft" and not args.summarize_only:  # the SFT checkpoint alone, before GRPO starts from it
            timings.run(
                "evaluate_sft",
                lambda: evaluate(config, [*scripted, trained["sft"]], args.rollouts, args.limit, claims),
            )
    base = llm_spec(config.model, config, with_prompts=True)
    kinds.update({spec: stage for stage, spec in trained.items()} | {base: "base"})
    # The claims first (trained buyers against the training sellers), then the unseen opponents, then the
    # untrained model, so that a run cut short has its most important cells; each stage resumes the last.
    buyers = [*scripted, trained["grpo"], trained["sft"]]
    later = args.later_rollouts or args.rollouts
    stages = (
        ("evaluate_scripted", scripted, args.rollouts, None),  # seconds: every scripted row at full size
        ("evaluate_training", buyers, args.rollouts, claims),
        ("evaluate_unseen", buyers, later, None),
        ("evaluate_base", [*buyers, base], later, None),
    )
    for stage, stage_buyers, rollouts, tables in stages if not args.summarize_only else ():
        timings.run(stage, lambda b=stage_buyers, r=rollouts, t=tables: evaluate(config, b, r, args.limit, t))
    buyers = [*buyers, base]

    suite = evaluation_suite(config, buyers, args.rollouts, args.limit)
    records = suite_records(suite)
    tables = suite_tables(suite, records)
    # The claims compare buyers on the same episodes' products, sellers and seeds: paired differences are tighter
    # than two separate intervals.
    paired = {
        name: [d.model_dump(mode="json") for d in paired_differences(suite, reference, records)]
        for name, reference in (("best_scripted", best_scripted), ("sft", trained["sft"]))
    }
    write_text_atomic(results / "paired.json", json.dumps(paired, indent=2) + "\n")
    write_tables(suite.out, tables)
    (results / "tables.md").write_text((suite.out / "tables.md").read_text())
    # The steps, the phase bands, and each phase's trend test (the labeller's settings with them).
    write_text_atomic(results / "phases.json", json.dumps(analyse_run(config.out).as_dict(), indent=1) + "\n")
    plot(config, results)
    summary = {
        "rows": summary_rows(tables, kinds),
        "grpo_paired": {  # SFT + GRPO minus the reference, episode by episode, on the training mixture
            name: next(d for d in found if d["buyer"] == trained["grpo"] and d["table"] == "mixture")
            for name, found in paired.items()
        },
        "best_scripted": best_scripted,
        "checkpoint": "grpo/final (fixed before the run; grpo/best is chosen on validation products only)",
        "test_evaluations": test_evaluations(args.config, config, results),
        "episodes": ship_episodes(records, results),
        "machine": describe_machine(),
        "command": " ".join(["python", *sys.argv]),
        "config": str(args.config),
        "timings_seconds": timings.seconds,
    }
    write_text_atomic(results / "summary.json", json.dumps(summary, indent=2) + "\n")
    write_text_atomic(results / "summary.md", summary_markdown(summary["rows"]))
    if args.report is not None:
        from counteroffer.report.html import write_report

        write_report([config.out], args.report, title="counteroffer: the CPU learning run")
    for row in summary["rows"]:
        if row["opponent"] == "mixture":
            print(
                f"{row['kind']:>14} {row['buyer'][:60]:<60} reward {row['reward']:+.3f} "
                f"[{row['reward_ci'][0]:+.3f}, {row['reward_ci'][1]:+.3f}] format errors {row['format_errors']:.3f}"
            )
    for name, found in summary["grpo_paired"].items():
        difference = found["difference"]
        print(
            f"SFT + GRPO minus {name}, paired on the mixture: {difference['mean']:+.3f} "
            f"[{difference['ci_low']:+.3f}, {difference['ci_high']:+.3f}] "
            f"(better {found['better']}, worse {found['worse']})"
        )


if __name__ == "__main__":
    main()
