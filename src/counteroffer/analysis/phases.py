"""The four phases of training (DESIGN.md §1), labelled step by step from a GRPO run's ``train_log.jsonl``.

Per step the log gives the game metrics of the step's rollouts (first-offer ratio, deal rate, bargained ratio,
deadlock rate) and sample transcripts; the buyer's Talk in the transcripts is searched for persuasion markers
(:data:`PERSUASION_LEXICON`). Logs written before the deadlock rate was logged get it from the transcripts.

The signals are smoothed with a centred rolling mean (over ``window`` steps, an even window rounded up to the
next odd one), then each step is labelled by the first rule that holds (:class:`PhaseRules` holds the thresholds):

1. **deadlock**: the deal rate is at least ``deal_dip`` below its best so far, and at least ``deadlock_min`` of
   the episodes end without a deal (turn limit or a quit): the regulated seller refuses the lowballs;
2. **persuasion**: a deadlock came earlier, the deal rate has recovered to within ``deal_dip`` of its best, first
   offers are still anchored (rule 3), and the buyer argues (at least ``persuasion_min`` of the sampled episodes
   use a persuasion marker) or the bargained ratio stays high (at least ``bargained_high``);
3. **aggressive anchoring**: first offers have dropped at least ``anchor_drop`` below the run's first steps, or
   sit at or below ``anchor_ratio`` of the budget;
4. **naive bargaining**: otherwise (first offers near the budget).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from counteroffer.game.messages import Role
from counteroffer.game.records import deadlock_rate
from counteroffer.game.transcript import ParsedTranscript, parse_transcript

# Argument types a buyer uses, as case-insensitive regular expressions over its Talk.
PERSUASION_LEXICON: dict[str, tuple[str, ...]] = {
    "budget_appeal": (
        r"\bbudget\b",
        r"\b(?:can(?:no|')?t|cannot) (?:afford|go (?:any )?higher|spend (?:any )?more|stretch)",
        r"\ball (?:i|we) (?:can|have)\b",
        r"\bmy (?:limit|max(?:imum)?)\b",
        r"\btight\b",
    ),
    "competing_offer": (
        r"\b(?:other|another) (?:sellers?|listings?|stores?|offers?|shops?|deals?)\b",
        r"\belsewhere\b",
        r"\bcompetitors?\b",
        r"\bcheaper\b",
        r"\b(?:seen|found) (?:it|one|them) for\b",
    ),
    "quality_critique": (
        r"\b(?:used|worn|scratch\w*|dent\w*|outdated|older model|flaws?|defects?|refurbished)\b",
        r"\bnot worth\b",
        r"\bover-?priced\b",
        r"\b(?:missing|lacks?)\b",
    ),
    "bundling": (
        r"\bbundle\b",
        r"\bthrow in\b",
        r"\bpackage deal\b",
        r"\baccessor(?:y|ies)\b",
        r"\bbuy (?:two|2|several|more|both)\b",
    ),
    "urgency": (
        r"\b(?:today|right now|immediately|asap|right away|this week|tonight)\b",
        r"\bready to (?:buy|pay)\b",
        r"\b(?:pay|paying) (?:in )?cash\b",
    ),
    "flattery": (
        r"\b(?:beautiful|lovely|amazing|excellent|fantastic|wonderful|impressive|gorgeous)\b",
        r"\byou(?:'ve| have) been (?:great|helpful|fair|kind)\b",
        r"\b(?:i|we) (?:really )?(?:love|admire)\b",
    ),
}
_COMPILED = {kind: re.compile("|".join(patterns), re.IGNORECASE) for kind, patterns in PERSUASION_LEXICON.items()}


def persuasion_markers(talk: str) -> set[str]:
    """The argument types a piece of Talk uses."""
    return {kind for kind, pattern in _COMPILED.items() if pattern.search(talk)}


class Phase(StrEnum):
    NAIVE = "naive bargaining"
    ANCHORING = "aggressive anchoring"
    DEADLOCK = "deadlock"
    PERSUASION = "persuasion"


@dataclass(frozen=True, slots=True)
class PhaseRules:
    window: int = 3  # steps in the centred rolling mean
    anchor_drop: float = 0.10
    anchor_ratio: float = 0.60
    deal_dip: float = 0.15
    deadlock_min: float = 0.25
    persuasion_min: float = 0.30
    bargained_high: float = 0.60


@dataclass(slots=True)
class StepSignals:
    """One training step's signals (raw, before smoothing); ``None`` where the step had no such episode."""

    step: int
    first_offer_ratio: float | None
    deal_rate: float | None
    bargained_ratio: float | None
    deadlock_rate: float | None
    persuasion_rate: float | None  # share of sampled episodes whose buyer used any marker
    markers: dict[str, int] = field(default_factory=dict)  # sampled episodes using each argument type
    samples: int = 0
    phase: Phase | None = None


def _persuasion(transcripts: Sequence[ParsedTranscript]) -> tuple[float | None, dict[str, int]]:
    counts = dict.fromkeys(PERSUASION_LEXICON, 0)
    persuaded = 0
    for episode in transcripts:
        used = set().union(*(persuasion_markers(m.talk) for m in episode.messages if m.role is Role.BUYER))
        persuaded += bool(used)
        for kind in used:
            counts[kind] += 1
    return (persuaded / len(transcripts) if transcripts else None), counts


def step_signals(entry: dict) -> StepSignals:
    """The signals of one ``"kind": "train"`` line of a train log."""
    game = entry.get("game") or {}
    transcripts = []
    for text in entry.get("samples") or []:
        try:
            transcripts.append(parse_transcript(text))
        except ValueError:
            continue  # a sample in another format says nothing here
    deadlock = game.get("deadlock_rate")
    if deadlock is None:
        deadlock = deadlock_rate([t.outcome for t in transcripts if t.outcome is not None])
    persuasion, markers = _persuasion(transcripts)
    return StepSignals(
        step=int(entry["step"]),
        first_offer_ratio=game.get("first_offer_ratio"),
        deal_rate=game.get("deal_rate"),
        bargained_ratio=game.get("bargained_ratio"),
        deadlock_rate=deadlock,
        persuasion_rate=persuasion,
        markers=markers,
        samples=len(transcripts),
    )


def _smooth(values: Sequence[float | None], window: int) -> list[float | None]:
    half = window // 2
    smoothed: list[float | None] = []
    for i in range(len(values)):
        near = [v for v in values[max(0, i - half) : i + half + 1] if v is not None]
        smoothed.append(sum(near) / len(near) if near else None)
    return smoothed


def label_phases(steps: Sequence[StepSignals], rules: PhaseRules = PhaseRules()) -> list[StepSignals]:
    """Set each step's :attr:`~StepSignals.phase` by the module's rules; returns the steps, in step order."""
    steps = sorted(steps, key=lambda s: s.step)
    series = {
        name: _smooth([getattr(s, name) for s in steps], rules.window)
        for name in ("first_offer_ratio", "deal_rate", "bargained_ratio", "deadlock_rate", "persuasion_rate")
    }
    starting_offers = [v for v in series["first_offer_ratio"][: rules.window] if v is not None]
    first_offer_start = starting_offers[0] if starting_offers else None
    best_deal = None
    seen_deadlock = False
    for i, step in enumerate(steps):
        offer, deal, bargained, deadlock, persuasion = (series[name][i] for name in series)
        if deal is not None:
            best_deal = deal if best_deal is None else max(best_deal, deal)
        dipped = deal is not None and best_deal is not None and deal <= best_deal - rules.deal_dip
        anchored = offer is not None and (
            offer <= rules.anchor_ratio
            or (first_offer_start is not None and offer <= first_offer_start - rules.anchor_drop)
        )
        if dipped and deadlock is not None and deadlock >= rules.deadlock_min:
            step.phase = Phase.DEADLOCK
            seen_deadlock = True
        elif (
            seen_deadlock
            and deal is not None
            and not dipped
            and anchored
            and (
                (persuasion is not None and persuasion >= rules.persuasion_min)
                or (bargained is not None and bargained >= rules.bargained_high)
            )
        ):
            step.phase = Phase.PERSUASION
        elif anchored:
            step.phase = Phase.ANCHORING
        else:
            step.phase = Phase.NAIVE
    return steps


@dataclass(frozen=True, slots=True)
class PhaseBand:
    phase: Phase
    first_step: int
    last_step: int


def phase_bands(steps: Sequence[StepSignals]) -> list[PhaseBand]:
    """Runs of consecutive steps with the same phase (for the report's curve bands)."""
    bands: list[PhaseBand] = []
    for step in steps:
        if step.phase is None:
            continue
        if bands and bands[-1].phase is step.phase:
            bands[-1] = PhaseBand(step.phase, bands[-1].first_step, step.step)
        else:
            bands.append(PhaseBand(step.phase, step.step, step.step))
    return bands


def find_train_log(run: Path) -> Path:
    """The GRPO log of a run: ``RUN/grpo/train_log.jsonl``, ``RUN/train_log.jsonl``, or ``RUN`` itself."""
    for candidate in (run / "grpo" / "train_log.jsonl", run / "train_log.jsonl", run):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"no GRPO train log in {run} (looked for grpo/train_log.jsonl and train_log.jsonl)")


def read_train_log(path: Path) -> list[dict]:
    """Every line of a train log; a line that is not JSON is reported with its file and line number."""
    entries = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{number}: not a JSON line ({exc.msg})") from None
    return entries


def analyse_entries(entries: Sequence[dict], rules: PhaseRules = PhaseRules()) -> list[StepSignals]:
    """Signals and phase of every GRPO step in a train log's lines (the last line for a step wins)."""
    by_step = {e["step"]: e for e in entries if e.get("kind") == "train"}
    return label_phases([step_signals(entry) for entry in by_step.values()], rules)


def analyse_run(run: Path, rules: PhaseRules = PhaseRules()) -> list[StepSignals]:
    """Signals and phase of every GRPO step of a run."""
    return analyse_entries(read_train_log(find_train_log(run)), rules)
