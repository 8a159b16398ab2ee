"""Four-phase analysis: the persuasion lexicon, transcripts read back, the permutation test, and the labeller on
synthetic training logs: noise and shuffled logs get no phase, planted phases are found where they were planted,
conflicting-interest walk-aways are no deadlock, and the bargained ratio alone is no persuasion."""

from __future__ import annotations

import json
import random
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from conftest import make_scenario, message
from typer.testing import CliRunner

from counteroffer.analysis.phases import (
    Phase,
    PhaseSettings,
    StepSignals,
    analyse_entries,
    analyse_run,
    holm,
    label_phases,
    mutual_interest_deadlock_rate,
    persuasion_markers,
    phase_bands,
    segment_test,
    step_signals,
    transcript_mutual_interest,
)
from counteroffer.cli.app import app
from counteroffer.game import Negotiation, Outcome, Role
from counteroffer.game.records import EpisodeRecord
from counteroffer.game.transcript import parse_transcript, transcript_text
from counteroffer.rollout.runner import EpisodeJob, record_of

FAST = PhaseSettings(permutations=500)  # min p 1/501: ample for alpha 0.05 after Holm over three phases


@pytest.mark.parametrize(
    ("talk", "expected"),
    [
        ("That's over my budget, I can't afford more.", {"budget_appeal"}),
        ("Another seller listed it cheaper.", {"competing_offer"}),
        ("It's a used model with scratches, not worth the asking price.", {"quality_critique"}),
        ("Would you throw in the case as a package deal?", {"bundling"}),
        ("I can pay cash today.", {"urgency"}),
        ("What a beautiful piece; you've been very kind.", {"flattery"}),
        ("I'd offer $40 for it.", set()),
        (
            "My budget is tight but I can pick it up right now, and it's a lovely item.",
            {"budget_appeal", "urgency", "flattery"},
        ),  # fmt: skip
    ],
)
def test_persuasion_lexicon(talk: str, expected: set[str]) -> None:
    assert persuasion_markers(talk) == expected


def played_record(buyer_talk: str, deal: bool, budget: float = 160.0, cost: float = 100.0) -> EpisodeRecord:
    """A real two-message game: a deal at the asking price (mutual interest only), or the buyer quits."""
    scenario = make_scenario(budget=budget, cost=cost)
    game = Negotiation(scenario)
    game.step(message(f"[BUY] ${min(120, budget - 10):.0f}", talk=buyer_talk))
    game.step(message("[SELL] $150", talk="Best I can do."))
    game.step(message("[DEAL] $150" if deal else "[QUIT]", talk=buyer_talk))
    return record_of(EpisodeJob("b", "s", "neutral", scenario, 0, 1), game)


def played_episode(buyer_talk: str, deal: bool, budget: float = 160.0, cost: float = 100.0) -> str:
    return transcript_text(played_record(buyer_talk, deal, budget, cost))


PERSUADING = "My budget is tight, another seller has it cheaper, and I can pay cash today."
PLAIN = "I offer this."


@cache
def sample(persuading: bool = False, deal: bool = True, mutual: bool = True) -> str:
    """One sample transcript (cached: logs reuse a few)."""
    return played_episode(PERSUADING if persuading else PLAIN, deal, budget=160.0 if mutual else 90.0)


def test_transcript_reads_back() -> None:
    # A message line that looks like the start of another message does not split the message.
    text = played_episode("It's cheaper elsewhere.\n[seller 1] Really.", deal=True)
    parsed = parse_transcript(text)
    assert parsed.outcome is Outcome.DEAL
    assert [(m.role, m.turn) for m in parsed.messages] == [(Role.BUYER, 1), (Role.SELLER, 1), (Role.BUYER, 2)]
    assert parsed.messages[0].talk == "It's cheaper elsewhere.\n[seller 1] Really."
    # A transcript written before continuation lines were indented still reads.
    legacy = parse_transcript(played_episode("Cheaper\nelsewhere.", deal=False).replace("\n    ", "\n"))
    assert legacy.outcome is Outcome.BUYER_QUIT and legacy.messages[2].talk == "Cheaper\nelsewhere."
    with pytest.raises(ValueError, match="not a transcript header"):
        parse_transcript("hello\n[buyer 1] hi")


def log_line(
    step: int,
    first_offer: float,
    mi_deadlock: float | None,
    samples: list[str] | None = None,
    *,
    deadlock: float = 0.1,
    bargained: float = 0.5,
) -> dict:
    """A GRPO log line; ``mi_deadlock`` None: an older log without the mutual-interest deadlock rate."""
    game = {"first_offer_ratio": first_offer, "deal_rate": 1 - deadlock, "bargained_ratio": bargained,
            "deadlock_rate": deadlock}  # fmt: skip
    if mi_deadlock is not None:
        game["mutual_interest_deadlock_rate"] = mi_deadlock
    return {"kind": "train", "step": step, "trainer": {"loss": 0.0}, "game": game, "samples": samples or []}


def planted_log(deadlock: tuple[int, int] = (20, 30), seed: int = 7) -> list[dict]:
    """50 steps with small noise: first offers drop at step 15, the mutual-interest deadlock rate bumps over
    ``deadlock``, and from step 35 most sampled buyers argue (persuasion markers in their Talk)."""
    rng = random.Random(seed)
    lines = []
    for step in range(1, 51):
        first_offer = (0.9 if step < 15 else 0.5) + rng.uniform(-0.05, 0.05)
        mi_deadlock = (0.6 if deadlock[0] <= step <= deadlock[1] else 0.1) + rng.uniform(-0.05, 0.05)
        persuading = rng.randint(6, 8) if step >= 35 else rng.randint(0, 1)
        samples = [sample(persuading=i < persuading) for i in range(8)]
        lines.append(log_line(step, first_offer, mi_deadlock, samples, bargained=0.5 + rng.uniform(-0.05, 0.05)))
    return lines


PLANTED = planted_log()
# The report's test run: deadlock lasts until persuasion begins, so the bands come in the design's order.
FOUR_PHASES = planted_log(deadlock=(20, 34))


def noise_log(seed: int) -> list[dict]:
    """50 steps whose every signal is i.i.d. noise."""
    rng = random.Random(seed)
    return [
        log_line(
            step,
            rng.uniform(0.3, 0.9),
            rng.uniform(0.0, 0.5),
            [sample(persuading=rng.random() < 0.3) for _ in range(8)],
            deadlock=rng.uniform(0.0, 0.5),
            bargained=rng.uniform(0.3, 0.9),
        )  # fmt: skip
        for step in range(1, 51)
    ]


def test_segment_test_finds_a_step_change_and_a_bump_and_nothing_in_a_flat_series() -> None:
    rng = np.random.default_rng(0)
    noise = np.random.default_rng(1).normal(0, 0.02, 40)
    drop = segment_test(np.r_[[0.9] * 12, [0.5] * 28] + noise, -1, min_steps=3, permutations=500, rng=rng)
    assert (drop.first, drop.last) == (12, 39) and drop.p_value == 1 / 501
    assert drop.statistic == pytest.approx(0.4, abs=0.05)
    bump = segment_test(np.r_[[0.1] * 15, [0.6] * 10, [0.1] * 15] + noise, +1, min_steps=3, permutations=500, rng=rng)
    assert (bump.first, bump.last) == (15, 24) and bump.p_value == 1 / 501
    # The wrong direction finds no trend; a flat series scores 0 under every order (p = 1).
    assert segment_test(np.r_[[0.9] * 12, [0.5] * 28] + noise, +1, min_steps=3, permutations=500, rng=rng).p_value > 0.2
    # A fall must hold against the start: values that start low and rise are no fall.
    rise = segment_test(np.r_[[0.5] * 12, [0.9] * 28] + noise, -1, min_steps=3, permutations=500, rng=rng)
    assert rise.p_value > 0.2
    assert segment_test([0.0] * 40, +1, min_steps=3, permutations=100, rng=rng).p_value == 1.0
    assert segment_test([0.1, 0.2, 0.3, 0.4, 0.5], -1, min_steps=3, permutations=100, rng=rng) is None  # too short
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])


# --- (a) noise and shuffled logs get no phase ------------------------------------------------------------------


def test_a_noise_log_gets_no_phase() -> None:
    analysis = analyse_entries(noise_log(seed=3), FAST)
    tested = [t for t in analysis.tests if t.phase is not Phase.NAIVE]
    assert all(t.testable for t in tested)  # every phase was tested: the log has all three signals
    assert all(t.p_adjusted >= FAST.alpha and not t.labelled for t in tested)
    assert phase_bands(analysis.steps) == [] and {s.phase for s in analysis.steps} == {None}


def test_a_shuffled_log_with_planted_phases_gets_no_phase() -> None:
    assert phase_bands(analyse_entries(PLANTED, FAST).steps)  # in order the phases are there ...
    shuffled = analyse_entries(PLANTED, FAST, shuffle=1)
    assert shuffled.shuffled == 1 and [s.step for s in shuffled.steps] == list(range(1, 51))
    # ... the same steps in another order hold the same values ...
    assert sorted(s.first_offer_ratio for s in shuffled.steps) == sorted(
        line["game"]["first_offer_ratio"] for line in PLANTED
    )
    # ... and no trend.
    assert shuffled.bands == [] and not any(t.labelled for t in shuffled.tests)


def test_few_noise_logs_get_a_phase() -> None:
    rng = np.random.default_rng(11)
    labelled = 0
    for _ in range(40):
        steps = [
            StepSignals(
                step=step,
                first_offer_ratio=v[0],
                deal_rate=None,
                bargained_ratio=None,
                deadlock_rate=None,
                persuasion_rate=v[2],
                mutual_interest_deadlock_rate=v[1],
            )  # fmt: skip
            for step, v in enumerate(rng.uniform(0, 1, (50, 3)), start=1)
        ]
        labelled += bool(phase_bands(label_phases(steps, PhaseSettings(permutations=200)).steps))
    assert labelled / 40 <= 0.15


# --- (b) planted phases are found where they were planted -------------------------------------------------------


def test_planted_phases_are_found_where_they_were_planted() -> None:
    analysis = analyse_entries(PLANTED, FAST)
    expected = {
        **dict.fromkeys(range(1, 15), Phase.NAIVE),
        **dict.fromkeys(range(15, 20), Phase.ANCHORING),
        **dict.fromkeys(range(20, 31), Phase.DEADLOCK),
        **dict.fromkeys(range(31, 35), Phase.ANCHORING),
        **dict.fromkeys(range(35, 51), Phase.PERSUASION),
    }
    assert {s.step: s.phase for s in analysis.steps} == expected
    signals = {s.phase: s.phase_signal for s in analysis.steps}
    assert signals == {
        Phase.NAIVE: "first_offer_ratio",
        Phase.ANCHORING: "first_offer_ratio",
        Phase.DEADLOCK: "mutual_interest_deadlock_rate",
        Phase.PERSUASION: "persuasion_rate",
    }
    segments = {t.phase: (t.first_step, t.last_step) for t in analysis.tests}
    assert segments == {Phase.NAIVE: (1, 14), Phase.ANCHORING: (15, 50), Phase.DEADLOCK: (20, 30),
                        Phase.PERSUASION: (35, 50)}  # fmt: skip
    for test in analysis.tests:
        assert test.labelled and test.p_value < 0.05 and test.p_adjusted < 0.05, test
    anchoring, deadlock = analysis.test(Phase.ANCHORING), analysis.test(Phase.DEADLOCK)
    assert anchoring.start_mean == pytest.approx(0.9, abs=0.03) and anchoring.segment_mean == pytest.approx(
        0.5, abs=0.03
    )
    assert deadlock.source == "log" and deadlock.segment_mean == pytest.approx(0.6, abs=0.03)
    persuasion = analysis.test(Phase.PERSUASION)
    assert persuasion.source == "sample transcripts" and persuasion.segment_mean > 0.7 > 0.15 > persuasion.start_mean
    assert analysis.steps[-1].markers["budget_appeal"] >= 6 and analysis.steps[-1].markers["bundling"] == 0


def test_the_report_log_has_the_four_phases_in_order() -> None:
    bands = phase_bands(analyse_entries(FOUR_PHASES, FAST).steps)
    assert [(b.phase, b.first_step, b.last_step) for b in bands] == [
        (Phase.NAIVE, 1, 14), (Phase.ANCHORING, 15, 19), (Phase.DEADLOCK, 20, 34), (Phase.PERSUASION, 35, 50),
    ]  # fmt: skip


def test_results_are_reproducible_and_seeded() -> None:
    first, again = analyse_entries(PLANTED, FAST), analyse_entries(PLANTED, FAST)
    assert [t.p_value for t in first.tests] == [t.p_value for t in again.tests]
    noisy = noise_log(seed=3)
    p_values = {seed: analyse_entries(noisy, PhaseSettings(permutations=200, seed=seed)).tests[0].p_value
                for seed in (0, 1)}  # fmt: skip
    assert p_values[0] != p_values[1]  # the seed drives the permutations


def test_a_trend_at_the_start_is_no_phase() -> None:
    # First offers that start low and rise: no anchoring (a phase departs from the run's start), so no naive either.
    lines = [log_line(s, 0.4 if s <= 10 else 0.9, 0.1, [sample()] * 4) for s in range(1, 41)]
    analysis = analyse_entries(lines, FAST)
    assert not analysis.test(Phase.ANCHORING).labelled and not analysis.test(Phase.NAIVE).labelled
    assert analysis.bands == []


# --- (c) conflicting-interest walk-aways are not deadlock -------------------------------------------------------


def test_the_mutual_interest_deadlock_rate_leaves_out_conflicting_interest() -> None:
    mutual_deal, mutual_quit = played_record(PLAIN, deal=True), played_record(PLAIN, deal=False)
    walk_away = played_record(PLAIN, deal=False, budget=90.0)  # budget below cost: no deal is possible
    assert walk_away.outcome.is_deadlock and not walk_away.metrics.mutual_interest
    assert mutual_interest_deadlock_rate([mutual_deal, walk_away, walk_away]) == 0.0
    assert mutual_interest_deadlock_rate([mutual_deal, mutual_quit, walk_away]) == 0.5
    assert mutual_interest_deadlock_rate([walk_away]) is None
    # Transcripts print budget and cost to the cent: within a cent of each other, the interest cannot be told.
    assert transcript_mutual_interest(transcript_text(mutual_quit)) is True
    assert transcript_mutual_interest(transcript_text(walk_away)) is False
    header = "X | budget {} cost 100.00 asking 200.00 | deal at 150.0 | reward 0.500"
    assert [transcript_mutual_interest(header.format(b)) for b in ("100.02", "100.01", "100.00", "99.99")] == [
        True, None, None, False,
    ]  # fmt: skip


def test_conflicting_interest_no_deals_are_not_deadlock() -> None:
    rng = random.Random(5)
    # Logged: every episode's deadlock rate bumps over steps 20-30 from walk-aways, the mutual-interest one stays low.
    logged = [log_line(s, 0.5, rng.uniform(0.0, 0.1), [sample()] * 4, deadlock=0.6 if 20 <= s <= 30 else 0.1)
              for s in range(1, 51)]  # fmt: skip
    analysis = analyse_entries(logged, FAST)
    assert not analysis.test(Phase.DEADLOCK).labelled and Phase.DEADLOCK not in {s.phase for s in analysis.steps}
    # From samples (an older log): conflicting-interest quits over steps 20-30 are no deadlock ...
    walk_aways = [sample(deal=False, mutual=False)] * 4
    older = [log_line(s, 0.5, None, [sample()] * 4 + (walk_aways if 20 <= s <= 30 else [])) for s in range(1, 51)]
    analysis = analyse_entries(older, FAST)
    deadlock = analysis.test(Phase.DEADLOCK)
    assert deadlock.testable and deadlock.p_value == 1.0 and not deadlock.labelled
    assert {s.mutual_interest_deadlock_rate for s in analysis.steps} == {0.0}
    # ... while mutual-interest quits there are.
    quits = [sample(deal=False)] * 4
    older = [log_line(s, 0.5, None, [sample()] * 4 + (quits if 20 <= s <= 30 else [])) for s in range(1, 51)]
    analysis = analyse_entries(older, FAST)
    deadlock = analysis.test(Phase.DEADLOCK)
    assert deadlock.labelled and (deadlock.first_step, deadlock.last_step) == (20, 30)
    assert deadlock.source.startswith("sample transcripts")


def test_a_log_without_the_mutual_interest_rate_or_samples_is_not_tested_for_deadlock() -> None:
    lines = [log_line(s, 0.5, None, deadlock=0.6 if 20 <= s <= 30 else 0.1) for s in range(1, 51)]
    analysis = analyse_entries(lines, FAST)
    deadlock = analysis.test(Phase.DEADLOCK)
    assert not deadlock.testable and deadlock.p_value is None
    assert deadlock.reason.startswith("not testable: the log has no mutual-interest deadlock rate")
    assert analysis.bands == []


# --- (d) the bargained ratio alone is no persuasion ---------------------------------------------------------------


def test_the_bargained_ratio_alone_never_yields_persuasion() -> None:
    rising = [log_line(s, 0.5, 0.1, [sample()] * 8, bargained=0.3 if s < 35 else 0.95) for s in range(1, 51)]
    persuasion = analyse_entries(rising, FAST).test(Phase.PERSUASION)
    assert persuasion.testable and persuasion.p_value == 1.0 and not persuasion.labelled  # no buyer argued
    for line in rising:
        line["samples"] = []
    analysis = analyse_entries(rising, FAST)
    assert analysis.test(Phase.PERSUASION).reason == (
        "not testable: the log has no argument-lever match rate (nor sample transcripts)"
    )
    assert Phase.PERSUASION not in {s.phase for s in analysis.steps}


def test_a_rising_argument_lever_match_rate_is_persuasion_from_the_log() -> None:
    """Against sellers that hint, the persuasion signal is the logged argument-lever match rate of every episode
    of the step (not the markers of a few samples, which here never appear); flat, it is no phase."""
    rng = random.Random(3)
    rising = [log_line(s, 0.5, 0.1, [sample()] * 8) for s in range(1, 31)]
    for line in rising:
        line["game"]["argument_match_rate"] = (0.3 if line["step"] < 18 else 0.7) + rng.uniform(-0.05, 0.05)
    persuasion = analyse_entries(rising, FAST).test(Phase.PERSUASION)
    assert persuasion.labelled and persuasion.first_step == 18 and persuasion.last_step == 30
    assert persuasion.source == "log (argument-lever match rate)"
    for line in rising:
        line["game"]["argument_match_rate"] = 0.3 + rng.uniform(-0.05, 0.05)
    assert not analyse_entries(rising, FAST).test(Phase.PERSUASION).labelled
    # A run whose sellers never hint logs the rate as None at every step: its persuasion is the markers'.
    unhinted = [line | {"game": line["game"] | {"argument_match_rate": None}} for line in PLANTED]
    assert analyse_entries(unhinted, FAST).test(Phase.PERSUASION).source == "sample transcripts"


def test_private_thoughts_of_unparsable_messages_are_not_persuasion() -> None:
    line = log_line(1, 0.5, 0.5)
    line["samples"] = [
        "T | budget 160.00 cost 100.00 asking 200.00 | buyer_format_error at None | reward -1.000\n"
        "[buyer 1] Thought: My budget is $160.00, I can't afford more.\n    Talk: hi"  # no Action: a format error
    ]
    signals = step_signals(line)
    assert signals.samples == 1 and signals.persuasion_rate == 0.0


def test_every_episode_deadlock_rate_from_transcripts_when_the_log_lacks_it() -> None:
    line = log_line(1, 0.5, None, [sample(deal=i == 0) for i in range(4)])
    del line["game"]["deadlock_rate"]
    signals = step_signals(line)
    assert signals.deadlock_rate == 0.75  # 3 of the 4 sampled episodes ended with a quit
    assert signals.mutual_interest_deadlock_rate == 0.75 and signals.mutual_interest_source == "samples"


# --- (e) the command -----------------------------------------------------------------------------------------------


def test_phases_command(tmp_path: Path) -> None:
    log = tmp_path / "run" / "grpo" / "train_log.jsonl"
    log.parent.mkdir(parents=True)
    # A resumed run logs a step twice: the later line wins. Eval lines are not steps.
    lines = [*PLANTED, {**PLANTED[-1], "game": {**PLANTED[-1]["game"], "first_offer_ratio": 0.42}}]
    log.write_text("".join(json.dumps(line) + "\n" for line in [*lines, {"kind": "eval", "step": 50, "game": {}}]))
    analysis = analyse_run(tmp_path / "run", FAST)
    assert [s.step for s in analysis.steps] == list(range(1, 51)) and analysis.steps[-1].first_offer_ratio == 0.42
    runner = CliRunner()
    result = runner.invoke(app, ["phases", str(tmp_path / "run"), "--permutations", "500"])
    assert result.exit_code == 0, result.output
    for band in ("steps 1–14: naive bargaining", "steps 15–19: aggressive anchoring", "steps 20–30: deadlock",
                 "steps 31–34: aggressive anchoring", "steps 35–50: persuasion"):  # fmt: skip
        assert band in result.stdout
    assert "phase tests" in result.stdout and "mutual_interest_deadlock_rate ↑" in result.stdout
    shuffled = runner.invoke(app, ["phases", str(tmp_path / "run"), "--permutations", "500", "--shuffle", "1"])
    assert shuffled.exit_code == 0 and "null check" in shuffled.stdout
    assert "no phase: no signal's trend is significant" in shuffled.stdout and "steps 1–14" not in shuffled.stdout
    as_json = json.loads(runner.invoke(app, ["phases", str(log), "--json", "--permutations", "500"]).stdout)
    assert as_json["steps"][-1]["phase"] == "persuasion" and as_json["steps"][-1]["markers"]["urgency"] >= 6
    assert [t["phase"] for t in as_json["tests"] if t["labelled"]] == [p.value for p in (Phase.ANCHORING,
           Phase.DEADLOCK, Phase.PERSUASION, Phase.NAIVE)]  # fmt: skip
    assert as_json["settings"]["permutations"] == 500 and as_json["shuffled"] is None
    log.write_text("not json\n")
    broken = runner.invoke(app, ["phases", str(tmp_path / "run")])
    assert broken.exit_code == 2 and "train_log.jsonl:1: not a JSON line" in broken.stderr
    missing = runner.invoke(app, ["phases", str(tmp_path / "nowhere")])
    assert missing.exit_code == 2 and "no GRPO train log" in missing.stderr
