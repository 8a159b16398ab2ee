"""Four-phase analysis: the persuasion lexicon, transcripts read back, and the phase labeller on synthetic training
logs built to show each phase (and the real command on such a log)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import make_scenario, message, run_cli

from counteroffer.analysis.phases import (
    Phase,
    PhaseRules,
    analyse_run,
    label_phases,
    persuasion_markers,
    phase_bands,
    step_signals,
)
from counteroffer.game import Negotiation, Outcome, Role
from counteroffer.game.transcript import parse_transcript, transcript_text
from counteroffer.rollout.runner import EpisodeJob, record_of


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


def played_episode(buyer_talk: str, deal: bool) -> str:
    """The transcript of a real two-message game (deal at the asking price, or the buyer quits)."""
    scenario = make_scenario()
    game = Negotiation(scenario)
    game.step(message("[BUY] $120", talk=buyer_talk))
    game.step(message("[SELL] $150", talk="Best I can do."))
    game.step(message("[DEAL] $150" if deal else "[QUIT]", talk=buyer_talk))
    return transcript_text(record_of(EpisodeJob("b", "s", "neutral", scenario, 0, 1), game))


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


def log_line(step: int, first_offer: float, deal: float, bargained: float, deadlock: float, talk: str = "") -> dict:
    deals = round(deal * 4)
    samples = [played_episode(talk or "I offer this.", deal=i < deals) for i in range(4)]
    return {"kind": "train", "step": step, "trainer": {"loss": 0.0},
            "game": {"first_offer_ratio": first_offer, "deal_rate": deal, "bargained_ratio": bargained,
                     "deadlock_rate": deadlock}, "samples": samples}  # fmt: skip


PERSUADING = "My budget is tight, another seller has it cheaper, and I can pay cash today."
FOUR_PHASES = (
    [log_line(s, 0.95, 0.9, 0.1, 0.1) for s in range(1, 6)]  # naive: first offers near the budget
    + [log_line(s, 0.55, 0.85, 0.4, 0.15) for s in range(6, 11)]  # anchoring: offers drop, deals still close
    + [log_line(s, 0.45, 0.4, 0.7, 0.6) for s in range(11, 16)]  # deadlock: the seller refuses lowballs
    + [log_line(s, 0.45, 0.85, 0.8, 0.15, PERSUADING) for s in range(16, 21)]  # persuasion: deals come back
)


def test_labeller_finds_the_four_phases_in_order() -> None:
    steps = label_phases([step_signals(line) for line in FOUR_PHASES], PhaseRules(window=1))
    expected = [Phase.NAIVE] * 5 + [Phase.ANCHORING] * 5 + [Phase.DEADLOCK] * 5 + [Phase.PERSUASION] * 5
    assert [s.phase for s in steps] == expected
    assert steps[-1].persuasion_rate == 1.0 and steps[0].persuasion_rate == 0.0
    assert steps[-1].markers["budget_appeal"] == 4 and steps[-1].markers["bundling"] == 0
    # With the default smoothing the boundaries may move by a step, but the order and the cores hold.
    smoothed = label_phases([step_signals(line) for line in FOUR_PHASES])
    assert [b.phase for b in phase_bands(smoothed)] == [Phase.NAIVE, Phase.ANCHORING, Phase.DEADLOCK, Phase.PERSUASION]
    assert [smoothed[i].phase for i in (2, 7, 12, 17)] == [Phase.NAIVE, Phase.ANCHORING, Phase.DEADLOCK,
                                                           Phase.PERSUASION]  # fmt: skip


@pytest.mark.parametrize(
    ("lines", "phase"),
    [
        ([log_line(s, 0.95, 0.9, 0.1, 0.1) for s in range(1, 6)], Phase.NAIVE),
        ([log_line(s, 0.5, 0.9, 0.4, 0.1) for s in range(1, 6)], Phase.ANCHORING),  # anchored from the start
        # Without a deadlock first, a recovered deal rate with arguments is still only anchoring.
        ([log_line(s, 0.45, 0.85, 0.8, 0.15, PERSUADING) for s in range(1, 6)], Phase.ANCHORING),
    ],
)
def test_labeller_on_single_phase_logs(lines: list[dict], phase: Phase) -> None:
    assert {s.phase for s in label_phases([step_signals(line) for line in lines])} == {phase}


def test_private_thoughts_of_unparsable_messages_are_not_persuasion() -> None:
    line = log_line(1, 0.5, 0.5, 0.5, 0.5)
    line["samples"] = [
        "T | budget 160.00 cost 100.00 asking 200.00 | buyer_format_error at None | reward -1.000\n"
        "[buyer 1] Thought: My budget is $160.00, I can't afford more.\n    Talk: hi"  # no Action: a format error
    ]
    signals = step_signals(line)
    assert signals.samples == 1 and signals.persuasion_rate == 0.0


def test_deadlock_rate_from_transcripts_when_the_log_lacks_it() -> None:
    line = log_line(1, 0.5, 0.25, 0.5, 0.0)
    del line["game"]["deadlock_rate"]
    assert step_signals(line).deadlock_rate == 0.75  # 3 of the 4 sampled episodes ended with a quit


def test_phases_command_on_a_run_folder(tmp_path: Path) -> None:
    log = tmp_path / "run" / "grpo" / "train_log.jsonl"
    log.parent.mkdir(parents=True)
    # A resumed run logs a step twice: the later line wins. Eval lines are not steps.
    lines = FOUR_PHASES + [log_line(20, 0.42, 0.85, 0.8, 0.15, PERSUADING), {"kind": "eval", "step": 20, "game": {}}]
    log.write_text("".join(json.dumps(line) + "\n" for line in lines))
    steps = analyse_run(tmp_path / "run")
    assert [s.step for s in steps] == list(range(1, 21)) and steps[-1].first_offer_ratio == 0.42
    result = run_cli("phases", tmp_path / "run", "--window", "1")
    assert result.returncode == 0, result.stderr
    assert "steps 1–5: naive bargaining" in result.stdout and "steps 16–20: persuasion" in result.stdout
    as_json = json.loads(run_cli("phases", tmp_path / "run", "--json").stdout)
    assert as_json[-1]["phase"] == "persuasion" and as_json[-1]["markers"]["urgency"] == 4
    log.write_text("not json\n")
    broken = run_cli("phases", tmp_path / "run")
    assert broken.returncode == 2 and "train_log.jsonl:1: not a JSON line" in broken.stderr
    missing = run_cli("phases", tmp_path / "nowhere")
    assert missing.returncode == 2 and "no GRPO train log" in missing.stderr
