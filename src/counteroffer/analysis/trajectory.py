"""An episode's offer trajectory: every price each side put on the table, turn by turn, as the other side saw it."""

from __future__ import annotations

from dataclasses import dataclass

from counteroffer.game.messages import ActionKind, Role
from counteroffer.game.records import EpisodeRecord


@dataclass(frozen=True, slots=True)
class Offer:
    turn: int
    role: Role
    kind: ActionKind  # BUY, SELL or DEAL
    price: float


def offer_trajectory(record: EpisodeRecord) -> list[Offer]:
    """The offers and deal of an episode in play order, from the actions that took effect (after the regulator)."""
    return [
        Offer(message.turn, message.role, message.shown_action.kind, message.shown_action.price)
        for message in record.messages
        if message.shown_action is not None
        and message.shown_action.price is not None
        and message.shown_action.kind is not ActionKind.REJECT
    ]
