"""The Thought / Talk / Action message format and its parser.

Every message in a negotiation has three parts::

    Thought: private reasoning, never shown to the other side
    Talk: what the other side reads
    Action: [BUY] $120.00

The parser is tolerant of form (case, spacing, markdown emphasis and code marks around labels and actions,
thousands separators such as ``$1,299.50``) and strict on meaning: exactly one action, allowed for the role, with
a positive finite price where the action needs one and none where it does not. It never raises on any input
string: it returns either a :class:`ParsedMessage` or a typed :class:`FormatError`.
"""

from __future__ import annotations

import math
import re
from enum import StrEnum

import msgspec


class Role(StrEnum):
    BUYER = "buyer"
    SELLER = "seller"

    @property
    def other(self) -> Role:
        return Role.SELLER if self is Role.BUYER else Role.BUYER


class ActionKind(StrEnum):
    BUY = "BUY"
    SELL = "SELL"
    DEAL = "DEAL"
    REJECT = "REJECT"
    QUIT = "QUIT"

    @property
    def takes_price(self) -> bool:
        return self in _PRICED


_PRICED = frozenset({ActionKind.BUY, ActionKind.SELL, ActionKind.DEAL})

ROLE_ACTIONS: dict[Role, frozenset[ActionKind]] = {
    Role.BUYER: frozenset({ActionKind.BUY, ActionKind.REJECT, ActionKind.DEAL, ActionKind.QUIT}),
    Role.SELLER: frozenset({ActionKind.SELL, ActionKind.REJECT, ActionKind.DEAL, ActionKind.QUIT}),
}

# Prices above this are treated as garbage (a model emitting a phone number, say), not as an offer.
MAX_PRICE = 1e9


def format_money_or_dash(amount: float | None) -> str:
    """:func:`format_money`, or "–" for no amount (a price never agreed, an offer never made)."""
    return "–" if amount is None else format_money(amount)


def format_money(amount: float) -> str:
    """A price as the game writes it everywhere: ``$1,299.50``."""
    return f"${amount:,.2f}"


_SEPARATED_MONEY_RE = re.compile(r"\$\d{1,3}(?:,\d{3})+(?:\.\d+)?(?!\d)")


def drop_thousands_separators(text: str) -> str:
    """``text`` with every dollar amount written without thousands separators: ``$1,299.50`` becomes ``$1299.50``.
    Other commas ("$5, then") are kept; the parser reads both forms as the same price."""
    return _SEPARATED_MONEY_RE.sub(lambda match: match.group().replace(",", ""), text)


class Action(msgspec.Struct, gc=False, frozen=True):
    """One action: its kind and, for BUY/SELL/DEAL, a price in dollars rounded to cents."""

    kind: ActionKind
    price: float | None = None

    def render(self) -> str:
        return f"[{self.kind}]" if self.price is None else f"[{self.kind}] {format_money(self.price)}"


class FormatErrorKind(StrEnum):
    EMPTY = "empty"
    MISSING_ACTION = "missing_action"
    MULTIPLE_ACTION_SECTIONS = "multiple_action_sections"
    UNKNOWN_ACTION = "unknown_action"
    MULTIPLE_ACTIONS = "multiple_actions"
    ACTION_NOT_ALLOWED_FOR_ROLE = "action_not_allowed_for_role"
    MISSING_PRICE = "missing_price"
    INVALID_PRICE = "invalid_price"
    UNEXPECTED_PRICE = "unexpected_price"


class FormatError(msgspec.Struct, gc=False, frozen=True):
    kind: FormatErrorKind
    detail: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.detail}"


class ParsedMessage(msgspec.Struct, gc=False, frozen=True):
    thought: str
    talk: str
    action: Action


_LABEL = r"[ \t>*_`#-]*(thoughts?|talk|action)[ \t*_`]*:[ \t*_`]*"
_LABEL_RE = re.compile(_LABEL, re.IGNORECASE)
_CANONICAL_RE = re.compile(
    r"Thought: ([^\n]*)\nTalk: ([^\n]*)\n"
    r"Action: \[(BUY|SELL|DEAL|REJECT|QUIT)\](?: \$((?:\d{1,3}(?:,\d{3})+|\d+)\.\d\d))?"
)
_ACTION_TOKEN_RE = re.compile(r"\[\s*([A-Za-z]+)\s*\]")
# A number as people and models write prices: optional $, thousands separators, optional cents.
_PRICE_RE = re.compile(r"(?<![\w.])(-?)\s*\$?\s*(-?)((?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+)(?![\w])")
_NON_NUMERIC_PRICE_RE = re.compile(r"\$\s*[^\s\d.,-]")
_STRIP_CHARS = " \t\r\n*_`\"'"


def _price_value(sign_before: str, sign_after: str, number: str) -> float | None:
    if sign_before or sign_after:
        return None
    value = float(number.replace(",", ""))
    if not math.isfinite(value):
        return None
    # Check the range after rounding to cents: "$0.004" rounds to $0.00, which is no offer.
    value = round(value, 2)
    if value <= 0 or value > MAX_PRICE:
        return None
    return value


def parse_price(text: str) -> float | None:
    """The first price in ``text`` in dollars rounded to cents, or None if there is none.

    Negative, zero, non-finite and absurdly large values return None: they are never valid offers.
    """
    match = _PRICE_RE.search(text)
    return None if match is None else _price_value(*match.groups())


def _sections(text: str) -> tuple[dict[str, str], int]:
    """Split a message into its labelled sections; also return how many Action labels it has.

    The first Thought/Talk wins: a repeated label's text is not silently merged into what the other side reads.
    """
    found: dict[str, str] = {}
    action_labels = 0
    label: str | None = None
    body: list[str] = []
    for line in text.split("\n"):
        match = _LABEL_RE.match(line)
        if match is None:
            if label is not None:
                body.append(line)
            continue
        if label is not None:
            found.setdefault(label, "\n".join(body).strip(_STRIP_CHARS))
        label = match.group(1).lower().rstrip("s")  # "Thoughts:" is a Thought too, never Talk
        action_labels += label == "action"
        body = [line[match.end() :]]
    if label is not None:
        found.setdefault(label, "\n".join(body).strip(_STRIP_CHARS))
    return found, action_labels


def parse_action(body: str, role: Role) -> Action | FormatError:
    """Parse the body of an Action section for ``role``."""
    tokens = _ACTION_TOKEN_RE.findall(body)
    if not tokens:
        bare = body.split()[0].strip(_STRIP_CHARS + "[]").upper() if body.split() else ""
        if bare in ActionKind.__members__:
            tokens = [bare]
        else:
            return FormatError(FormatErrorKind.UNKNOWN_ACTION, f"no [ACTION] token in {body[:80]!r}")
    if len(tokens) > 1:
        return FormatError(FormatErrorKind.MULTIPLE_ACTIONS, f"{len(tokens)} actions in {body[:80]!r}")
    name = tokens[0].upper()
    if name not in ActionKind.__members__:
        return FormatError(FormatErrorKind.UNKNOWN_ACTION, f"unknown action [{tokens[0]}]")
    kind = ActionKind[name]
    if kind not in ROLE_ACTIONS[role]:
        return FormatError(FormatErrorKind.ACTION_NOT_ALLOWED_FOR_ROLE, f"the {role} cannot use [{kind}]")
    rest = _ACTION_TOKEN_RE.sub(" ", body, count=1)
    numbers = _PRICE_RE.findall(rest)
    if not kind.takes_price:
        if numbers:
            return FormatError(FormatErrorKind.UNEXPECTED_PRICE, f"[{kind}] takes no price: {body[:80]!r}")
        return Action(kind)
    if not numbers:
        if _NON_NUMERIC_PRICE_RE.search(rest):
            return FormatError(FormatErrorKind.INVALID_PRICE, f"non-numeric price in {body[:80]!r}")
        return FormatError(FormatErrorKind.MISSING_PRICE, f"[{kind}] needs a price: {body[:80]!r}")
    if len(numbers) > 1:
        return FormatError(FormatErrorKind.INVALID_PRICE, f"several numbers after [{kind}]: {body[:80]!r}")
    price = _price_value(*numbers[0])
    if price is None:
        return FormatError(FormatErrorKind.INVALID_PRICE, f"[{kind}] price is not a positive amount: {body[:80]!r}")
    return Action(kind, price)


def parse_message(text: str, role: Role) -> ParsedMessage | FormatError:
    """Parse one message of ``role``. Never raises; returns a typed error for anything malformed."""
    return _parse_canonical(text, role) or parse_message_general(text, role)


def _parse_canonical(text: str, role: Role) -> ParsedMessage | None:
    """The exact format :func:`format_message` writes, parsed in one regex match; None sends the message down the
    general path. It returns exactly what the general path would (a property test checks this)."""
    match = _CANONICAL_RE.fullmatch(text)
    if match is None:
        return None
    thought, talk, name, amount = match.groups()
    kind = ActionKind(name)
    if kind not in ROLE_ACTIONS[role] or kind.takes_price != (amount is not None):
        return None
    price = _price_value("", "", amount) if amount is not None else None
    if amount is not None and price is None:
        return None
    return ParsedMessage(thought=thought.strip(_STRIP_CHARS), talk=talk.strip(_STRIP_CHARS), action=Action(kind, price))


def parse_message_general(text: str, role: Role) -> ParsedMessage | FormatError:
    """The tolerant parser behind :func:`parse_message`, for any text."""
    if not text or not text.strip():
        return FormatError(FormatErrorKind.EMPTY, "empty message")
    sections, action_labels = _sections(text)
    if action_labels == 0:
        return FormatError(FormatErrorKind.MISSING_ACTION, "no 'Action:' section")
    if action_labels > 1:
        return FormatError(FormatErrorKind.MULTIPLE_ACTION_SECTIONS, f"{action_labels} 'Action:' sections")
    action_body = sections["action"].splitlines()[0].strip(_STRIP_CHARS) if sections["action"] else ""
    if not action_body:
        return FormatError(FormatErrorKind.MISSING_ACTION, "empty 'Action:' section")
    action = parse_action(action_body, role)
    if isinstance(action, FormatError):
        return action
    return ParsedMessage(thought=sections.get("thought", ""), talk=sections.get("talk", ""), action=action)


def format_message(thought: str, talk: str, action: Action) -> str:
    """Render a message in the canonical format the parser reads back exactly."""
    return f"Thought: {thought}\nTalk: {talk}\nAction: {action.render()}"


def visible_text(talk: str, action: Action) -> str:
    """What the other side is shown of a message: its Talk and Action, never its Thought."""
    return f"Talk: {talk}\nAction: {action.render()}"
