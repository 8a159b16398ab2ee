"""The verifiable reward and the per-episode metrics: pure functions of the private values and the outcome."""

from __future__ import annotations

from collections.abc import Sequence

from counteroffer.catalog.models import Product
from counteroffer.game.arguments import Listing, episode_arguments, false_claims
from counteroffer.game.hints import argument_match, hinted_lever
from counteroffer.game.messages import ActionKind, Role
from counteroffer.game.quotes import episode_quotes, misquoted
from counteroffer.game.records import EpisodeMetrics, MessageRecord, Outcome

PRICE_TOLERANCE = 0.005  # offers are in cents: two offers within half a cent are the same offer
# Private values are exact (0.8 × $14.99 = $11.992), so a comparison against them only absorbs float noise.
VALUE_EPSILON = 1e-6


def buyer_reward(outcome: Outcome, price: float | None, budget: float, cost: float) -> float:
    """The buyer's reward (docs/design.md §1).

    - deal at P <= B: clip((B - P) / |B - C|, -1, 1); when B == C the surplus range is empty and the reward is 0
    - deal at P > B (budget overshoot) or a buyer format/protocol error: -1
    - no deal (quit or turn limit): 0
    """
    if outcome.is_buyer_error:
        return -1.0
    if outcome is not Outcome.DEAL:
        return 0.0
    if price is None:
        raise ValueError("a deal needs a price")
    if price > budget + VALUE_EPSILON:
        return -1.0
    spread = abs(budget - cost)
    if spread < VALUE_EPSILON:
        return 0.0
    return max(-1.0, min(1.0, (budget - price) / spread))


def seller_reward(outcome: Outcome, price: float | None, budget: float, cost: float) -> float:
    """The seller's side of the same game: clip((P - C) / |B - C|, -1, 1) for a deal at P, 0 without one (or
    when B == C). The regulator keeps P at or above C, so a regulated seller never scores below 0."""
    if outcome is not Outcome.DEAL or price is None:
        return 0.0
    spread = abs(budget - cost)
    if spread < VALUE_EPSILON:
        return 0.0
    return max(-1.0, min(1.0, (price - cost) / spread))


def bargained_ratio(price: float, budget: float, cost: float) -> float | None:
    """(B - P) / (B - C) for a deal; undefined when B == C."""
    spread = budget - cost
    if abs(spread) < VALUE_EPSILON:
        return None
    return (budget - price) / spread


def episode_metrics(
    messages: Sequence[MessageRecord],
    outcome: Outcome,
    price: float | None,
    budget: float,
    cost: float,
    *,
    product: Product | None = None,
) -> EpisodeMetrics:
    """The metrics of a finished episode; with ``product``, also the buyer's arguments checked against it."""
    buyer_offers = [
        m.action.price
        for m in messages
        if m.role is Role.BUYER and m.action is not None and m.action.kind is ActionKind.BUY
    ]
    deal = outcome is Outcome.DEAL and price is not None
    overshoot = any(p is not None and p > budget + VALUE_EPSILON for p in buyer_offers) or (
        deal and price > budget + VALUE_EPSILON
    )
    first_offer = buyer_offers[0] if buyer_offers else None
    quotes = episode_quotes(messages, budget)  # the reward never reads them: a misquote is counted, not punished
    arguments = episode_arguments(messages, Listing.of(product)) if product is not None else None
    return EpisodeMetrics(
        reward=buyer_reward(outcome, price, budget, cost),
        deal=deal,
        bargained_ratio=bargained_ratio(price, budget, cost) if deal else None,
        overshoot=overshoot,
        first_offer_ratio=first_offer / budget if first_offer is not None and budget > 0 else None,
        turns=max((m.turn for m in messages), default=0),
        format_error=outcome is Outcome.BUYER_FORMAT_ERROR,
        protocol_error=outcome is Outcome.BUYER_PROTOCOL_ERROR,
        regulator_interventions=sum(1 for m in messages for e in m.events if e.kind.is_regulator_intervention),
        mutual_interest=budget > cost + VALUE_EPSILON,
        misquote=misquoted(quotes),
        quotes=len(quotes),
        arguments=len(arguments) if arguments is not None else None,
        false_claims=false_claims(arguments) if arguments is not None else None,
        argument_match=argument_match(arguments, hinted_lever(messages)) if arguments is not None else None,
    )
