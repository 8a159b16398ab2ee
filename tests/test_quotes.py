"""Misquotes: the buyer's stated budget, fractions and roundings checked against the true values (game/quotes.py),
the per-episode metric they give, and the rate the bench reports."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest
from conftest import make_scenario, message, run_cli

from counteroffer.agents.scripted import buyers
from counteroffer.analysis.tables import COLUMNS
from counteroffer.evaluate.bench import SUMMARY_FILE, BenchConfig, run_bench
from counteroffer.evaluate.summary import mean_metrics, summarize
from counteroffer.game import EpisodeMetrics, EpisodeRecord, MessageRecord, Negotiation, Role, episode_metrics
from counteroffer.game.messages import format_message
from counteroffer.game.quotes import (
    FORMS,
    Quote,
    QuoteKind,
    episode_quotes,
    message_quotes,
    misquoted,
    round_down,
    text_quotes,
)
from counteroffer.rollout.store import read_episodes

BUDGET = 821.54


def kinds(quotes: list[Quote]) -> list[tuple[QuoteKind, bool]]:
    return [(quote.kind, quote.correct) for quote in quotes]


def only(text: str, budget: float = BUDGET) -> Quote:
    """The one fraction or rounding down in ``text``."""
    quotes = [q for q in text_quotes(text, budget) if q.kind in (QuoteKind.FRACTION, QuoteKind.ROUND_DOWN)]
    assert len(quotes) == 1, quotes
    return quotes[0]


# --------------------------------------------------------------------------------------------------------------------
# The example that started it, and every form's own example


def test_the_misquoted_tenth_is_one_misquote_and_the_budget_is_right() -> None:
    quotes = text_quotes("Budget $821.54; a tenth is $8.2", BUDGET)
    assert kinds(quotes) == [(QuoteKind.BUDGET, True), (QuoteKind.FRACTION, False)]
    assert quotes[1].stated == 8.2 and quotes[1].true_value == pytest.approx(82.154)
    assert quotes[1].text == "a tenth is $8.2"
    assert misquoted(quotes) and sum(not q.correct for q in quotes) == 1


def test_the_misquoted_budget_of_the_recorded_run_is_caught() -> None:
    """BENCHMARKS.md: "Budget $17.34; a tenth is $1.73." for a budget of $173.44, then comparisons against it."""
    first = text_quotes("Budget $17.34; a tenth is $1.73.", 173.44)
    assert kinds(first) == [(QuoteKind.BUDGET, False), (QuoteKind.FRACTION, True)]  # right tenth of a wrong budget
    later = text_quotes("$204.63 is above $17.34. Half of it is $822.86.", 173.44)
    assert kinds(later) == [(QuoteKind.BUDGET, False), (QuoteKind.RELATION, True), (QuoteKind.FRACTION, False)]


@pytest.mark.parametrize("form", FORMS, ids=lambda form: form.name)
def test_every_form_checks_its_own_example(form) -> None:  # noqa: ANN001
    quotes = text_quotes(form.example, BUDGET)
    assert any(q.kind is form.kind for q in quotes) and not misquoted(quotes), quotes


def test_the_forms_are_listed_once_by_name() -> None:
    assert [form.name for form in FORMS] == ["budget", "budget_compared", "relation", "fraction", "round_down"]


# --------------------------------------------------------------------------------------------------------------------
# Budget statements


@pytest.mark.parametrize(
    "text",
    [
        "Budget $821.54.",
        "My budget is $821.54; the seller asks $1,000.00.",
        "budget of $821.54",
        "Budget: $821.54",
        "my budget was $821.54",
        "budget=$821.54",
        "My budget's $821.54",
        "BUDGET $821.54",
        "Budget $821.55",  # within a cent of the true $821.544
    ],
)
def test_a_stated_budget_within_a_cent_is_right(text: str) -> None:
    (quote,) = text_quotes(text, 821.544)
    assert quote.kind is QuoteKind.BUDGET and quote.correct and quote.true_value == 821.544


@pytest.mark.parametrize(
    ("text", "stated"),
    [
        ("Budget $82.15.", 82.15),  # a factor of ten
        ("my budget is $500", 500.0),
        ("budget of $1,200.00", 1200.0),
        ("Budget $821.56", 821.56),  # two cents off
        ("Budget $821", 821.0),
    ],
)
def test_a_wrong_budget_is_a_misquote(text: str, stated: float) -> None:
    (quote,) = text_quotes(text, BUDGET)
    assert (quote.kind, quote.stated, quote.correct) == (QuoteKind.BUDGET, stated, False)


@pytest.mark.parametrize(
    ("text", "stated"),
    [
        ("$500.00 is within $821.54.", 821.54),
        ("$821.54 is within $821.54 and not above my offer. I accept.", 821.54),
        ("$1,009.70 is above $821.54. I hold.", 821.54),
        ("No move; $15.50 is within $34.39. I accept.", 34.39),
        ("$1,033.34 rounds down to $1,000.00, within $1,359.99.", 1359.99),
        ("$1,100.00 rounds down to $1,000.00, above $82.15; $82.15 rounds down to $82.00.", 82.15),
    ],
)
def test_the_amount_a_price_is_compared_with_is_the_budget(text: str, stated: float) -> None:
    (budget,) = [q for q in text_quotes(text, BUDGET) if q.kind is QuoteKind.BUDGET]
    assert budget.stated == stated and budget.correct == (stated == BUDGET)


def test_within_my_budget_of_is_one_budget_statement() -> None:
    quotes = text_quotes("$500 is within my budget of $821.54.", BUDGET)
    assert sorted(kinds(quotes)) == sorted([(QuoteKind.RELATION, True), (QuoteKind.BUDGET, True)])


# --------------------------------------------------------------------------------------------------------------------
# Relations


@pytest.mark.parametrize(
    ("text", "correct"),
    [
        ("$500.00 is within $821.54.", True),
        ("$821.54 is within $821.54.", True),
        ("$900.00 is within $821.54.", False),
        ("$1,009.70 is above $821.54.", True),
        ("$500.00 is above $821.54.", False),
        ("$821.54 is above $821.54.", False),
        ("$1,033.34 rounds down to $1,000.00, within $1,359.99.", True),
        ("$1,433.33 rounds down to $1,400.00, within $1,359.99.", False),
        ("$1,433.33 rounds down to $1,400.00, above $1,359.99.", True),
    ],
)
def test_a_relation_word_must_agree_with_its_amounts(text: str, correct: bool) -> None:
    relation = [q for q in text_quotes(text, 1359.99) if q.kind is QuoteKind.RELATION]
    assert len(relation) == 1 and relation[0].correct == correct


# --------------------------------------------------------------------------------------------------------------------
# Fractions


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Budget $821.54; a tenth is $82.15.", 82.154),  # the floor
        ("Budget $821.56; a tenth is $82.16.", 82.156),  # rounded to the cent
        ("Budget $821.54; one tenth is $82.15.", 82.154),
        ("Budget $821.54; a hundredth is $8.21.", 8.2154),
        ("Budget $821.54; a fifth is $164.30.", 164.308),
        ("Budget $821.54; a quarter is $205.38.", 205.385),
        ("Budget $821.54; a third is $273.84.", 273.846),
        ("Budget $821.54; 10% is $82.15.", 82.154),
        ("Budget $821.54; 10 percent is $82.15.", 82.154),
        ("Budget $821.54; 0.2 times is $164.30.", 164.308),
        ("$1,025.22 is above $821.54. Half of it is $512.61.", 512.61),  # "it": the first amount, the seller's
        ("$1,025.22 is above $821.54. 0.4 times of it is $410.08.", 410.088),
        ("Half of $1,529.70 is $764.85.", 764.85),  # the amount named after "of"
        ("A tenth of $1,279.99 is $127.99.", 127.999),
        ("A tenth of my budget is $82.15.", 82.154),  # of the true budget
        ("A tenth of my budget of $821.54 is $82.15.", 82.154),
        ("Budget $821.54; a tenth = $82.15", 82.154),
        ("Budget $821.54; a tenth would be $82.15", 82.154),
        ("Budget $821.54, a tenth: $82.15", 82.154),
        ("Budget $821.54; a tenth is $82.154", 82.154),
    ],
)
def test_a_right_fraction_passes(text: str, expected: float) -> None:
    quote = only(text)
    assert quote.kind is QuoteKind.FRACTION and quote.correct, quote
    assert quote.true_value == pytest.approx(expected, abs=1e-3)


@pytest.mark.parametrize(
    "text",
    [
        "Budget $821.54; a tenth is $8.2",
        "Budget $821.54; a tenth is $8.21.",  # a hundredth called a tenth
        "Budget $821.54; a hundredth is $82.15.",
        "Budget $821.54; a fifth is $82.15.",
        "Budget $821.54; a quarter is $164.30.",
        "Budget $821.54; a third is $205.38.",
        "Budget $821.54; 10% is $8.21.",
        "Budget $821.54; 0.2 times is $82.15.",
        "Budget $821.54; a tenth is $82.13.",  # two cents below the floor
        "Budget $821.54; a tenth is $82.17.",
        "$1,025.22 is above $821.54. Half of it is $410.77.",  # half of the budget, not of "it"
        "Half of $1,529.70 is $81.75.",  # the thousands separator misread (BENCHMARKS.md)
        "A tenth of $1,279.99 is $99.59.",
        "A tenth of my budget is $8.21.",
    ],
)
def test_a_wrong_fraction_is_a_misquote(text: str) -> None:
    quote = only(text)
    assert quote.kind is QuoteKind.FRACTION and not quote.correct, quote


def test_a_fraction_of_a_referent_shown_rounded_passes() -> None:
    """A budget of $11.995 is written $12.00 or $11.99; its tenth floored, $1.19, is right after either."""
    assert only("Budget $12.00; a tenth is $1.19.", 11.995).correct
    assert only("Budget $11.99; a tenth is $1.19.", 11.995).correct


def test_a_fraction_with_nothing_earlier_is_not_checked() -> None:
    assert text_quotes("A tenth is $82.15.", BUDGET) == []
    assert text_quotes("10% is $82.15 of the budget.", BUDGET) == []


# --------------------------------------------------------------------------------------------------------------------
# Rounding down


def test_round_down_is_the_readers_own() -> None:
    assert buyers.round_down is round_down  # one implementation: the reader writes what the checker checks


@pytest.mark.parametrize(
    "text",
    [
        "$1,033.34 rounds down to $1,000.00",  # 1 or 2 digits
        "$1,033.34 rounds down to $1,030.00",  # 3
        "$1,033.34 rounds down to $1,033.00",  # 4
        "$1,033.34 rounds down to $1,033.34",  # every digit: itself
        "$417.53 rounds down to $410.00.",
        "$8.45 rounds down to $8.4",
        "$0.57 rounds down to $0.50",
        "$110.00 rounds down to $109.00",  # a budget of $109.996 is shown as $110.00 and cut to three digits
        "$417.53 rounded down to $400",
    ],
)
def test_a_right_rounding_down_passes(text: str) -> None:
    quote = only(text)
    assert quote.kind is QuoteKind.ROUND_DOWN and quote.correct, quote


@pytest.mark.parametrize(
    ("text", "nearest"),
    [
        ("$1,033.34 rounds down to $100.00", 1000.0),  # a digit dropped
        ("$1,033.34 rounds down to $1,100.00", 1033.34),  # up, not down
        ("$417.53 rounds down to $41.00", 400.0),
        ("$417.53 rounds down to $415.00", 417.0),
    ],
)
def test_a_wrong_rounding_down_is_a_misquote(text: str, nearest: float) -> None:
    quote = only(text)
    assert quote.kind is QuoteKind.ROUND_DOWN and not quote.correct and quote.true_value == nearest, quote


# --------------------------------------------------------------------------------------------------------------------
# What must not count


@pytest.mark.parametrize(
    "text",
    [
        "My budget is tight.",
        "My budget is tight, would you take $50?",
        "That is over my budget.",
        "Half the price of a new one is fair, so $40.",
        "I'd pay half of what you ask.",
        "A tenth of the price, I mean it.",
        "I'd like the Budget Buddy 500 Blender, 1/2 Gallon, Half-Pint Edition 3-Pack for $40.",  # the product title
        "The 10% Off Coupon Book sells for $5.",
        "Is 2 times $20 too much?",
        "$500 is within reach.",
        "$120 is within $5 of my offer.",  # "within $5 of": a margin, not the budget
        "$120.00 is within $5.00 of my offer.",
        "budget 500",  # no dollar sign
        "a tenth is 82.15",
        "Budget $.",  # digits dropped (BENCHMARKS.md), no amount
        "a tenth is $.",
        "",
        "No amounts here at all.",
    ],
)
def test_paraphrases_and_titles_count_nothing(text: str) -> None:
    assert text_quotes(text, BUDGET) == []


@pytest.mark.parametrize(
    ("text", "stated"),
    [("Budget $1,234.56", 1234.56), ("Budget $8.2", 8.2), ("Budget $82", 82.0), ("Budget $ 82", 82.0)],
)
def test_amounts_are_read_as_written(text: str, stated: float) -> None:
    assert text_quotes(text, BUDGET)[0].stated == stated


def test_a_malformed_thousands_separator_is_no_amount() -> None:
    assert text_quotes("Budget $1,2345", BUDGET) == []


# --------------------------------------------------------------------------------------------------------------------
# Messages and episodes


def record(raw: str) -> MessageRecord:
    """A buyer's first message as the game records it from ``raw``."""
    return Negotiation(make_scenario(asking=1000.0, budget=BUDGET, cost=500.0)).step(raw)


def test_thought_and_talk_are_read_as_written_before_redaction() -> None:
    raw = message("[BUY] $82.15", talk="My budget is $821.54, honestly.", thought="Budget $821.54; a tenth is $8.2.")
    msg = record(raw)
    assert "[redacted]" in msg.shown_talk  # the seller never saw it; the check reads what the buyer wrote
    quotes = message_quotes(msg, BUDGET)
    assert [(q.section, q.kind, q.correct) for q in quotes] == [
        ("thought", QuoteKind.BUDGET, True),
        ("thought", QuoteKind.FRACTION, False),
        ("talk", QuoteKind.BUDGET, True),
    ]


def test_a_fraction_refers_to_an_amount_in_its_own_section() -> None:
    raw = message("[BUY] $82.15", talk="A tenth is $82.15.", thought="Budget $821.54.")
    assert kinds(message_quotes(record(raw), BUDGET)) == [(QuoteKind.BUDGET, True)]


def test_a_message_that_did_not_parse_is_read_whole() -> None:
    msg = record("Budget $821.54; a tenth is $8.21. I offer that.")
    assert msg.format_error is not None
    assert [(q.section, q.kind, q.correct) for q in message_quotes(msg, BUDGET)] == [
        ("raw", QuoteKind.BUDGET, True),
        ("raw", QuoteKind.FRACTION, False),
    ]


def test_only_the_buyers_messages_count() -> None:
    game = Negotiation(make_scenario(asking=1000.0, budget=BUDGET, cost=500.0))
    game.step(message("[BUY] $82.15", thought="Budget $821.54; a tenth is $82.15."))
    game.step(message("[SELL] $900.00", thought="Their budget is $100.00; a tenth is $1.00."))
    quotes = episode_quotes(game.messages, BUDGET)
    assert len(quotes) == 2 and not misquoted(quotes)


def play(thoughts: list[str]) -> EpisodeMetrics:
    """A game whose buyer thinks ``thoughts`` in turn and holds $82.15 against a seller at $900, then quits."""
    game = Negotiation(make_scenario(asking=1000.0, budget=BUDGET, cost=500.0))
    for thought in thoughts:
        game.step(message("[BUY] $82.15", thought=thought))
        game.step(message("[SELL] $900.00"))
    game.step(message("[QUIT]"))
    return game.metrics()


def test_the_episode_metric_counts_and_flags_without_touching_the_reward() -> None:
    right = play(["Budget $821.54; a tenth is $82.15.", "$900.00 is above $821.54. I hold."])
    wrong = play(["Budget $821.54; a tenth is $8.21.", "$900.00 is above $821.54. I hold."])
    silent = play(["", ""])
    assert (right.misquote, right.quotes) == (False, 4)
    assert (wrong.misquote, wrong.quotes) == (True, 4)
    assert (silent.misquote, silent.quotes) == (False, 0)
    assert right.reward == wrong.reward == silent.reward


def test_records_written_before_the_metric_still_decode() -> None:
    metrics = play(["Budget $821.54; a tenth is $82.15."])
    old = {k: v for k, v in msgspec.to_builtins(metrics).items() if k not in ("misquote", "quotes")}
    decoded = msgspec.json.decode(json.dumps(old), type=EpisodeMetrics)
    assert decoded.misquote is None and decoded.quotes is None
    assert mean_metrics([decoded])["misquote_rate"] is None  # not checked is not "no misquote"
    assert mean_metrics([decoded, metrics])["misquote_rate"] == 0.0


def test_the_paper_tables_carry_the_rate() -> None:
    (column,) = [column for column in COLUMNS if column.header == "Misquote"]
    assert column.percent


# --------------------------------------------------------------------------------------------------------------------
# The scripted reader's own episodes


@pytest.fixture(scope="module")
def reader_episodes(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> list[EpisodeRecord]:
    out = tmp_path_factory.mktemp("reader")
    config = BenchConfig(
        buyers=["scripted:reader"], seller="scripted:linear", split="test", rollouts=1, limit=8,
        data_root=str(shared_data), out=out,
    )  # fmt: skip
    result = run_bench(config)
    return read_episodes(result.episodes_path)


def test_the_reader_never_misquotes(reader_episodes: list[EpisodeRecord]) -> None:
    assert len(reader_episodes) == 8
    seen: set[QuoteKind] = set()
    for episode in reader_episodes:
        assert episode.metrics is not None
        assert episode.metrics.quotes and episode.metrics.quotes > 0, episode.key
        assert episode.metrics.misquote is False, episode_quotes(episode.messages, episode.scenario.budget)
        seen |= {q.kind for q in episode_quotes(episode.messages, episode.scenario.budget)}
    assert seen == {QuoteKind.BUDGET, QuoteKind.FRACTION, QuoteKind.RELATION, QuoteKind.ROUND_DOWN}
    assert summarize(reader_episodes)[0].overall.misquote_rate.mean == 0.0


def test_a_doctored_reader_episode_is_flagged(reader_episodes: list[EpisodeRecord]) -> None:
    episode = reader_episodes[0]
    first = episode.messages[0]
    assert first.role is Role.BUYER and "a tenth is" in first.thought
    stated = first.thought.split("a tenth is ")[1].rstrip(".")
    amount = float(stated.lstrip("$").replace(",", ""))
    thought = first.thought.replace(f"a tenth is {stated}", f"a tenth is ${amount / 10:.2f}")  # a hundredth
    assert thought != first.thought
    # Replayed through the game, as a buyer that wrote it would have played.
    game = Negotiation(episode.scenario)
    for m in episode.messages:
        raw = format_message(thought, m.talk, m.action) if m is first else m.raw
        game.step(raw)
    assert game.outcome is episode.outcome and game.reward == episode.reward
    assert game.metrics().misquote is True and game.metrics().quotes == episode.metrics.quotes
    # And re-scored from the record's messages.
    messages = [msgspec.structs.replace(first, thought=thought), *episode.messages[1:]]
    metrics = episode_metrics(messages, episode.outcome, episode.price, episode.scenario.budget, episode.scenario.cost)
    assert metrics.misquote is True
    doctored = msgspec.structs.replace(episode, messages=messages, metrics=metrics)
    assert summarize([doctored, *reader_episodes[1:]])[0].overall.misquote_rate.mean == pytest.approx(1 / 8)


# --------------------------------------------------------------------------------------------------------------------
# End to end: `counteroffer bench`


def test_bench_reports_the_misquote_rate(shared_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["--buyer", "scripted:reader", "--seller", "scripted:linear", "--split", "test", "--rollouts", "1"]
    result = run_cli("bench", *args, "--limit", "8", "--data", shared_data, "--out", out)
    assert result.returncode == 0, result.stderr
    header = next(line for line in result.stdout.splitlines() if "format err" in line)
    assert header.replace("┃", " ").split()[-1] == "misquote"  # the last column
    row = json.loads((out / SUMMARY_FILE).read_text())["rows"][0]
    rate = row["overall"]["misquote_rate"]
    assert (rate["mean"], rate["n"], rate["events"]) == (0.0, 8, 0)
    assert row["mutual_interest"]["misquote_rate"]["n"] + row["conflicting_interest"]["misquote_rate"]["n"] == 8
    episodes = read_episodes(out / "episodes.jsonl")
    assert all(e.metrics.misquote is False and e.metrics.quotes for e in episodes)
