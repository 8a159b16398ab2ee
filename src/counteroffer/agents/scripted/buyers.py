"""Scripted buyers. None ever offers above its budget.

- :class:`ConcedingBuyer` opens at ``opening × budget`` and concedes towards the budget, reaching it at the last
  turn along ``(t - 1) / (T - 1)) ** (1 / concession)``; it accepts the seller's standing price once that is at
  or below the offer it would make now. ``naive`` opens near the budget (0.95) and concedes linearly;
  ``anchor`` opens low (0.5) and concedes linearly by default (both parameters overridable).
- :class:`PatientBuyer` opens at ``opening × budget`` and holds that offer; at the last turn it accepts the
  seller's standing price if it is within the budget and walks away otherwise. Against sellers that concede with
  time whatever the buyer does, waiting is what pays.
- :class:`ReaderBuyer` reads how the seller moves. It opens like the patient buyer, then offers ``split`` of the
  seller's first counter-offer once (a seller that mirrors concessions meets it halfway), and holds. At the last
  turn it accepts a seller that stopped moving (within the budget, else it walks away), and offers a seller still
  conceding its price rounded down to ``digits`` significant digits, or its budget rounded down if that is lower
  (a seller that concedes with time takes anything above its floor at the end). Every number it writes is one a
  small model can produce by copying digits (a tenth, a half, leading digits), and its Thoughts state the budget
  comparison each action rests on.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from counteroffer.agents.base import TurnRequest
from counteroffer.agents.scripted.base import ScriptedAgent, floor_cents
from counteroffer.agents.scripted.phrases import TERSE_BUYER_PHRASES
from counteroffer.game.messages import Action, ActionKind, Role, format_money
from counteroffer.game.negotiation import RoleView
from counteroffer.game.quotes import round_down  # the misquote checker cuts digits the same way
from counteroffer.game.reward import PRICE_TOLERANCE


class ConcedingBuyer(ScriptedAgent):
    # The settings `counteroffer baselines` searches (as ``scripted:anchor``): from a fiftieth to seven tenths of
    # the budget, conceding from very late (0.3) to very early (3).
    GRID: ClassVar[Mapping[str, tuple[float, ...]]] = {
        "opening": (0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7),
        "concession": (0.3, 0.5, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0),
    }

    def __init__(self, spec: str, opening: float, concession: float = 1.0) -> None:
        super().__init__(spec, Role.BUYER)
        if not 0 < opening <= 1:
            raise ValueError(f"the opening ratio must be in (0, 1], got {opening}")
        if concession <= 0:
            raise ValueError(f"the concession exponent must be positive, got {concession}")
        self.opening = opening
        self.concession = concession

    def offer(self, view: RoleView) -> float:
        budget = view.private_value
        progress = (view.turn - 1) / (view.max_turns - 1) if view.max_turns > 1 else 1.0
        ratio = self.opening + (1 - self.opening) * progress ** (1 / self.concession)
        return max(0.01, floor_cents(min(budget, ratio * budget)))

    def decide(self, view: RoleView, request: TurnRequest) -> Action:
        offer = self.offer(view)
        if view.turn > 1 and view.last_sell <= offer:
            return Action(ActionKind.DEAL, view.last_sell)
        return Action(ActionKind.BUY, offer)


def _ratio_words(ratio: float) -> str:
    return {0.5: "Half", 0.1: "A tenth", 0.01: "A hundredth"}.get(ratio, f"{ratio:g} times")


def _versus_budget(price: float, budget: float) -> str:
    relation = "within" if price <= budget + PRICE_TOLERANCE else "above"
    return f"{format_money(price)} is {relation} {format_money(budget)}"


class PatientBuyer(ScriptedAgent):
    buyer_phrases = TERSE_BUYER_PHRASES
    GRID: ClassVar[Mapping[str, tuple[float, ...]]] = {"opening": (0.01, 0.02, 0.05, 0.1, 0.3, 0.5)}

    def __init__(self, spec: str, opening: float = 0.1) -> None:
        super().__init__(spec, Role.BUYER)
        if not 0 < opening <= 1:
            raise ValueError(f"the opening ratio must be in (0, 1], got {opening}")
        self.opening = opening

    def decide(self, view: RoleView, request: TurnRequest) -> Action:
        return self.plan(view)[0]

    def thought(self, view: RoleView, action: Action) -> str:
        return self.plan(view)[1]

    def plan(self, view: RoleView) -> tuple[Action, str]:
        """The action for this turn and the Thought that explains it (both pure functions of the view)."""
        budget = view.private_value
        if view.turn == 1:
            offer = max(0.01, floor_cents(self.opening * budget))
            words = _ratio_words(self.opening).lower()
            return Action(ActionKind.BUY, offer), f"Budget {format_money(budget)}; {words} is {format_money(offer)}."
        if view.is_last_turn:
            return self.last_turn(view)
        return self.middle_turn(view)

    def own_offer(self, view: RoleView) -> float:
        offer = self._own_last_offer(view)
        return offer if offer is not None else floor_cents(self.opening * view.private_value)

    def middle_turn(self, view: RoleView) -> tuple[Action, str]:
        return self.hold(view, self.own_offer(view))

    def hold(self, view: RoleView, offer: float, reasoning: str = "") -> tuple[Action, str]:
        """Offer ``offer`` (or take the seller's price if that is already as low)."""
        price = view.last_sell
        comparison = _versus_budget(price, view.private_value)
        if price <= offer + PRICE_TOLERANCE:
            return Action(ActionKind.DEAL, price), f"{comparison} and not above my offer. I accept."
        return Action(ActionKind.BUY, offer), f"{comparison}. {reasoning or 'I hold.'}"

    def last_turn(self, view: RoleView) -> tuple[Action, str]:
        return self.accept_or_walk(view)

    @staticmethod
    def accept_or_walk(view: RoleView, lead: str = "") -> tuple[Action, str]:
        price = view.last_sell
        comparison = lead + _versus_budget(price, view.private_value)
        if price <= view.private_value + PRICE_TOLERANCE:
            return Action(ActionKind.DEAL, price), f"{comparison}. I accept."
        return Action(ActionKind.QUIT), f"{comparison}. I walk away."


class ReaderBuyer(PatientBuyer):
    GRID: ClassVar[Mapping[str, tuple[float, ...]]] = {
        "opening": (0.01, 0.02, 0.05, 0.1, 0.2, 0.3),
        "split": (0.3, 0.4, 0.5, 0.6, 0.7),
        "digits": (1, 2, 3),
    }

    def __init__(self, spec: str, opening: float = 0.1, split: float = 0.5, digits: int = 2) -> None:
        super().__init__(spec, opening)
        if not 0 < split < 1:
            raise ValueError(f"the split ratio must be in (0, 1), got {split}")
        if not 1 <= digits <= 6 or digits != int(digits):
            raise ValueError(f"digits must be a whole number from 1 to 6, got {digits}")
        self.split = split
        self.digits = int(digits)

    def middle_turn(self, view: RoleView) -> tuple[Action, str]:
        held = self.own_offer(view)
        if view.turn != 2:
            return self.hold(view, held)
        price, budget = view.last_sell, view.private_value
        share = floor_cents(self.split * price)
        offer = min(share, floor_cents(budget))
        if offer <= held:
            return self.hold(view, held)
        reasoning = f"{_ratio_words(self.split)} of it is {format_money(share)}"
        if share > offer:  # the share is over the budget: say so rather than call the budget the share
            reasoning += f", above {format_money(budget)}; I offer {format_money(offer)}"
        return self.hold(view, offer, reasoning + ".")

    def last_turn(self, view: RoleView) -> tuple[Action, str]:
        price, budget = view.last_sell, view.private_value
        sells = [m.action.price for m in view.history if m.role is Role.SELLER and m.action.kind is ActionKind.SELL]
        previous = sells[-2] if len(sells) >= 2 else view.asking_price
        if previous - price < 0.005:  # it stopped moving: it will not take less than it asks
            return self.accept_or_walk(view, "No move; ")
        target = round_down(price, self.digits)
        relation = "within" if target <= budget + PRICE_TOLERANCE else "above"
        steps = f"{format_money(price)} rounds down to {format_money(target)}, {relation} {format_money(budget)}"
        if target > budget + PRICE_TOLERANCE:  # the seller's floor may still be below the budget: offer that
            target = round_down(budget, self.digits)
            steps += f"; {format_money(budget)} rounds down to {format_money(target)}"
        if target <= self.own_offer(view) + PRICE_TOLERANCE:
            return self.accept_or_walk(view)
        return Action(ActionKind.BUY, target), f"{steps}."
