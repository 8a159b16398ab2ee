"""The four phases of training (docs/design.md §1), found in a GRPO run's ``train_log.jsonl`` by permutation tests.

Each GRPO step of the log gives signals: the game metrics of the step's rollouts and its sample transcripts,
whose buyer Talk is searched for persuasion markers (:data:`PERSUASION_LEXICON`). A phase is a change of one
signal, away from where the run started, that the order of the steps explains better than chance does:

* **aggressive anchoring**: the first-offer ratio (first ``[BUY]`` price / budget) falls;
  **naive bargaining** is then the steps before the anchoring segment (the run's start, where first offers are
  higher). Without a significant anchoring trend neither is labelled.
* **deadlock**: the share of *mutual-interest* episodes (budget above cost: a deal was possible) that end without
  a deal (:attr:`~counteroffer.game.records.Outcome.is_deadlock`) rises. A no-deal on a conflicting-interest
  product is a correct walk-away and never counts. The signal is the log's ``mutual_interest_deadlock_rate``
  (GRPO logs it per step); a log without it falls back to its sample transcripts, whose header prints the
  budget and cost to the cent (a product whose budget and cost are within a cent of each other is left out, as
  its interest cannot be told; the samples are a few episodes a step, so that rate is coarse), and a log with
  neither cannot be tested for deadlock. The all-episode deadlock
  rate is shown but never tested.
* **persuasion**: against sellers that hint at what moves them (``game/hints.py``), the step's argument-lever
  match rate rises: the share of its episodes whose checked arguments are all true and of the hinted lever
  (GRPO logs it per step). Elsewhere, the share of sampled transcripts whose buyer Talk uses a persuasion marker
  rises. The bargained ratio plays no part. A log with neither cannot be tested for persuasion.

The test (:func:`segment_test`). For a signal's series x_1..x_n (steps where it is ``None`` left out) and the
phase's direction d (+1: the phase raises the signal, -1: lowers it), each contiguous segment [a, b] scores
d × min(mean(segment) − mean(the other steps), mean(segment) − mean(x_1..x_a-1)): an "epidemic" change-point
statistic (segment against the rest, covering both a step change that lasts to the end and a bump that ends),
which must also hold against the run's start (the steps before the segment), so that a trend the other way (first
offers that start low and rise) is no phase. A segment spans at least ``min_steps`` steps, begins after at least
``min_steps`` steps and leaves at least ``min_steps`` outside. The statistic is the largest score; its p-value
is (1 + #permutations scoring ≥ the observed) / (1 + permutations) over ``permutations`` random orders of the same
values (seeded by ``seed``, so a result is reproducible). The p-values of the tested phases are adjusted for
testing several (Holm), and a phase labels its maximising segment only where the adjusted p is below ``alpha``.
Where segments overlap, persuasion > deadlock > anchoring > naive; steps in no labelled segment have no phase
(``None``).

What a label does and does not say: the signal's level in the segment differs from the rest of the run and from
its start by more than reordering the steps explains. The permutation null treats the steps as exchangeable, so a
slow drift (the policy wandering) counts as a trend as much as a phase change does, and nothing checks that the
phases come in the design's order. :func:`shuffle_steps` (``counteroffer phases RUN --shuffle SEED``) analyses a
copy of the log with its steps permuted: the null check, where a phase should be found about ``alpha`` of the
time or less.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from pathlib import Path

import numpy as np

from counteroffer.errors import InputNotFoundError
from counteroffer.game.messages import Role
from counteroffer.game.records import EpisodeRecord, EpisodeStatus, deadlock_rate
from counteroffer.game.transcript import ParsedTranscript, parse_transcript
from counteroffer.seeding import derive_seed
from counteroffer.train.log_records import LOG_FILE, TrainLogEntry, read_train_log

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
class PhaseSignal:
    """The signal a phase is tested on: a :class:`StepSignals` attribute and the way the phase moves it."""

    attribute: str
    direction: int  # +1: the phase raises the signal, -1: lowers it
    description: str


SIGNALS: dict[Phase, PhaseSignal] = {
    Phase.ANCHORING: PhaseSignal("first_offer_ratio", -1, "first offer / budget falls"),
    Phase.DEADLOCK: PhaseSignal("mutual_interest_deadlock_rate", +1, "no-deal share of mutual-interest episodes rises"),
    Phase.PERSUASION: PhaseSignal(
        "persuasion_rate", +1, "argument-lever match rate (else share of sampled buyers using markers) rises"
    ),
}
NAIVE_SIGNAL = PhaseSignal("first_offer_ratio", +1, "first offers higher than in the anchoring segment")
PRECEDENCE = (Phase.PERSUASION, Phase.DEADLOCK, Phase.ANCHORING, Phase.NAIVE)  # the first that covers a step wins


@dataclass(frozen=True, slots=True)
class PhaseSettings:
    alpha: float = 0.05  # a phase is labelled where its Holm-adjusted p-value is below this
    permutations: int = 1000  # random step orders per test
    min_steps: int = 3  # the shortest segment, the shortest rest, and the steps before a segment begins
    seed: int = 0  # seeds the permutations: the same log and settings give the same result


@dataclass(slots=True)
class StepSignals:
    """One training step's signals; ``None`` where the step had no such episode."""

    step: int
    first_offer_ratio: float | None
    deal_rate: float | None
    bargained_ratio: float | None
    deadlock_rate: float | None  # every episode (shown, never tested: conflicting-interest walk-aways count here)
    # The step's argument-lever match rate where its sellers hint (persuasion_source "argument_match"), else the
    # share of sampled episodes whose buyer used any marker ("markers").
    persuasion_rate: float | None
    markers: dict[str, int] = field(default_factory=dict)  # sampled episodes using each argument type
    samples: int = 0
    mutual_interest_deadlock_rate: float | None = None  # share of mutual-interest episodes ending without a deal
    mutual_interest_source: str | None = None  # "log" or "samples": where that rate came from
    persuasion_source: str | None = None
    phase: Phase | None = None
    phase_signal: str | None = None  # the signal whose significant trend put the phase here


@dataclass(slots=True)
class PhaseTest:
    """One phase's trend test on its signal. Steps are step numbers (inclusive); means are the signal's."""

    phase: Phase
    signal: str
    direction: int
    testable: bool = True
    reason: str | None = None  # why it is not testable, or why a significant trend is not labelled
    source: str | None = None  # where the signal came from
    steps_tested: int = 0
    first_step: int | None = None  # the maximising segment
    last_step: int | None = None
    start_mean: float | None = None  # the steps before the segment
    segment_mean: float | None = None
    rest_mean: float | None = None  # every step outside the segment
    statistic: float | None = None  # direction × min(segment − rest, segment − start) means
    p_value: float | None = None
    p_adjusted: float | None = None  # Holm over the tested phases
    labelled: bool = False


@dataclass(slots=True)
class PhaseAnalysis:
    steps: list[StepSignals]
    tests: list[PhaseTest]  # anchoring, deadlock, persuasion, then naive (derived from anchoring)
    settings: PhaseSettings
    shuffled: int | None = None  # the seed of :func:`shuffle_steps` when the steps were permuted first

    @property
    def bands(self) -> list[PhaseBand]:
        return phase_bands(self.steps)

    def test(self, phase: Phase) -> PhaseTest:
        return next(t for t in self.tests if t.phase is phase)

    def as_dict(self) -> dict:
        """JSON-ready: the settings, the shuffle seed, the tests, every step and the bands."""
        return {
            "settings": asdict(self.settings),
            "shuffled": self.shuffled,
            "tests": [asdict(t) for t in self.tests],
            "steps": [asdict(s) for s in self.steps],
            "bands": [asdict(b) for b in self.bands],
        }


# --- the signals of a step -------------------------------------------------------------------------------------

_BUDGET_COST = re.compile(r"\| budget (?P<budget>[-\d.]+) cost (?P<cost>[-\d.]+) asking [-\d.]+ \|")


def transcript_mutual_interest(text: str) -> bool | None:
    """Whether a transcript's product had mutual interest (budget above cost), from its header's budget and cost
    (printed to the cent); ``None`` when they are within a cent of each other (or the header has none): rounding
    then hides which side of the cost the budget lies."""
    match = _BUDGET_COST.search(text.partition("\n")[0])
    if match is None:
        return None
    cents = round(float(match.group("budget")) * 100) - round(float(match.group("cost")) * 100)
    # Each printed value is within half a cent of the true one: 2 cents apart or more, budget > cost surely;
    # a cent or more below, budget <= cost surely.
    return True if cents >= 2 else False if cents <= -1 else None


def mutual_interest_deadlock_rate(records: Sequence[EpisodeRecord]) -> float | None:
    """The share of scored mutual-interest episodes that ended without a deal (turn limit or a quit); ``None``
    without any. Conflicting-interest episodes are left out: walking away there is correct."""
    return deadlock_rate(
        [
            r.outcome
            for r in records
            if r.status is EpisodeStatus.OK and r.metrics is not None and r.metrics.mutual_interest and r.outcome
        ]
    )


def _persuasion(transcripts: Sequence[ParsedTranscript]) -> tuple[float | None, dict[str, int]]:
    counts = dict.fromkeys(PERSUASION_LEXICON, 0)
    persuaded = 0
    for episode in transcripts:
        used = set().union(*(persuasion_markers(m.talk) for m in episode.messages if m.role is Role.BUYER))
        persuaded += bool(used)
        for kind in used:
            counts[kind] += 1
    return (persuaded / len(transcripts) if transcripts else None), counts


def step_signals(entry: TrainLogEntry | dict, hinted: bool = False) -> StepSignals:
    """The signals of one ``"kind": "train"`` line of a train log."""
    entry = TrainLogEntry.of(entry)
    game = entry.game or {}
    transcripts, mutual_outcomes = [], []
    for text in entry.samples:
        try:
            transcript = parse_transcript(text)
        except ValueError:
            continue  # a sample in another format says nothing here
        transcripts.append(transcript)
        if transcript.outcome is not None and transcript_mutual_interest(text):
            mutual_outcomes.append(transcript.outcome)
    if "mutual_interest_deadlock_rate" in game:
        mutual_deadlock, source = game["mutual_interest_deadlock_rate"], "log"
    elif mutual_outcomes:
        mutual_deadlock, source = deadlock_rate(mutual_outcomes), "samples"
    else:
        mutual_deadlock, source = None, None
    deadlock = game.get("deadlock_rate")
    if deadlock is None:
        deadlock = deadlock_rate([t.outcome for t in transcripts if t.outcome is not None])
    persuasion, markers = _persuasion(transcripts)
    persuasion_source = "markers" if persuasion is not None else None
    if hinted:  # the whole log's signal: a step without a match rate has none, not the markers' rate
        persuasion = game.get("argument_match_rate")
        persuasion_source = "argument_match" if persuasion is not None else None
    return StepSignals(
        step=entry.step,
        first_offer_ratio=game.get("first_offer_ratio"),
        deal_rate=game.get("deal_rate"),
        bargained_ratio=game.get("bargained_ratio"),
        deadlock_rate=deadlock,
        persuasion_rate=persuasion,
        markers=markers,
        samples=len(transcripts),
        mutual_interest_deadlock_rate=mutual_deadlock,
        mutual_interest_source=source,
        persuasion_source=persuasion_source,
    )


# --- the trend test --------------------------------------------------------------------------------------------

_NO_DEPARTURE = 1e-12  # a best score this small is rounding: no segment moves the phase's way (a flat series)
_CELLS_PER_CHUNK = 4_000_000  # permutations × segments scored at once (memory stays ~100 MB for long runs)


@dataclass(frozen=True, slots=True)
class SegmentTest:
    first: int  # index of the maximising segment's first value (0-based)
    last: int  # and of its last value, inclusive
    statistic: float
    p_value: float


def _segments(n: int, min_steps: int) -> tuple[np.ndarray, np.ndarray]:
    first, last = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    length = last - first + 1
    valid = (first >= min_steps) & (length >= min_steps) & (n - length >= min_steps)
    return first[valid], last[valid]


def _statistics(rows: np.ndarray, direction: int, first: np.ndarray, last: np.ndarray) -> np.ndarray:
    """direction × min(segment mean − rest mean, segment mean − start mean) of every segment (columns) of every
    series (rows); the start is the values before the segment."""
    n = rows.shape[1]
    prefix = np.concatenate([np.zeros((rows.shape[0], 1)), np.cumsum(rows, axis=1)], axis=1)
    inside = prefix[:, last + 1] - prefix[:, first]
    length = last - first + 1
    segment = inside / length
    rest = direction * (segment - (prefix[:, -1:] - inside) / (n - length))
    start = direction * (segment - prefix[:, first] / first)
    return np.minimum(rest, start)


def segment_test(
    values: Sequence[float], direction: int, *, min_steps: int, permutations: int, rng: np.random.Generator
) -> SegmentTest | None:
    """The epidemic change-point test of the module docstring on one series; ``None`` when the series is too
    short to hold a segment (``2 × min_steps`` values: the start and the segment)."""
    x = np.asarray(values, dtype=float)
    x = x - x.mean()  # the statistic ignores a shift; centring keeps the prefix sums' rounding small
    first, last = _segments(len(x), min_steps)
    if not len(first):
        return None
    observed = _statistics(x[None, :], direction, first, last)[0]
    best = int(np.argmax(observed))
    tolerance = 1e-9 * max(1.0, float(np.abs(x).max()))
    at_least = 0
    chunk = max(1, _CELLS_PER_CHUNK // len(first))
    for start in range(0, permutations, chunk):
        count = min(chunk, permutations - start)
        shuffled = rng.permuted(np.broadcast_to(x, (count, len(x))), axis=1)
        at_least += int((_statistics(shuffled, direction, first, last).max(axis=1) >= observed[best] - tolerance).sum())
    return SegmentTest(int(first[best]), int(last[best]), float(observed[best]), (1 + at_least) / (1 + permutations))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment of several p-values (family-wise error), in their order."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted = [1.0] * len(p_values)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


# --- labelling -------------------------------------------------------------------------------------------------


def _not_testable(phase: Phase, steps: Sequence[StepSignals], have: int, settings: PhaseSettings) -> str:
    if phase is Phase.DEADLOCK and not have:
        if any(s.samples for s in steps):
            return (
                "not testable: the log has no mutual-interest deadlock rate, and no sample transcript tells a "
                "mutual-interest product"
            )
        return "not testable: the log has no mutual-interest deadlock rate (nor sample transcripts)"
    if phase is Phase.PERSUASION and not have:
        return "not testable: the log has no argument-lever match rate (nor sample transcripts)"
    if phase is Phase.ANCHORING and not have:
        return "not testable: the log has no first-offer ratio"
    return f"not testable: {have} steps have the signal, {2 * settings.min_steps} needed"


def _source(phase: Phase, steps: Sequence[StepSignals]) -> str:
    if phase is Phase.PERSUASION:
        hinted = any(s.persuasion_source == "argument_match" for s in steps)
        return "log (argument-lever match rate)" if hinted else "sample transcripts"
    if phase is not Phase.DEADLOCK:
        return "log"
    sources = {s.mutual_interest_source for s in steps if s.mutual_interest_deadlock_rate is not None}
    if sources == {"log"}:
        return "log"
    if sources == {"samples"}:
        return "sample transcripts (interest told by the header's budget and cost)"
    return "log, and sample transcripts where a step lacks it"


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _test_phase(phase: Phase, steps: Sequence[StepSignals], settings: PhaseSettings) -> PhaseTest:
    signal = SIGNALS[phase]
    test = PhaseTest(phase, signal.attribute, signal.direction)
    have = [(s.step, getattr(s, signal.attribute)) for s in steps if getattr(s, signal.attribute) is not None]
    test.steps_tested = len(have)
    values = [v for _, v in have]
    rng = np.random.default_rng(derive_seed(settings.seed, "phase", phase.value))
    result = (
        segment_test(
            values, signal.direction, min_steps=settings.min_steps, permutations=settings.permutations, rng=rng
        )
        if values
        else None
    )
    if result is None:
        test.testable, test.reason = False, _not_testable(phase, steps, len(have), settings)
        return test
    test.source = _source(phase, steps)
    test.statistic, test.p_value = result.statistic, result.p_value
    if result.statistic <= _NO_DEPARTURE:
        test.reason = "no: no segment departs from the run's start in the phase's direction"
        return test
    test.first_step, test.last_step = have[result.first][0], have[result.last][0]
    test.start_mean = _mean(values[: result.first])
    test.segment_mean = _mean(values[result.first : result.last + 1])
    test.rest_mean = _mean(values[: result.first] + values[result.last + 1 :])
    return test


def label_phases(steps: Sequence[StepSignals], settings: PhaseSettings = PhaseSettings()) -> PhaseAnalysis:
    """Test each phase's trend, set each step's :attr:`~StepSignals.phase` (and the signal behind it) from the
    labelled segments, and return the steps in step order with the tests."""
    steps = sorted(steps, key=lambda s: s.step)
    tests = {phase: _test_phase(phase, steps, settings) for phase in SIGNALS}
    tested = [t for t in tests.values() if t.testable]
    for test, adjusted in zip(tested, holm([t.p_value for t in tested]), strict=True):
        test.p_adjusted = adjusted
        if adjusted >= settings.alpha:
            continue
        if test.statistic <= _NO_DEPARTURE:  # p is about 1 then anyway
            continue
        test.labelled = True
    anchoring = tests[Phase.ANCHORING]
    naive = PhaseTest(Phase.NAIVE, NAIVE_SIGNAL.attribute, NAIVE_SIGNAL.direction, testable=anchoring.testable)
    naive.reason = "not tested on its own: the steps before a labelled anchoring segment"
    if anchoring.labelled:
        before = [s for s in steps if s.step < anchoring.first_step]
        naive.source, naive.steps_tested = anchoring.source, anchoring.steps_tested
        naive.first_step, naive.last_step = before[0].step, before[-1].step
        naive.segment_mean, naive.rest_mean = anchoring.start_mean, anchoring.segment_mean
        naive.p_value, naive.p_adjusted, naive.labelled = anchoring.p_value, anchoring.p_adjusted, True
    elif anchoring.testable:
        naive.reason = "no: no labelled anchoring segment for it to come before"
    else:
        naive.reason = anchoring.reason
    tests[Phase.NAIVE] = naive
    for step in steps:
        step.phase = step.phase_signal = None
        for phase in PRECEDENCE:
            test = tests[phase]
            if test.labelled and test.first_step <= step.step <= test.last_step:
                step.phase, step.phase_signal = phase, test.signal
                break
    return PhaseAnalysis(steps=steps, tests=list(tests.values()), settings=settings)


def shuffle_steps(steps: Sequence[StepSignals], seed: int) -> list[StepSignals]:
    """Copies of the steps with their signals randomly permuted among the step numbers (the null check: no trend
    is left, so a phase found here is a false positive)."""
    ordered = sorted(steps, key=lambda s: s.step)
    signals = [replace(s, markers=dict(s.markers), phase=None, phase_signal=None) for s in ordered]
    random.Random(seed).shuffle(signals)
    return [replace(signal, step=step.step) for signal, step in zip(signals, ordered, strict=True)]


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


# --- train logs ------------------------------------------------------------------------------------------------


def find_train_log(run: Path) -> Path:
    """The GRPO log of a run: ``RUN/grpo/train_log.jsonl``, ``RUN/train_log.jsonl``, or ``RUN`` itself."""
    for candidate in (run / "grpo" / LOG_FILE, run / LOG_FILE, run):
        if candidate.is_file():
            return candidate
    raise InputNotFoundError(f"no GRPO train log in {run} (looked for grpo/train_log.jsonl and train_log.jsonl)")


def train_steps(entries: Sequence[TrainLogEntry | dict]) -> list[StepSignals]:
    """The signals of every GRPO step in a train log's lines (the last line for a step wins), in step order. A log
    with an argument-lever match rate (its sellers hint) is tested for persuasion on that rate alone."""
    by_step = {e.step: e for e in map(TrainLogEntry.of, entries) if e.kind == "train"}
    hinted = any((e.game or {}).get("argument_match_rate") is not None for e in by_step.values())
    return sorted((step_signals(entry, hinted) for entry in by_step.values()), key=lambda s: s.step)


def analyse_entries(
    entries: Sequence[TrainLogEntry | dict], settings: PhaseSettings = PhaseSettings(), shuffle: int | None = None
) -> PhaseAnalysis:
    """Signals, phase tests and phases of every GRPO step in a train log's lines (records, or decoded lines);
    with ``shuffle``, of a copy whose steps' signals are permuted with that seed (:func:`shuffle_steps`)."""
    steps = train_steps(entries)
    if shuffle is not None:
        steps = shuffle_steps(steps, shuffle)
    analysis = label_phases(steps, settings)
    analysis.shuffled = shuffle
    return analysis


def analyse_run(run: Path, settings: PhaseSettings = PhaseSettings(), shuffle: int | None = None) -> PhaseAnalysis:
    """Signals, phase tests and phases of every GRPO step of a run (see :func:`analyse_entries`)."""
    return analyse_entries(read_train_log(find_train_log(run)), settings, shuffle)
