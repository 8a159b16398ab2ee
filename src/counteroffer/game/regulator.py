"""The regulator: the hard rules that wrap any seller, scripted or LLM, whatever it writes.

- A seller [SELL] or [DEAL] below its cost never takes effect: it becomes a [REJECT].
- A seller Talk that states its exact cost has that amount redacted before the buyer sees it.
Each intervention is returned as a typed event for the episode record.
"""

from __future__ import annotations

import re

from counteroffer.game.messages import Action, ActionKind, Role
from counteroffer.game.records import EventKind, GameEvent
from counteroffer.game.reward import PRICE_TOLERANCE, VALUE_EPSILON

REDACTED = "[redacted]"
# An amount: an optional "$" with the spaces after it (never the spaces before a bare number: "paid 50" keeps its
# space). No boundary before it, on purpose: "USD50" is redacted too, at the price of over-redacting "A50".
_AMOUNT_RE = re.compile(r"(?:\$\s*)?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?")


def regulate_seller_action(action: Action, cost: float, turn: int) -> tuple[Action, GameEvent | None]:
    """The action that takes effect for a seller's intended ``action``, and the intervention if any."""
    if action.price is None or action.price >= cost - VALUE_EPSILON:
        return action, None
    kind = (
        EventKind.REGULATOR_DEAL_BELOW_COST if action.kind is ActionKind.DEAL else EventKind.REGULATOR_SELL_BELOW_COST
    )
    return Action(ActionKind.REJECT), GameEvent(kind, Role.SELLER, turn, f"{action.render()} blocked")


def redact_cost(talk: str, cost: float, turn: int) -> tuple[str, GameEvent | None]:
    """``talk`` with every amount equal to the cost replaced by ``[redacted]``."""
    # Fast path: no amount can equal the cost unless its whole-dollar digits appear in the text.
    if not talk or str(int(cost)) not in talk.replace(",", ""):
        return talk, None

    def replace(match: re.Match[str]) -> str:
        value = float(match.group(0).lstrip("$ \t").replace(",", ""))  # the pattern admits only digits here
        return REDACTED if abs(value - cost) < PRICE_TOLERANCE else match.group(0)

    redacted = _AMOUNT_RE.sub(replace, talk)
    if redacted == talk:
        return talk, None
    return redacted, GameEvent(EventKind.REGULATOR_COST_REDACTED, Role.SELLER, turn, "cost stated in Talk")
