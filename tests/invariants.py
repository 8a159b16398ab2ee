"""The rules every finished episode must satisfy, whatever the agents wrote: checked on adversarial episodes and on
hypothesis-generated ones."""

from __future__ import annotations

import math
import re

from counteroffer.game import ActionKind, EpisodeRecord, EventKind, Outcome, Role, buyer_reward
from counteroffer.game.negotiation import DEFAULT_MAX_TALK_CHARS, TRUNCATION_MARK
from counteroffer.game.reward import PRICE_TOLERANCE, VALUE_EPSILON

ACTION_EVENTS = {
    EventKind.BUYER_FORMAT_ERROR,
    EventKind.BUYER_PROTOCOL_ERROR,
    EventKind.SELLER_FORMAT_ERROR,
    EventKind.SELLER_PROTOCOL_ERROR,
    EventKind.REGULATOR_SELL_BELOW_COST,
    EventKind.REGULATOR_DEAL_BELOW_COST,
}
TALK_EVENTS = {EventKind.REGULATOR_COST_REDACTED, EventKind.BUYER_BUDGET_REDACTED, EventKind.TALK_TRUNCATED}
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
        # Every oddity is a typed event of the right kind: a message that did not parse or whose action did not take
        # effect as written, or whose Talk was changed before the other side read it.
        kinds = {event.kind for event in message.events}
        if message.format_error is not None or shown != message.action:
            assert kinds & ACTION_EVENTS, f"untracked action change in {message.raw[:80]!r}: {kinds}"
        if shown is not None and message.shown_talk != message.talk:
            assert kinds & TALK_EVENTS, f"untracked Talk change in {message.raw[:80]!r}: {kinds}"
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
            # The buyer's budget never reaches the seller in words (unless the buyer offers exactly its budget).
            if shown.price is None or abs(shown.price - budget) > PRICE_TOLERANCE:
                assert not mentions(message.shown_talk, budget)
            if shown.kind is ActionKind.BUY:
                last_buy = shown.price
            if shown.kind is ActionKind.DEAL:
                assert abs(shown.price - last_sell) <= PRICE_TOLERANCE  # the DEAL rule
        if message.role is Role.SELLER and shown is not None:
            assert not mentions(message.shown_talk, cost), message.shown_talk
        assert len(message.shown_talk) <= max_talk_chars + len(TRUNCATION_MARK)
    # The sides alternate, the buyer first, within the turn limit, and nothing follows the message that ended it.
    assert [m.role for m in record.messages] == [(Role.BUYER, Role.SELLER)[i % 2] for i in range(len(record.messages))]
    assert all(m.turn == i // 2 + 1 for i, m in enumerate(record.messages))
    assert record.messages[-1].turn <= record.max_turns
    closing = [i for i, m in enumerate(record.messages) if m.shown_action is not None
               and m.shown_action.kind in (ActionKind.DEAL, ActionKind.QUIT)]  # fmt: skip
    assert closing in ([], [len(record.messages) - 1])
    if record.outcome is Outcome.DEAL:
        # The deal is the last message's DEAL, at its price, never below the cost.
        last = record.messages[-1].shown_action
        assert last is not None and last.kind is ActionKind.DEAL and record.price == last.price
        assert record.price is not None and record.price >= cost - VALUE_EPSILON
    else:
        assert record.price is None
    assert record.reward == buyer_reward(record.outcome, record.price, budget, cost)
    assert -1.0 <= record.reward <= 1.0
    assert record.metrics is not None and record.metrics.reward == record.reward
