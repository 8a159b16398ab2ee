"""The buyer that argues: the reader's prices (:class:`~counteroffer.agents.scripted.buyers.ReaderBuyer`) and
checked arguments (:mod:`counteroffer.game.arguments`) in its Talk, for the sellers that read them
(:mod:`counteroffer.agents.scripted.reading`). Its ``policy`` says which:

- ``none``: no argument; the reader itself, in words.
- ``random``: one kind drawn from the episode's seed among those it can make true, whatever the seller hints (the
  seller's lever is drawn from the same seed under another name, so the two are unrelated): the teacher whose
  demonstrations show arguments without telling which one pays.
- ``hint``: the kind the seller's Talk hinted at (any wording of :data:`~counteroffer.game.hints.HINTS`,
  held out or not), once: close to the best a buyer that reads can do.
- ``all``: every kind it can make true, every turn, keeping no promise: the foil that shows arguing everything
  every turn does not pay.

Its arguments are true: a market price is the lowest public price, named ("The average price is $274.56."); a
listing fact quotes the first of :func:`~counteroffer.game.arguments.listing_facts`; a payment promise is
:data:`PROMISE`, made at the turn before the last (a promise is kept by a deal within one more turn), after which
it takes the seller's price if it is within its budget. A market price or a listing fact is argued in the buyer's
first message after the seller has spoken (``hint``: after the hint): ``random`` and ``hint`` differ only in the
kind they choose.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import ClassVar

from counteroffer.agents.base import TurnRequest
from counteroffer.agents.scripted.buyers import ReaderBuyer
from counteroffer.game.arguments import ArgumentKind, Listing, listing_facts
from counteroffer.game.hints import hinted_lever
from counteroffer.game.messages import Action, format_money
from counteroffer.game.negotiation import RoleView
from counteroffer.seeding import derive_seed

PROMISE = "I can pay today if we agree now."


class ArguePolicy(StrEnum):
    NONE = "none"
    RANDOM = "random"
    HINT = "hint"
    ALL = "all"


def argument_sentence(kind: ArgumentKind, listing: Listing) -> str | None:
    """A true argument of ``kind`` about ``listing``, or None where there is none (no public price, no fact)."""
    if kind is ArgumentKind.MARKET_PRICE:
        if not listing.prices:
            return None
        name, price = min(listing.prices, key=lambda named: named[1])
        return f"The {name} price is {format_money(price)}."
    if kind is ArgumentKind.LISTING_FACT:
        facts = listing_facts(listing)
        return f'The listing says "{facts[0]}".' if facts else None
    return PROMISE


class ArguingBuyer(ReaderBuyer):
    reads_talk = True  # the hint it reads, and its own promise
    GRID: ClassVar[Mapping[str, tuple[float | str, ...]]] = {"policy": tuple(policy.value for policy in ArguePolicy)}

    def __init__(
        self,
        spec: str,
        policy: ArguePolicy = ArguePolicy.HINT,
        opening: float = 0.1,
        split: float = 0.5,
        digits: int = 2,
    ) -> None:
        super().__init__(spec, opening, split, digits)
        self.policy = policy

    def arguments(self, request: TurnRequest) -> list[str]:
        """The sentences it argues this turn (a pure function of the request)."""
        view = request.view
        if self.policy is ArguePolicy.NONE:
            return []
        sentences = {kind: argument_sentence(kind, view.listing) for kind in ArgumentKind}
        if self.policy is ArguePolicy.ALL:
            return [sentence for sentence in sentences.values() if sentence is not None]
        if self.policy is ArguePolicy.RANDOM:
            if all(message.role is view.role for message in view.history):
                return []  # it speaks when ``hint`` would, after the seller has: only its choice of kind is blind
            available = [kind for kind, sentence in sentences.items() if sentence is not None]
            kind: ArgumentKind | None = available[derive_seed(request.seed, "argument") % len(available)]
        else:
            kind = hinted_lever(view.history)
        sentence = sentences[kind] if kind is not None else None
        if sentence is None or any(sentence in raw for raw in view.own_messages):
            return []
        if kind is ArgumentKind.QUICK_PAYMENT and view.turn < view.max_turns - 1:
            return []
        return [sentence]

    def talk(self, request: TurnRequest, action: Action) -> str:
        return " ".join([*self.arguments(request), super().talk(request, action)])

    def plan(self, view: RoleView) -> tuple[Action, str]:
        if self.policy is not ArguePolicy.ALL and view.own_messages and PROMISE in view.own_messages[-1]:
            return self.accept_or_walk(view, "I promised to pay now; ")
        return super().plan(view)
