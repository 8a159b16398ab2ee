"""The oracle buyer: it knows the seller's cost and strategy, and plays the best plan it can find.

It is the upper bound used to judge trained buyers. Before the first turn of a scenario it replays the game
against the real scripted seller (same spec, same persona, same rules and regulator) for every candidate, and
keeps the one with the highest reward (ties: fewer turns, then the earlier candidate). The candidates:

- its own plans: open at ``opening × final`` and move to ``final`` either linearly or only at the last turn,
  accepting the seller's standing price once it is at or below ``final``; ``final`` runs over a grid from the
  seller's floor to the budget;
- every registered scripted buyer (``rivals``: each family's baseline grid and defaults), played as it would
  play, so that no scripted buyer of the registry can beat the oracle on any scenario: a bound, not an estimate;
- walking away, which is worth 0 (conflicting interest, an unyielding seller).

Because scripted sellers decide deterministically, a candidate's simulated outcome is exactly what happens in the
real episode. Where words matter (a seller that reads the buyer's arguments, a rival that reads the seller's hints
or its own promises: ``reads_talk``), the simulation plays both sides' whole messages, and the oracle playing a
rival writes the rival's messages, words and all; elsewhere actions alone are simulated, which is faster and ends
the same. The oracle's own plans argue nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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

    def decide(self, view: RoleView, request: TurnRequest | None = None) -> Action:
        if self.walk_away:
            return Action(ActionKind.BUY, self.opening) if view.turn == 1 else Action(ActionKind.QUIT)
        if view.turn > 1 and view.last_sell <= self.final:
            return Action(ActionKind.DEAL, view.last_sell)
        return Action(ActionKind.BUY, self.offer(view.turn, view.max_turns))


class OracleBuyer(ScriptedAgent):
    needs_full_scenario = True

    def __init__(self, spec: str, rivals: Callable[[], Sequence[str]] = tuple) -> None:
        """``rivals``: the specs of the scripted buyers whose play the oracle also considers (the registry passes
        every registered family's grid and defaults); built on first use."""
        super().__init__(spec, Role.BUYER)
        self._seller: ScriptedAgent | None = None
        self._rival_specs = rivals
        self._rivals: list[ScriptedAgent] | None = None
        self._plans: dict[tuple[str, int], Plan | ScriptedAgent] = {}

    def bind_opponent(self, opponent: Agent) -> None:
        if not isinstance(opponent, ScriptedAgent):
            raise AgentSpecError(
                f"the oracle buyer simulates its opponent and needs a scripted seller, not {opponent.spec!r}"
            )
        self._seller = opponent
        self._plans.clear()  # plans were searched against the previous opponent

    def plan(self, request: TurnRequest) -> Plan | ScriptedAgent:
        """The best candidate for this request's scenario, searched on first use."""
        if request.scenario is None:
            raise RuntimeError("the oracle buyer needs the full scenario in its turn requests")
        # A seller that reads words draws its lever from the episode's seed: each seed gets its own plan.
        seed = request.seed if self._seller is not None and self._seller.reads_talk else None
        key = (request.scenario.scenario_id, request.view.max_turns, seed)
        if key not in self._plans:
            self._plans[key] = self.best_plan(request.scenario, request.view.max_turns, request.seed)
        return self._plans[key]

    def decide(self, view: RoleView, request: TurnRequest) -> Action:
        return self.plan(request).decide(view, request)

    def message(self, request: TurnRequest) -> str:
        plan = self.plan(request)
        return plan.message(request) if isinstance(plan, ScriptedAgent) else super().message(request)

    def rivals(self) -> list[ScriptedAgent]:
        if self._rivals is None:
            from counteroffer.agents.registry import make_agent  # the registry builds the oracle: import late

            agents = [make_agent(spec, Role.BUYER) for spec in self._rival_specs()]
            self._rivals = [agent for agent in agents if isinstance(agent, ScriptedAgent)]
        return self._rivals

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

    def best_plan(self, scenario: Scenario, max_turns: int, seed: int) -> Plan | ScriptedAgent:
        """The candidate with the highest simulated reward on this scenario (see the module's docstring)."""
        if self._seller is None:
            raise RuntimeError("bind_opponent() was not called with the seller")
        walk_away = Plan(max(0.01, floor_cents(0.2 * scenario.budget)), 0.0, linear=False, walk_away=True)
        best: Plan | ScriptedAgent = walk_away
        best_score = (0.0, -2)
        config = GameConfig(max_turns=max_turns)
        for candidate in [*self.candidate_plans(scenario), *self.rivals()]:
            game = Negotiation(scenario, config)
            spoken = isinstance(candidate, ScriptedAgent) and (candidate.reads_talk or self._seller.reads_talk)
            while not game.done:
                view = game.view(game.next_role)
                player = candidate if view.role is Role.BUYER else self._seller
                request = TurnRequest(view, seed)
                if spoken:
                    game.step(player.message(request))
                else:
                    game.play(player.decide(view, request))
            score = (game.reward, -game.turn)
            if score > best_score:
                best, best_score = candidate, score
        return best
