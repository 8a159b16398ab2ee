"""Scripted sellers. Each never names a price below the first cent above its cost; the regulator would block it
anyway. Decisions are deterministic functions of the view (the oracle buyer relies on that to simulate them).

- :class:`ConcessionSeller`: the time-dependent family of Faratin et al. (1998). Its price at turn t is
  ``floor + (asking - floor) * (1 - (t / T) ** (1 / exponent))``: exponent < 1 concedes late (Boulware),
  1 linearly, > 1 early (Conceder). It accepts an offer at or above the price it would name now.
- :class:`TitForTatSeller`: mirrors the buyer's concessions in dollars (relative tit-for-tat), after a small
  opening concession; accepts an offer at or above its next price.
- :class:`UnyieldingSeller`: holds the asking price until the last turn, then names the midpoint between the
  asking price and its floor.

The ``unyielding`` persona also changes a concession seller's numbers: it keeps 60% of its margin and concedes
half as fast.
"""

from __future__ import annotations

from abc import abstractmethod

from counteroffer.agents.base import TurnRequest
from counteroffer.agents.scripted.base import ScriptedAgent, ceil_cents, progress, seller_floor
from counteroffer.game.messages import Action, ActionKind, Role
from counteroffer.game.negotiation import RoleView
from counteroffer.prompts.personas import Persona

UNYIELDING_MARGIN_KEPT = 0.6
OPENING_GOODWILL = 0.1  # share of the margin a tit-for-tat seller gives up before the buyer has conceded


class ScriptedSeller(ScriptedAgent):
    def __init__(self, spec: str, persona: Persona = Persona.NEUTRAL) -> None:
        super().__init__(spec, Role.SELLER, persona)

    def floor(self, view: RoleView) -> float:
        floor = seller_floor(view.private_value)
        if self.persona is Persona.UNYIELDING:
            floor = ceil_cents(floor + UNYIELDING_MARGIN_KEPT * max(0.0, view.asking_price - floor))
        return floor

    @abstractmethod
    def target(self, view: RoleView, floor: float) -> float:
        """The price this seller would name now, given its floor."""

    def decide(self, view: RoleView, request: TurnRequest) -> Action:
        floor = self.floor(view)
        target = max(floor, ceil_cents(self.target(view, floor)))
        if view.last_buy is not None and view.last_buy >= target:
            return Action(ActionKind.DEAL, view.last_buy)
        return Action(ActionKind.SELL, target)


class ConcessionSeller(ScriptedSeller):
    def __init__(self, spec: str, exponent: float, persona: Persona = Persona.NEUTRAL) -> None:
        super().__init__(spec, persona)
        if exponent <= 0:
            raise ValueError(f"the concession exponent must be positive, got {exponent}")
        self.exponent = exponent / 2 if persona is Persona.UNYIELDING else exponent

    def target(self, view: RoleView, floor: float) -> float:
        start = max(view.asking_price, floor)
        conceded = progress(view.turn, view.max_turns) ** (1 / self.exponent)
        return floor + (start - floor) * (1 - conceded)


class TitForTatSeller(ScriptedSeller):
    def target(self, view: RoleView, floor: float) -> float:
        previous = self._own_last_offer(view) or view.asking_price
        buys = [m.action.price for m in view.history if m.role is Role.BUYER and m.action.kind is ActionKind.BUY]
        if len(buys) >= 2:
            concession = max(0.0, buys[-1] - buys[-2])
        else:
            concession = OPENING_GOODWILL * max(0.0, view.asking_price - floor) if buys else 0.0
        return max(floor, previous - concession)


class UnyieldingSeller(ScriptedSeller):
    def target(self, view: RoleView, floor: float) -> float:
        if not view.is_last_turn:
            return view.asking_price
        return (view.asking_price + floor) / 2
