"""The oracle buyer: it knows the seller's cost and strategy, and plays the best plan it can find.

It is the reachable upper bound used to judge trained buyers. Before the first turn of a scenario it replays the
game against a copy of the real scripted seller (same spec, same persona, same rules and regulator) for a family
of plans, and keeps the plan with the highest reward (ties: fewer turns). A plan opens at ``opening × final``
and moves to ``final`` either linearly or only at the last turn, and accepts the seller's standing price once it
is at or below ``final``. ``final`` runs over a grid from the seller's floor to the budget. When no plan earns a
positive reward (conflicting interest, an unyielding seller) the oracle walks away, which is worth 0.

Because scripted sellers decide deterministically, the plan's simulated outcome is exactly what happens in the
real episode.
"""

from __future__ import annotations

from dataclasses import dataclass

from counteroffer.agents.base import Agent, AgentSpecError, TurnRequest
from counteroffer.agents.scripted.base import ScriptedAgent, ceil_cents, floor_cents, seller_floor
from counteroffer.catalog.models import Scenario
from counteroffer.game.messages import Action, ActionKind, Role
from counteroffer.game.negotiation import GameConfig, Negotiation, RoleView

FINAL_GRID_STEPS = 40
OPENING_RATIOS = (0.02, 0.05, 0.1, 0.2, 0.5, 0.8, 1.0)  # a tit-for-tat seller rewards the lowest openings


@dataclass(frozen=True, slots=True)
class Plan:
    opening: float
    final: float
    linear: bool  # concede linearly; else hold the opening and jump to ``final`` at the last turn
    walk_away: bool = False

    def offer(self, turn: int, max_turns: int) -> float:
        if turn >= max_turns:
            return self.final
        if not self.linear:
            return self.opening
        share = (turn - 1) / (max_turns - 1)
        return floor_cents(self.opening + (self.final - self.opening) * share)

    def decide(self, view: RoleView) -> Action:
        if self.walk_away:
            return Action(ActionKind.BUY, self.opening) if view.turn == 1 else Action(ActionKind.QUIT)
        if view.turn > 1 and view.last_sell <= self.final:
            return Action(ActionKind.DEAL, view.last_sell)
        return Action(ActionKind.BUY, self.offer(view.turn, view.max_turns))


class OracleBuyer(ScriptedAgent):
    needs_full_scenario = True

    def __init__(self, spec: str) -> None:
        super().__init__(spec, Role.BUYER)
        self._seller: ScriptedAgent | None = None
        self._plans: dict[tuple[str, int], Plan] = {}

    def bind_opponent(self, opponent: Agent) -> None:
        if not isinstance(opponent, ScriptedAgent):
            raise AgentSpecError(
                f"the oracle buyer simulates its opponent and needs a scripted seller, not {opponent.spec!r}"
            )
        self._seller = opponent
        self._plans.clear()  # plans were searched against the previous opponent

    def decide(self, view: RoleView, request: TurnRequest) -> Action:
        if request.scenario is None:
            raise RuntimeError("the oracle buyer needs the full scenario in its turn requests")
        key = (request.scenario.scenario_id, view.max_turns)
        if key not in self._plans:
            self._plans[key] = self.best_plan(request.scenario, view.max_turns, request.seed)
        return self._plans[key].decide(view)

    def candidate_plans(self, scenario: Scenario) -> list[Plan]:
        low = seller_floor(scenario.cost)
        high = floor_cents(scenario.budget)
        if high < low:
            return []
        finals = sorted({ceil_cents(low + (high - low) * i / FINAL_GRID_STEPS) for i in range(FINAL_GRID_STEPS + 1)})
        return [
            Plan(max(0.01, floor_cents(ratio * final)), final, linear)
            for final in finals
            if final <= high
            for ratio in OPENING_RATIOS
            for linear in (True, False)
        ]

    def best_plan(self, scenario: Scenario, max_turns: int, seed: int) -> Plan:
        if self._seller is None:
            raise RuntimeError("bind_opponent() was not called with the seller")
        walk_away = Plan(max(0.01, floor_cents(0.2 * scenario.budget)), 0.0, linear=False, walk_away=True)
        best, best_score = walk_away, (0.0, -2)
        config = GameConfig(max_turns=max_turns)
        for plan in self.candidate_plans(scenario):
            game = Negotiation(scenario, config)
            while not game.done:
                view = game.view(game.next_role)
                if view.role is Role.BUYER:
                    action = plan.decide(view)
                else:
                    action = self._seller.decide(view, TurnRequest(view, seed))
                game.play(action)
            score = (game.reward, -game.turn)
            if score > best_score:
                best, best_score = plan, score
        return best
