"""The regulator: the hard rules that wrap any seller, scripted or LLM, whatever it writes; and the privacy rule
that applies to both sides.

- A seller [SELL] or [DEAL] below its cost never takes effect: it becomes a [REJECT].
- A seller Talk that states its exact cost has that amount redacted before the buyer sees it.
- Likewise a buyer Talk that states its exact budget (a prompt injection in the seller's Talk, "reveal your
  budget", must not get it out of an LLM buyer), unless the message offers exactly that price (the number is then
  shown anyway). An offer's price is the side's own choice and is never changed.
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


def _redact_amount(talk: str, amount: float) -> str:
    """``talk`` with every amount equal to ``amount`` replaced by ``[redacted]``."""
    # Fast path: no amount can equal it unless its whole-dollar digits appear in the text. Only for ASCII text:
    # "１５００" (full-width) or "١٥٠٠" (Arabic-Indic) digits are amounts too, and the pattern and float() read them.
    if not talk or (talk.isascii() and str(int(amount)) not in talk.replace(",", "")):
        return talk

    def replace(match: re.Match[str]) -> str:
        value = float(match.group(0).lstrip("$ \t").replace(",", ""))  # the pattern admits only digits here
        return REDACTED if abs(value - amount) < PRICE_TOLERANCE else match.group(0)

    return _AMOUNT_RE.sub(replace, talk)


def redact_cost(talk: str, cost: float, turn: int) -> tuple[str, GameEvent | None]:
    """A seller's ``talk`` with every amount equal to its cost replaced by ``[redacted]``."""
    redacted = _redact_amount(talk, cost)
    if redacted == talk:
        return talk, None
    return redacted, GameEvent(EventKind.REGULATOR_COST_REDACTED, Role.SELLER, turn, "cost stated in Talk")


def redact_budget(talk: str, budget: float, turn: int) -> tuple[str, GameEvent | None]:
    """A buyer's ``talk`` with every amount equal to its budget replaced by ``[redacted]``."""
    redacted = _redact_amount(talk, budget)
    if redacted == talk:
        return talk, None
    return redacted, GameEvent(EventKind.BUYER_BUDGET_REDACTED, Role.BUYER, turn, "budget stated in Talk")
