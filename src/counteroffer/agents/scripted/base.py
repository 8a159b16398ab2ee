"""Shared machinery of scripted agents: a deterministic decision, then wording in the paper's format."""

from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import Sequence
from typing import ClassVar

from counteroffer.agents.base import Agent, AgentFailure, Message, TurnRequest
from counteroffer.agents.scripted.phrases import (
    BUYER_PHRASES,
    SELLER_PHRASES,
    Persona,
    Situation,
    pick,
    short_title,
)
from counteroffer.game.messages import Action, ActionKind, Role, format_message, format_money
from counteroffer.game.negotiation import RoleView
from counteroffer.game.reward import PRICE_TOLERANCE


def ceil_cents(amount: float) -> float:
    return math.ceil(round(amount * 100, 6)) / 100


def floor_cents(amount: float) -> float:
    return math.floor(round(amount * 100, 6)) / 100


def seller_floor(cost: float) -> float:
    """The lowest price a scripted seller names: the first cent strictly above its cost.

    Strictly above, so a scripted seller never states its exact cost (which the regulator would redact).
    """
    return ceil_cents(cost + 0.006)


def progress(turn: int, max_turns: int) -> float:
    """How far through the game a turn is: 1/T at the first turn, 1 at the last."""
    return min(1.0, turn / max_turns)


class ScriptedAgent(Agent):
    """A scripted agent: :meth:`decide` picks the action; the base class writes Thought and Talk around it."""

    buyer_phrases: dict[Situation, tuple[str, ...]] = BUYER_PHRASES
    # Whether its decisions read the episode's Talk (the other side's, or its own): a simulation of it (the
    # oracle's) must then play whole messages, not actions alone.
    reads_talk: ClassVar[bool] = False

    def __init__(self, spec: str, role: Role, persona: Persona = Persona.NEUTRAL) -> None:
        super().__init__(spec, role)
        self.persona = persona

    @abstractmethod
    def decide(self, view: RoleView, request: TurnRequest) -> Action:
        """The action for this turn: a pure function of the view (and, for the oracle, the scenario)."""

    def act(self, requests: Sequence[TurnRequest]) -> list[Message | AgentFailure]:
        return [self.message(request) for request in requests]

    def _own_last_offer(self, view: RoleView) -> float | None:
        offer_kind = ActionKind.BUY if self.role is Role.BUYER else ActionKind.SELL
        for message in reversed(view.history):
            if message.role is self.role and message.action.kind is offer_kind:
                return message.action.price
        return None

    def message(self, request: TurnRequest) -> str:
        """The whole message of one turn: a pure function of the request, as :meth:`decide`."""
        view = request.view
        action = self.decide(view, request)
        return format_message(self.thought(view, action), self.talk(request, action), action)

    def talk(self, request: TurnRequest, action: Action) -> str:
        """The public words around ``action``: a template for its situation, picked by the episode's seed."""
        view = request.view
        situation = self._situation(view, action)
        price = format_money(action.price) if action.price is not None else ""
        if self.role is Role.BUYER:
            template = pick(self.buyer_phrases[situation], request.seed, view.turn)
        else:
            template = pick(SELLER_PHRASES[self.persona][situation], request.seed, view.turn)
        return template.format(title=short_title(view.title), price=price, asking=format_money(view.asking_price))

    def thought(self, view: RoleView, action: Action) -> str:
        """The private reasoning written before ``action``; buyers that imitate well state what it rests on."""
        if self.role is Role.BUYER:
            return f"My budget is {format_money(view.private_value)}; the seller asks {format_money(view.last_sell)}."
        last = format_money(view.last_buy) if view.last_buy is not None else "nothing yet"
        return f"The buyer offers {last}; I must stay above my cost."

    def _situation(self, view: RoleView, action: Action) -> Situation:
        if action.kind is ActionKind.DEAL:
            return Situation.ACCEPT
        if action.kind is ActionKind.QUIT:
            return Situation.WALK
        if action.kind is ActionKind.REJECT:
            return Situation.DECLINE
        if self.role is Role.BUYER and view.turn == 1:
            return Situation.OPEN
        previous = self._own_last_offer(view)
        if previous is not None and action.price is not None and abs(previous - action.price) < PRICE_TOLERANCE:
            return Situation.HOLD
        return Situation.COUNTER
