"""Scripted buyers. None ever offers above its budget.

- :class:`ConcedingBuyer` opens at ``opening × budget`` and concedes towards the budget, reaching it at the last
  turn along ``(t - 1) / (T - 1)) ** (1 / concession)``; it accepts the seller's standing price once that is at
  or below the offer it would make now. ``naive`` opens near the budget (0.95) and concedes linearly;
  ``anchor`` opens low (0.5) and concedes linearly by default (both parameters overridable).
"""

from __future__ import annotations

from counteroffer.agents.base import TurnRequest
from counteroffer.agents.scripted.base import ScriptedAgent, floor_cents
from counteroffer.game.messages import Action, ActionKind, Role
from counteroffer.game.negotiation import RoleView


class ConcedingBuyer(ScriptedAgent):
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
