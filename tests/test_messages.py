"""The Thought / Talk / Action parser: tolerant of form, strict on meaning, never raises."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from counteroffer.game.messages import (
    MAX_PRICE,
    ROLE_ACTIONS,
    Action,
    ActionKind,
    FormatError,
    FormatErrorKind,
    ParsedMessage,
    Role,
    drop_thousands_separators,
    format_message,
    parse_message,
    parse_message_general,
    parse_price,
    visible_text,
)

BUYER, SELLER = Role.BUYER, Role.SELLER


def parsed(text: str, role: Role) -> ParsedMessage:
    result = parse_message(text, role)
    assert isinstance(result, ParsedMessage), f"{text!r} as {role}: {result}"
    return result


def error_kind(text: str, role: Role) -> FormatErrorKind:
    result = parse_message(text, role)
    assert isinstance(result, FormatError), f"{text!r} as {role} parsed as {result}"
    assert result.detail  # every error explains itself
    return result.kind


# --------------------------------------------------------------------------------------------------------------------
# Canonical messages


@pytest.mark.parametrize(
    ("role", "action_text", "expected"),
    [
        (BUYER, "[BUY] $120.00", Action(ActionKind.BUY, 120.0)),
        (BUYER, "[REJECT]", Action(ActionKind.REJECT)),
        (BUYER, "[DEAL] $150.00", Action(ActionKind.DEAL, 150.0)),
        (BUYER, "[QUIT]", Action(ActionKind.QUIT)),
        (SELLER, "[SELL] $180.00", Action(ActionKind.SELL, 180.0)),
        (SELLER, "[REJECT]", Action(ActionKind.REJECT)),
        (SELLER, "[DEAL] $120.00", Action(ActionKind.DEAL, 120.0)),
        (SELLER, "[QUIT]", Action(ActionKind.QUIT)),
    ],
)
def test_canonical_message_for_each_role_and_action(role: Role, action_text: str, expected: Action) -> None:
    text = f"Thought: my private plan\nTalk: Hello there, let's talk.\nAction: {action_text}"
    message = parsed(text, role)
    assert message.action == expected
    assert message.thought == "my private plan"
    assert message.talk == "Hello there, let's talk."


def test_all_five_action_kinds_are_covered_by_the_roles() -> None:
    assert ROLE_ACTIONS[BUYER] | ROLE_ACTIONS[SELLER] == set(ActionKind)
    assert ActionKind.BUY not in ROLE_ACTIONS[SELLER]
    assert ActionKind.SELL not in ROLE_ACTIONS[BUYER]
    assert {k for k in ActionKind if k.takes_price} == {ActionKind.BUY, ActionKind.SELL, ActionKind.DEAL}


@pytest.mark.parametrize(
    ("text", "role", "expected"),
    [
        ("action : [buy] $5", BUYER, Action(ActionKind.BUY, 5.0)),
        ("ACTION:[Buy]$5", BUYER, Action(ActionKind.BUY, 5.0)),
        ("Action:   [ sell ]   $ 7", SELLER, Action(ActionKind.SELL, 7.0)),
        ("  action\t:\t[deal]\t$9.99", BUYER, Action(ActionKind.DEAL, 9.99)),
        ("**Action:** [BUY] $1,299.50", BUYER, Action(ActionKind.BUY, 1299.5)),
        ("**Action**: **[BUY] $1,299.50**", BUYER, Action(ActionKind.BUY, 1299.5)),
        ("Action: `[SELL] $10`", SELLER, Action(ActionKind.SELL, 10.0)),
        ("`Action:` `[SELL] $10`", SELLER, Action(ActionKind.SELL, 10.0)),
        ("> Action: [BUY] $3", BUYER, Action(ActionKind.BUY, 3.0)),
        ("### Action: [QUIT]", SELLER, Action(ActionKind.QUIT)),
        ("- Action: [REJECT]", BUYER, Action(ActionKind.REJECT)),
        ("_Action:_ [REJECT]", SELLER, Action(ActionKind.REJECT)),
        ("Action: [BUY] $1,234,567.89", BUYER, Action(ActionKind.BUY, 1234567.89)),
        ("Action: [BUY] 1,000", BUYER, Action(ActionKind.BUY, 1000.0)),
        ("Action: [BUY] $ 12.5", BUYER, Action(ActionKind.BUY, 12.5)),
        ("Action: [BUY] $.5", BUYER, Action(ActionKind.BUY, 0.5)),
        ("Action: [BUY] 42", BUYER, Action(ActionKind.BUY, 42.0)),
        ("Action: [SELL] $42.", SELLER, Action(ActionKind.SELL, 42.0)),
        ("Action: [BUY] $12.346", BUYER, Action(ActionKind.BUY, 12.35)),
        ("Action: [BUY] $12.344", BUYER, Action(ActionKind.BUY, 12.34)),
        ("Action: [BUY] $0.009", BUYER, Action(ActionKind.BUY, 0.01)),
        ("Action: [BUY] $1000000000", BUYER, Action(ActionKind.BUY, MAX_PRICE)),
        ("Action:\n[BUY] $8", BUYER, Action(ActionKind.BUY, 8.0)),
        ("Action: BUY $8", BUYER, Action(ActionKind.BUY, 8.0)),
        ("Action: [BUY] $8 \nTalk: after the action", BUYER, Action(ActionKind.BUY, 8.0)),
    ],
)
def test_tolerant_of_form(text: str, role: Role, expected: Action) -> None:
    assert parsed(text, role).action == expected


def test_markdown_labels_for_all_three_sections() -> None:
    text = "**Thought:** keep it low\n**Talk:** *How about this?*\n**Action:** [BUY] $1,299.50"
    message = parsed(text, BUYER)
    assert message.thought == "keep it low"
    assert message.talk == "How about this?"
    assert message.action == Action(ActionKind.BUY, 1299.5)


def test_multiline_thought_and_talk_are_extracted_whole() -> None:
    text = "Thought: line one\nline two\n\nTalk: Hi!\nSecond line of talk.\nAction: [SELL] $99"
    message = parsed(text, SELLER)
    assert message.thought == "line one\nline two"
    assert message.talk == "Hi!\nSecond line of talk."
    assert message.action == Action(ActionKind.SELL, 99.0)


def test_sections_in_any_order() -> None:
    message = parsed("Action: [QUIT]\nTalk: bye\nThought: done", BUYER)
    assert (message.thought, message.talk, message.action) == ("done", "bye", Action(ActionKind.QUIT))


@pytest.mark.parametrize(
    ("text", "thought", "talk"),
    [
        ("Action: [REJECT]", "", ""),
        ("Talk: only talk\nAction: [REJECT]", "", "only talk"),
        ("Thought: only thought\nAction: [REJECT]", "only thought", ""),
        ("preamble without a label\nAction: [REJECT]", "", ""),
    ],
)
def test_missing_thought_or_talk_is_allowed(text: str, thought: str, talk: str) -> None:
    message = parsed(text, SELLER)
    assert (message.thought, message.talk) == (thought, talk)
    assert message.action == Action(ActionKind.REJECT)


def test_repeated_thought_label_keeps_the_first() -> None:
    message = parsed("Thought: first\nThought: second\nTalk: t\nAction: [REJECT]", BUYER)
    assert message.thought == "first"
    assert "second" not in message.talk


# --------------------------------------------------------------------------------------------------------------------
# Strict on meaning: every FormatErrorKind


@pytest.mark.parametrize(
    ("text", "role", "kind"),
    [
        ("", BUYER, FormatErrorKind.EMPTY),
        ("   \n\t  ", SELLER, FormatErrorKind.EMPTY),
        ("Thought: hmm\nTalk: I will buy it for $5", BUYER, FormatErrorKind.MISSING_ACTION),
        ("[BUY] $5", BUYER, FormatErrorKind.MISSING_ACTION),
        ("Talk: hi\nAction:", BUYER, FormatErrorKind.MISSING_ACTION),
        ("Talk: hi\nAction: **  **", SELLER, FormatErrorKind.MISSING_ACTION),
        ("Action: [BUY] $5\nAction: [BUY] $5", BUYER, FormatErrorKind.MULTIPLE_ACTION_SECTIONS),
        ("Action: [SELL] $5\nTalk: x\n**Action:** [QUIT]", SELLER, FormatErrorKind.MULTIPLE_ACTION_SECTIONS),
        ("Action: [OFFER] $5", BUYER, FormatErrorKind.UNKNOWN_ACTION),
        ("Action: I accept", SELLER, FormatErrorKind.UNKNOWN_ACTION),
        ("Action: purchase $5", BUYER, FormatErrorKind.UNKNOWN_ACTION),
        ("Action: [BUY] $5 [DEAL] $5", BUYER, FormatErrorKind.MULTIPLE_ACTIONS),
        ("Action: [REJECT] or [QUIT]", SELLER, FormatErrorKind.MULTIPLE_ACTIONS),
        ("Action: [SELL] $5", BUYER, FormatErrorKind.ACTION_NOT_ALLOWED_FOR_ROLE),
        ("Action: [BUY] $5", SELLER, FormatErrorKind.ACTION_NOT_ALLOWED_FOR_ROLE),
        ("Action: [BUY]", BUYER, FormatErrorKind.MISSING_PRICE),
        ("Action: [SELL]", SELLER, FormatErrorKind.MISSING_PRICE),
        ("Action: [DEAL] at your price", BUYER, FormatErrorKind.MISSING_PRICE),
        ("Action: [BUY] $abc", BUYER, FormatErrorKind.INVALID_PRICE),
        ("Action: [SELL] $ten", SELLER, FormatErrorKind.INVALID_PRICE),
        ("Action: [BUY] -$5", BUYER, FormatErrorKind.INVALID_PRICE),
        ("Action: [BUY] $-5", BUYER, FormatErrorKind.INVALID_PRICE),
        ("Action: [SELL] -5", SELLER, FormatErrorKind.INVALID_PRICE),
        ("Action: [BUY] $0", BUYER, FormatErrorKind.INVALID_PRICE),
        ("Action: [BUY] $0.00", BUYER, FormatErrorKind.INVALID_PRICE),
        ("Action: [BUY] $0.001", BUYER, FormatErrorKind.INVALID_PRICE),  # rounds to $0.00: no offer
        ("Action: [BUY] $0.004", BUYER, FormatErrorKind.INVALID_PRICE),
        ("Action: [BUY] $NaN", BUYER, FormatErrorKind.INVALID_PRICE),
        ("Action: [SELL] $nan", SELLER, FormatErrorKind.INVALID_PRICE),
        ("Action: [BUY] $inf", BUYER, FormatErrorKind.INVALID_PRICE),
        ("Action: [BUY] $2,000,000,000", BUYER, FormatErrorKind.INVALID_PRICE),
        ("Action: [SELL] $1000000000.01", SELLER, FormatErrorKind.INVALID_PRICE),
        ("Action: [BUY] $5 or $6", BUYER, FormatErrorKind.INVALID_PRICE),
        ("Action: [REJECT] $5", BUYER, FormatErrorKind.UNEXPECTED_PRICE),
        ("Action: [REJECT] 5", SELLER, FormatErrorKind.UNEXPECTED_PRICE),
        ("Action: [QUIT] $5", SELLER, FormatErrorKind.UNEXPECTED_PRICE),
        ("Action: [QUIT] $0", BUYER, FormatErrorKind.UNEXPECTED_PRICE),
    ],
)
def test_strict_on_meaning(text: str, role: Role, kind: FormatErrorKind) -> None:
    assert error_kind(text, role) is kind


def test_every_format_error_kind_is_exercised() -> None:
    samples = {
        FormatErrorKind.EMPTY: "",
        FormatErrorKind.MISSING_ACTION: "Talk: hi",
        FormatErrorKind.MULTIPLE_ACTION_SECTIONS: "Action: [REJECT]\nAction: [REJECT]",
        FormatErrorKind.UNKNOWN_ACTION: "Action: [HAGGLE]",
        FormatErrorKind.MULTIPLE_ACTIONS: "Action: [REJECT] [QUIT]",
        FormatErrorKind.ACTION_NOT_ALLOWED_FOR_ROLE: "Action: [SELL] $1",
        FormatErrorKind.MISSING_PRICE: "Action: [BUY]",
        FormatErrorKind.INVALID_PRICE: "Action: [BUY] $abc",
        FormatErrorKind.UNEXPECTED_PRICE: "Action: [QUIT] $1",
    }
    assert set(samples) == set(FormatErrorKind)
    for kind, text in samples.items():
        assert error_kind(text, BUYER) is kind


# --------------------------------------------------------------------------------------------------------------------
# Actions mentioned elsewhere are not the action


def test_action_in_thought_is_not_the_action() -> None:
    text = "Thought: I could write [DEAL] $100 or Action: [QUIT] now\nTalk: Let's keep talking.\nAction: [REJECT]"
    message = parsed(text, BUYER)
    assert message.action == Action(ActionKind.REJECT)
    assert "[DEAL] $100" in message.thought


def test_action_in_talk_is_not_the_action() -> None:
    text = "Talk: Would you take [SELL] $90? Action: [DEAL] $90 maybe.\nAction: [SELL] $120"
    message = parsed(text, SELLER)
    assert message.action == Action(ActionKind.SELL, 120.0)
    assert "[DEAL] $90" in message.talk


def test_action_only_in_talk_is_missing_action() -> None:
    assert error_kind("Talk: my action is [BUY] $5, take it", BUYER) is FormatErrorKind.MISSING_ACTION
    assert error_kind("Thought: Action is [BUY] $5\nTalk: hi", BUYER) is FormatErrorKind.MISSING_ACTION


def test_action_label_inside_a_line_is_not_a_section() -> None:
    # "Action:" only opens a section at the start of a line.
    message = parsed("Talk: Action: [QUIT] is what I won't do\nAction: [BUY] $3", BUYER)
    assert message.action == Action(ActionKind.BUY, 3.0)


# --------------------------------------------------------------------------------------------------------------------
# Helpers


def test_parse_price() -> None:
    assert parse_price("it costs $1,299.50 today") == 1299.5
    assert parse_price("no number here") is None
    assert parse_price("$0") is None
    assert parse_price("-$3") is None
    assert parse_price("$3,000,000,000") is None


def test_render_and_visible_text_never_show_thought() -> None:
    action = Action(ActionKind.SELL, 1299.5)
    assert action.render() == "[SELL] $1,299.50"
    assert Action(ActionKind.QUIT).render() == "[QUIT]"
    shown = visible_text("Fair price.", action)
    assert shown == "Talk: Fair price.\nAction: [SELL] $1,299.50"
    full = format_message("SECRET-PLAN", "Fair price.", action)
    assert "SECRET-PLAN" in full and "SECRET-PLAN" not in shown


# --------------------------------------------------------------------------------------------------------------------
# Properties

FRAGMENTS = [
    "Action:",
    "action :",
    "**Action:**",
    "Thought:",
    "Talk:",
    "[BUY]",
    "[SELL]",
    "[DEAL]",
    "[REJECT]",
    "[QUIT]",
    "[",
    "]",
    "$",
    "-",
    "0",
    "1",
    "5",
    "9",
    "00",
    "0.00",
    "999",
    "1,000,000,000",
    ",",
    ".",
    "**",
    "`",
    ">",
    "\n",
    " ",
    "\t",
    "e",
    "nan",
    "inf",
    "x",
]
fragment_text = st.lists(st.sampled_from(FRAGMENTS), max_size=30).map("".join)
roles = st.sampled_from(list(Role))


def check_parse_result(text: str, role: Role) -> None:
    result = parse_message(text, role)
    assert isinstance(result, ParsedMessage | FormatError)
    if isinstance(result, FormatError):
        assert isinstance(result.kind, FormatErrorKind)
        return
    action = result.action
    assert action.kind in ROLE_ACTIONS[role]
    if action.kind.takes_price:
        price = action.price
        assert price is not None
        assert math.isfinite(price)
        assert 0 < price <= MAX_PRICE
        assert round(price, 2) == price
    else:
        assert action.price is None


@settings(max_examples=300, deadline=None)
@given(text=st.text(), role=roles)
def test_never_raises_on_arbitrary_text(text: str, role: Role) -> None:
    check_parse_result(text, role)


@settings(max_examples=400, deadline=None)
@given(text=fragment_text, role=roles)
def test_never_raises_on_action_like_text(text: str, role: Role) -> None:
    check_parse_result(text, role)


@settings(max_examples=200, deadline=None)
@given(prefix=fragment_text, body=fragment_text, role=roles)
def test_never_raises_with_an_action_label(prefix: str, body: str, role: Role) -> None:
    check_parse_result(f"{prefix}\nAction: {body}", role)


price_text = st.lists(
    st.sampled_from(["$", " ", "-", "0", "1", "4", "5", "9", "00", "0.00", ".", ","]), max_size=12
).map("".join)


@settings(max_examples=400, deadline=None)
@given(kind=st.sampled_from(["BUY", "SELL", "DEAL"]), price=price_text, role=roles)
def test_priced_action_with_arbitrary_price_text(kind: str, price: str, role: Role) -> None:
    check_parse_result(f"Action: [{kind}] {price}", role)


def _no_action_word(text: str) -> bool:
    return "action" not in text.lower()


line_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")),
    max_size=60,
).filter(_no_action_word)


@st.composite
def role_and_action(draw: st.DrawFn) -> tuple[Role, Action]:
    role = draw(roles)
    kind = draw(st.sampled_from(sorted(ROLE_ACTIONS[role])))
    if kind.takes_price:
        cents = draw(st.integers(min_value=1, max_value=1_000_000_000))
        return role, Action(kind, cents / 100)
    return role, Action(kind)


@settings(max_examples=300, deadline=None)
@given(pair=role_and_action(), thought=line_text, talk=line_text)
def test_round_trip(pair: tuple[Role, Action], thought: str, talk: str) -> None:
    role, action = pair
    result = parse_message(format_message(thought, talk, action), role)
    assert isinstance(result, ParsedMessage), result
    assert result.action == action


@settings(max_examples=100, deadline=None)
@given(
    pair=role_and_action(),
    thought=st.text(alphabet="abcdefghij XYZ.,!?", max_size=40),
    talk=st.text(alphabet="abcdefghij XYZ.,!?", max_size=40),
)
def test_round_trip_keeps_plain_thought_and_talk(pair: tuple[Role, Action], thought: str, talk: str) -> None:
    role, action = pair
    result = parse_message(format_message(thought, talk, action), role)
    assert isinstance(result, ParsedMessage), result
    assert (result.thought, result.talk) == (thought.strip(), talk.strip())


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Budget $1,529.70; a tenth is $152.97.", "Budget $1529.70; a tenth is $152.97."),
        ("$1,000, then $12,345,678.90!", "$1000, then $12345678.90!"),
        ("I said 5, then 1,000 units", "I said 5, then 1,000 units"),  # commas that are not in an amount stay
        ("$1,0001 and $1,23", "$1,0001 and $1,23"),  # not a separated amount: left as written
    ],
)
def test_dropping_thousands_separators(text: str, expected: str) -> None:
    assert drop_thousands_separators(text) == expected


@settings(max_examples=200, deadline=None)
@given(pair=role_and_action(), thought=line_text, talk=line_text)
def test_the_money_style_never_changes_the_action(pair: tuple[Role, Action], thought: str, talk: str) -> None:
    role, action = pair
    result = parse_message(drop_thousands_separators(format_message(thought, talk, action)), role)
    assert isinstance(result, ParsedMessage), result
    assert result.action == action


_line_text = st.text(alphabet=st.characters(blacklist_characters="\n"), max_size=60)


@settings(max_examples=400, deadline=None)
@given(
    thought=_line_text,
    talk=_line_text,
    kind=st.sampled_from(list(ActionKind)),
    cents=st.integers(min_value=0, max_value=10**12),
    role=st.sampled_from(list(Role)),
)
def test_canonical_fast_path_agrees_with_the_general_parser(thought, talk, kind, cents, role):
    """parse_message takes a one-regex fast path for canonical messages; it must never disagree with the
    general parser, whatever the text, role, action or price (including invalid ones)."""
    price = cents / 100 if kind.takes_price else None
    text = format_message(thought, talk, Action(kind, price))
    assert parse_message(text, role) == parse_message_general(text, role)
