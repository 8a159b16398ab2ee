"""Sellers that read the buyer: scripted sellers whose concessions depend on the buyer's checked arguments
(:mod:`counteroffer.game.arguments`), so that a buyer's words can change its reward, and only true, relevant
words can.

Each episode the seller draws from its seed a hidden **lever**: the one :class:`ArgumentKind` that would move it
(from ``levers``, every kind by default). It hints at it only in its own Talk: each [SELL] opens with one wording
of :data:`~counteroffer.game.hints.HINTS` for its lever, picked by seed and turn; ``hints=train`` uses the
wordings not held out, ``hints=test`` only the held-out ones (one per lever), so a buyer can be tested on words it
never trained on, and ``levers=`` likewise holds a lever kind out. No hint names the argument ("I need the money
this week", not "promise to pay today").

The seller prices like its base strategy (:class:`~counteroffer.agents.scripted.sellers.ConcessionSeller` or
:class:`~counteroffer.agents.scripted.sellers.TitForTatSeller`, with its persona's floor, pace and words) towards
a **held floor** that keeps :data:`HELD_MARGIN` of the margin between its persona's floor and the asking price.
It reads every argument the buyer's Talk has shown it so far, checked by the game:

- the first **true argument of its lever** moves the held floor towards the cost: ``floor = c + (held - c) ×
  LEVER_KEPT`` (c: the first cent above the cost), and the price it names at once drops by as much as the floor
  did (or follows the base strategy to the lower floor, if that is lower);
- a **false claim** (a price no one was shown, a quote not in the listing, a broken promise to pay at once)
  hardens it for the rest of the episode: it concedes nothing more, and never names less than the held floor,
  whatever lever it had;
- a **wasted argument** (true but not its lever, or a kind already argued) halves the concession it makes in reply
  (:data:`WASTE_KEPT` per argument), so arguing everything every turn loses to arguing the right thing once.

A promise to pay is taken at its word until it is broken (its truth is known only a turn later). Whatever is said,
the seller never names or accepts a price below the first cent above its cost, and its decisions are pure
functions of the view and the episode's seed, so the oracle can simulate it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from counteroffer.agents.base import TurnRequest
from counteroffer.agents.scripted.base import ceil_cents, seller_floor
from counteroffer.agents.scripted.phrases import pick
from counteroffer.agents.scripted.sellers import ScriptedSeller
from counteroffer.game.arguments import Argument, ArgumentKind, shown_arguments
from counteroffer.game.hints import HintSet, draw_lever, hint_texts
from counteroffer.game.messages import Action, ActionKind
from counteroffer.game.negotiation import RoleView

HELD_MARGIN = 0.5  # share of the margin above its persona's floor a reading seller keeps until its lever is pulled
LEVER_KEPT = 0.25  # share of the held floor's margin above cost that the lever leaves
WASTE_KEPT = 0.5  # share of its concession a reading seller still makes per wasted argument


@dataclass(frozen=True, slots=True)
class Reading:
    """What the buyer's arguments so far did to a reading seller."""

    moved: bool  # the lever's true argument was made
    hardened: bool  # a false claim was made
    moved_now: bool  # the lever's argument is in the buyer's latest message
    wasted_now: int  # wasted arguments in the buyer's latest message


def read(arguments: Sequence[Argument], lever: ArgumentKind, turn: int) -> Reading:
    """How ``arguments`` (in order, the latest message's at ``turn``) move a seller whose lever is ``lever``."""
    argued: set[ArgumentKind] = set()
    moved = hardened = moved_now = False
    wasted_now = 0
    for argument in arguments:
        if argument.true is False:
            hardened = True
        elif argument.kind is lever and lever not in argued:
            moved, moved_now = True, argument.turn == turn
        elif argument.turn == turn:
            wasted_now += 1
        argued.add(argument.kind)
    return Reading(moved, hardened, moved_now, wasted_now)


class ReadingSeller(ScriptedSeller):
    """A scripted seller that reads the buyer's checked arguments (see the module's docstring)."""

    reads_talk = True

    def __init__(
        self,
        spec: str,
        base: ScriptedSeller,
        levers: Sequence[ArgumentKind] = tuple(ArgumentKind),
        hints: HintSet = HintSet.ALL,
    ) -> None:
        super().__init__(spec, base.persona)
        if not levers:
            raise ValueError("a reading seller needs at least one lever")
        self.base = base
        self.levers = tuple(levers)
        self.hints = {lever: hint_texts(lever, hints) for lever in self.levers}

    def lever(self, seed: int) -> ArgumentKind:
        """The episode's hidden lever: a function of its seed alone."""
        return draw_lever(seed, self.levers)

    def target(self, view: RoleView, floor: float) -> float:
        return self.base.target(view, floor)

    def decide(self, view: RoleView, request: TurnRequest) -> Action:
        reading = read(shown_arguments(view.history, view.listing), self.lever(request.seed), view.turn)
        persona_floor = self.floor(view)
        held = ceil_cents(persona_floor + HELD_MARGIN * max(0.0, view.asking_price - persona_floor))
        previous = self._own_last_offer(view) or view.asking_price
        if reading.hardened:
            target = max(previous, held)
        else:
            floor = held
            if reading.moved:
                cost_floor = seller_floor(view.private_value)
                floor = ceil_cents(cost_floor + (held - cost_floor) * LEVER_KEPT)
            proposed = max(floor, self.target(view, floor))
            if reading.moved_now:  # the floor's drop, at once
                proposed = min(proposed, max(floor, previous - (held - floor)))
            concession = max(0.0, previous - proposed) * WASTE_KEPT**reading.wasted_now
            target = max(floor, ceil_cents(previous - concession))
        if view.last_buy is not None and view.last_buy >= target:
            return Action(ActionKind.DEAL, view.last_buy)
        return Action(ActionKind.SELL, target)

    def talk(self, request: TurnRequest, action: Action) -> str:
        words = super().talk(request, action)
        if action.kind is not ActionKind.SELL:
            return words
        return f"{pick(self.hints[self.lever(request.seed)], request.seed, request.view.turn)} {words}"
