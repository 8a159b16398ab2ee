"""The rules every finished episode must satisfy, whatever the agents wrote: checked on adversarial episodes and on
hypothesis-generated ones."""

from __future__ import annotations

import math
import re

from counteroffer.game import ActionKind, EpisodeRecord, Outcome, Role, buyer_reward
from counteroffer.game.negotiation import DEFAULT_MAX_TALK_CHARS, TRUNCATION_MARK
from counteroffer.game.reward import PRICE_TOLERANCE, VALUE_EPSILON

_NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")


def mentions(text: str, amount: float) -> bool:
    """Whether ``text`` writes ``amount`` as a number, in any of the usual spellings ("$1,234.50", "1234.5")."""
    for number in _NUMBER.findall(text):
        try:
            if abs(float(number.replace(",", "")) - amount) < PRICE_TOLERANCE:
                return True
        except ValueError:
            continue
    return False


def check_episode(record: EpisodeRecord, max_talk_chars: int = DEFAULT_MAX_TALK_CHARS) -> None:
    """Assert the game's invariants on one finished episode."""
    scenario = record.scenario
    budget, cost = scenario.budget, scenario.cost
    assert record.outcome is not None
    last_buy: float | None = None
    last_sell = scenario.asking_price
    for message in record.messages:
        shown = message.shown_action
        # Every oddity is a typed event: a message that did not parse, or was changed before the other side saw it.
        changed = message.format_error is not None or shown != message.action or message.shown_talk != message.talk
        if changed:
            assert message.events, f"untracked change in {message.raw[:80]!r}"
        if shown is not None and shown.price is not None:
            assert math.isfinite(shown.price) and shown.price > 0
        if message.role is Role.SELLER:
            # The regulator: nothing the seller does takes effect below its cost.
            if shown is not None and shown.kind in (ActionKind.SELL, ActionKind.DEAL):
                assert shown.price >= cost - VALUE_EPSILON
            if shown is not None and shown.kind is ActionKind.SELL:
                last_sell = shown.price
            if shown is not None and shown.kind is ActionKind.DEAL:
                assert last_buy is not None and abs(shown.price - last_buy) <= PRICE_TOLERANCE  # the DEAL rule
        elif shown is not None:
            # The buyer's budget never reaches the seller in words.
            assert not mentions(message.shown_talk, budget)
            if shown.kind is ActionKind.BUY:
                last_buy = shown.price
            if shown.kind is ActionKind.DEAL:
                assert abs(shown.price - last_sell) <= PRICE_TOLERANCE  # the DEAL rule
        if message.role is Role.SELLER and shown is not None:
            assert not mentions(message.shown_talk, cost), message.shown_talk
        assert len(message.shown_talk) <= max_talk_chars + len(TRUNCATION_MARK)
    if record.outcome is Outcome.DEAL:
        assert record.price is not None and record.price >= cost - VALUE_EPSILON
    assert record.reward == buyer_reward(record.outcome, record.price, budget, cost)
    assert -1.0 <= record.reward <= 1.0
    assert record.metrics is not None and record.metrics.reward == record.reward
