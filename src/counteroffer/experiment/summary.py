"""An experiment's results: one summary row per buyer × opponent, the markdown BENCHMARKS.md shows, SFT + GRPO's
paired differences, the shipped evaluation episodes and the ledger of configurations scored on the test products."""

from __future__ import annotations

import gzip
import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from counteroffer.analysis.paired import paired_differences
from counteroffer.analysis.tables import PaperTable
from counteroffer.evaluate.stats import Estimate
from counteroffer.evaluate.suite import Cell, SuiteConfig
from counteroffer.game.records import EpisodeRecord
from counteroffer.train.config import TrainConfig

EPISODES_FILE = "episodes.jsonl.gz"

KIND_LABELS = {  # in the order of the summary's lines
    "base": "SmolLM2-135M, untrained",
    "sft": "after SFT",
    "grpo": "after SFT + GRPO",
    "anchor": "`scripted:anchor`",
    "grpo_talk_ablated": "after SFT + GRPO, its Talk replaced by the template",
    "best_scripted": "best scripted buyer",
    "best_talk_blind": "best talk-blind scripted buyer",
    "teacher": "SFT teacher",
    "oracle": "`scripted:oracle` (knows cost and strategy)",
}


def _exact(rate: Estimate) -> list[float] | None:
    return None if rate.exact_low is None else [rate.exact_low, rate.exact_high]


def _mean(estimate: Estimate | None) -> float | None:
    return None if estimate is None else estimate.mean


def summary_rows(tables: Sequence[PaperTable], kinds: Mapping[str, str]) -> list[dict[str, Any]]:
    """One row per buyer and table: the reward with its interval and the mixture's other columns. ``kinds``: each
    buyer spec's kind (a key of :data:`KIND_LABELS`); other buyers are ``"other"``."""
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
                    "argument_rate": _mean(summary.overall.argument_rate),
                    "argument_match_rate": _mean(summary.overall.argument_match_rate),
                    "false_claim_rate": _mean(summary.overall.false_claim_rate),
                    "bargained_ratio": summary.mutual_interest.bargained_ratio.mean,
                    "ci_n": ci.episodes,
                    "ci_overshoot": ci.overshoot_rate.mean,
                    "ci_overshoot_events": ci.overshoot_rate.events,
                    "ci_overshoot_exact_ci": _exact(ci.overshoot_rate),
                    "ci_deal_rate": ci.deal_rate.mean,
                }
            )
    return rows


def summary_markdown(rows: Sequence[Mapping[str, Any]]) -> str:
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


def paired_against(
    suite: SuiteConfig, references: Mapping[str, str], records: dict[Cell, list[EpisodeRecord]]
) -> dict[str, list[dict[str, Any]]]:
    """Every buyer's paired reward differences (same products, sellers and seeds: tighter than two separate
    intervals) from each reference buyer, by the reference's name (``paired.json``)."""
    return {
        name: [d.model_dump(mode="json") for d in paired_differences(suite, reference, records)]
        for name, reference in references.items()
    }


def grpo_paired(paired: Mapping[str, list[dict[str, Any]]], grpo: str) -> dict[str, dict[str, Any]]:
    """SFT + GRPO minus each reference, episode by episode, on the training mixture (a reference whose mixture
    cell has no episodes yet, in a run cut short, is left out)."""
    found = {
        name: next((d for d in rows if d["buyer"] == grpo and d["table"] == "mixture"), None)
        for name, rows in paired.items()
    }
    return {name: row for name, row in found.items() if row is not None}


# The claims of a run against sellers that read words: (buyer kind, reference): GRPO against the best talk-blind
# buyer and its SFT start, and the talk ablation against GRPO itself.
CLAIMS = (("grpo", "best_talk_blind"), ("grpo", "sft"), ("grpo_talk_ablated", "grpo"), ("sft", "best_talk_blind"))


def claims_paired(paired: Mapping[str, list[dict[str, Any]]], kinds: Mapping[str, str]) -> list[dict[str, Any]]:
    """The claims' paired differences, on every table: ``{buyer, versus, opponent, difference, ci, better,
    worse, n, products}`` (``difference``: the buyer's reward minus the reference's, episode by episode on the same
    products, sellers and seeds; ``ci``: its 95% interval, resampling products). ``kinds``: each buyer spec's
    kind; a claim with no paired episode yet (a run cut short) is left out."""
    specs = {kind: spec for spec, kind in kinds.items()}
    rows = []
    for kind, reference in CLAIMS:
        for found in paired.get(reference, []):
            if found["buyer"] == specs.get(kind) and found["difference"]["n"]:
                difference = found["difference"]
                rows.append(
                    {
                        "buyer": kind,
                        "versus": reference,
                        "opponent": found["table"],
                        "difference": difference["mean"],
                        "ci": [difference["ci_low"], difference["ci_high"]],
                        "better": found["better"],
                        "worse": found["worse"],
                        "n": difference["n"],
                        "products": difference["clusters"],
                    }
                )
    return rows


def ship_episodes(records: Mapping[Any, Sequence[EpisodeRecord]], results: Path) -> dict[str, Any]:
    """Every evaluation episode the tables rest on, with transcripts, as ``results/episodes.jsonl.gz`` (sorted by
    key, so a re-summary writes the same bytes): anyone can re-score the claim from the repository."""
    import msgspec

    unique = {record.key: record for cell in records.values() for record in cell}
    encoder = msgspec.json.Encoder()
    lines = b"".join(encoder.encode(unique[key]) + b"\n" for key in sorted(unique))
    data = gzip.compress(lines, compresslevel=9, mtime=0)
    (results / EPISODES_FILE).write_bytes(data)
    return {"file": EPISODES_FILE, "count": len(unique), "bytes": len(data)}


def config_fingerprint(config: TrainConfig) -> str:
    """The resolved training config's identity in the ledger."""
    return hashlib.sha256(config.model_dump_json().encode()).hexdigest()[:16]


def record_test_evaluation(ledger: Path, source: Path, config: TrainConfig, results: Path) -> int:
    """How many configurations had been scored on the test products when this one was: this run's place in the
    ledger (JSONL, one configuration a line), adding it (keyed by its resolved config) the first time it is
    summarised. A re-summary of the same configuration keeps its number."""
    fingerprint = config_fingerprint(config)
    entries = [json.loads(line) for line in ledger.read_text().splitlines() if line.strip()] if ledger.is_file() else []
    for number, entry in enumerate(entries, start=1):
        if entry["config"] == fingerprint:
            return number
    entry = {"config": fingerprint, "results": str(results), "source": str(source), "date": time.strftime("%F")}
    ledger.parent.mkdir(parents=True, exist_ok=True)
    with ledger.open("a") as file:
        file.write(json.dumps(entry) + "\n")
    return len(entries) + 1


def _signed(value: float | None) -> str:
    return "–" if value is None else f"{value:+.3f}"


def mixture_lines(summary: Mapping[str, Any]) -> list[str]:
    """The summary's mixture results as text lines (what the command prints at the end)."""
    lines = []
    for row in summary["rows"]:
        if row["opponent"] == "mixture":
            low, high = row["reward_ci"]
            errors = "–" if row["format_errors"] is None else f"{row['format_errors']:.3f}"
            lines.append(
                f"{row['kind']:>14} {row['buyer'][:60]:<60} reward {_signed(row['reward'])} "
                f"[{_signed(low)}, {_signed(high)}] format errors {errors}"
            )
    for name, found in summary["grpo_paired"].items():
        difference = found["difference"]
        lines.append(
            f"SFT + GRPO minus {name}, paired on the mixture: {_signed(difference['mean'])} "
            f"[{_signed(difference['ci_low'])}, {_signed(difference['ci_high'])}] "
            f"(better {found['better']}, worse {found['worse']})"
        )
    return lines
