"""Hints: the words in which a seller that reads the buyer (``agents.scripted.reading``, or a model trained on
it) tells what would move it, and how the game recognizes them in a transcript. Pure data and matching; the game
layer, so the metrics can say whether a buyer's arguments answered the hint.

Each episode a reading seller has one hidden **lever**, an :class:`~counteroffer.game.arguments.ArgumentKind`. It
never names it: each of its offers opens with one wording of :data:`HINTS` for its lever ("I need the money this
week", not "promise to pay today"). One wording per lever is held out (``held_out``), so a buyer can be tested on
words it never trained on.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from counteroffer.game.arguments import Argument, ArgumentKind
from counteroffer.game.messages import Role
from counteroffer.seeding import derive_seed


class HintSet(StrEnum):
    ALL = "all"
    TRAIN = "train"  # the wordings not held out
    TEST = "test"  # the held-out wordings only


@dataclass(frozen=True, slots=True)
class Hint:
    id: str  # stable, to name a wording in results and configs whatever its text becomes
    lever: ArgumentKind
    text: str
    held_out: bool = False


HINTS: tuple[Hint, ...] = (
    Hint("market-know", ArgumentKind.MARKET_PRICE, "I know what these go for, so don't try to fool me."),
    Hint("market-unchecked", ArgumentKind.MARKET_PRICE, "I haven't checked prices elsewhere in a while."),
    Hint("market-memory", ArgumentKind.MARKET_PRICE, "I priced it from memory, to be honest."),
    Hint("market-seen", ArgumentKind.MARKET_PRICE, "If you've seen it for less out there, I'm listening.", True),
    Hint("listing-imperfect", ArgumentKind.LISTING_FACT, "It's not perfect, I'll admit."),
    Hint("listing-hurry", ArgumentKind.LISTING_FACT, "I wrote the listing in a hurry."),
    Hint("listing-all", ArgumentKind.LISTING_FACT, "Everything about it is in the listing, the good and the bad."),
    Hint("listing-flawless", ArgumentKind.LISTING_FACT, "I won't pretend it's flawless.", True),
    Hint("payment-week", ArgumentKind.QUICK_PAYMENT, "I need the money this week."),
    Hint("payment-moving", ArgumentKind.QUICK_PAYMENT, "I'm moving soon and want this gone."),
    Hint("payment-rent", ArgumentKind.QUICK_PAYMENT, "Rent's due, honestly."),
    Hint("payment-waiting", ArgumentKind.QUICK_PAYMENT, "I'd rather not wait around for buyers.", True),
)


def draw_lever(seed: int, levers: Sequence[ArgumentKind]) -> ArgumentKind:
    """An episode's hidden lever among ``levers``: a function of its seed alone (a scripted reading seller and an
    LLM seller told its lever in its prompt draw the same one)."""
    return levers[derive_seed(seed, "lever") % len(levers)]


def parse_levers(words: str) -> tuple[ArgumentKind, ...]:
    """``"market_price,listing_fact"`` as argument kinds, in :class:`ArgumentKind`'s order whatever the order
    written (the lever drawn from a seed must not depend on it); every kind for ``""`` or ``"all"``."""
    if words in ("", "all"):
        return tuple(ArgumentKind)
    named = {ArgumentKind(word.strip()) for word in words.split(",")}
    return tuple(kind for kind in ArgumentKind if kind in named)


def hint_texts(lever: ArgumentKind, hints: HintSet = HintSet.ALL) -> tuple[str, ...]:
    """The wordings of ``lever``'s hint in the set ``hints``."""
    return tuple(
        hint.text
        for hint in HINTS
        if hint.lever is lever and (hints is HintSet.ALL or hint.held_out is (hints is HintSet.TEST))
    )


class Spoken(Protocol):
    """A message's role and Talk (a live view's message or a record's)."""

    role: Role
    talk: str


def hinted_lever(messages: Iterable[Spoken], role: Role = Role.SELLER) -> ArgumentKind | None:
    """The lever ``role``'s Talk first hinted at (any wording of :data:`HINTS`), if any."""
    for message in messages:
        if message.role is role:
            for hint in HINTS:
                if hint.text in message.talk:
                    return hint.lever
    return None


def argument_match(arguments: Sequence[Argument], lever: ArgumentKind | None) -> bool | None:
    """Whether the buyer answered the hint: it argued, and every argument it made is true and of the hinted lever
    (one wrong, false or off-lever argument is a miss; so is none). None when the seller hinted at no lever."""
    if lever is None:
        return None
    return bool(arguments) and all(argument.true is not False and argument.kind is lever for argument in arguments)
