"""The verifiable buyer reward and the per-episode metrics (docs/design.md §1)."""

from __future__ import annotations

import pytest
from conftest import make_scenario

from counteroffer.catalog.models import Product, Scenario
from counteroffer.game import (
    Action,
    ActionKind,
    EventKind,
    GameEvent,
    MessageRecord,
    Negotiation,
    Outcome,
    Role,
    bargained_ratio,
    buyer_reward,
    episode_metrics,
)

B, C = 80.0, 50.0  # a mutual-interest budget and cost
NO_DEAL_OUTCOMES = [Outcome.BUYER_QUIT, Outcome.SELLER_QUIT, Outcome.TURN_LIMIT]
BUYER_ERRORS = [Outcome.BUYER_FORMAT_ERROR, Outcome.BUYER_PROTOCOL_ERROR]


# --------------------------------------------------------------------------------------------------------------------
# buyer_reward


def test_deal_at_budget_is_zero() -> None:
    assert buyer_reward(Outcome.DEAL, B, B, C) == 0.0


def test_deal_at_cost_is_one() -> None:
    assert buyer_reward(Outcome.DEAL, C, B, C) == 1.0


@pytest.mark.parametrize(("price", "expected"), [(65.0, 0.5), (56.0, 0.8), (77.0, 0.1), (79.99, 0.01 / 30)])
def test_deal_between_cost_and_budget(price: float, expected: float) -> None:
    assert buyer_reward(Outcome.DEAL, price, B, C) == pytest.approx(expected)


def test_deal_below_cost_in_mutual_interest_clips_to_one() -> None:
    # (80 - 20) / 30 = 2 -> clipped.
    assert buyer_reward(Outcome.DEAL, 20.0, B, C) == 1.0


@pytest.mark.parametrize(
    ("price", "expected"),
    [
        (50.0, 0.0),  # P = B
        (45.0, 5 / 30),  # (50 - 45) / |50 - 80|
        (35.0, 0.5),  # 15 / 30
        (20.0, 1.0),  # 30 / 30
        (10.0, 1.0),  # 40 / 30 = 1.33 -> clipped to 1
        (0.01, 1.0),
    ],
)
def test_conflicting_interest_deal_at_or_below_budget(price: float, expected: float) -> None:
    budget, cost = 50.0, 80.0
    reward = buyer_reward(Outcome.DEAL, price, budget, cost)
    assert reward == pytest.approx(expected)
    assert -1.0 <= reward <= 1.0


@pytest.mark.parametrize(
    ("budget", "cost", "price"), [(B, C, 80.01), (B, C, 200.0), (50.0, 80.0, 80.0), (50.0, 50.0, 51.0)]
)
def test_overshoot_is_minus_one(budget: float, cost: float, price: float) -> None:
    assert buyer_reward(Outcome.DEAL, price, budget, cost) == -1.0


def test_overshoot_tolerates_only_float_noise() -> None:
    budget = 0.8 * 14.99  # 11.992, an exact private value
    assert buyer_reward(Outcome.DEAL, 11.99, budget, 5.0) == pytest.approx(0.002 / 6.992)
    assert buyer_reward(Outcome.DEAL, 12.0, budget, 5.0) == -1.0


def test_budget_equal_to_cost() -> None:
    assert buyer_reward(Outcome.DEAL, 50.0, 50.0, 50.0) == 0.0
    assert buyer_reward(Outcome.DEAL, 30.0, 50.0, 50.0) == 0.0
    assert buyer_reward(Outcome.DEAL, 50.01, 50.0, 50.0) == -1.0
    assert bargained_ratio(50.0, 50.0, 50.0) is None
    metrics = episode_metrics([], Outcome.DEAL, 50.0, 50.0, 50.0)
    assert metrics.deal and metrics.bargained_ratio is None and metrics.reward == 0.0
    assert not metrics.mutual_interest


@pytest.mark.parametrize("outcome", NO_DEAL_OUTCOMES)
def test_no_deal_is_zero(outcome: Outcome) -> None:
    assert buyer_reward(outcome, None, B, C) == 0.0
    assert buyer_reward(outcome, None, 50.0, 80.0) == 0.0


@pytest.mark.parametrize("outcome", BUYER_ERRORS)
def test_buyer_errors_are_minus_one(outcome: Outcome) -> None:
    assert outcome.is_buyer_error
    assert buyer_reward(outcome, None, B, C) == -1.0
    assert buyer_reward(outcome, None, 50.0, 80.0) == -1.0


def test_every_outcome_is_covered() -> None:
    assert {Outcome.DEAL, *NO_DEAL_OUTCOMES, *BUYER_ERRORS} == set(Outcome)
    assert not any(o.is_buyer_error for o in [Outcome.DEAL, *NO_DEAL_OUTCOMES])


def test_deal_without_price_is_rejected() -> None:
    with pytest.raises(ValueError):
        buyer_reward(Outcome.DEAL, None, B, C)


def test_bargained_ratio_is_unclipped() -> None:
    assert bargained_ratio(65.0, B, C) == pytest.approx(0.5)
    assert bargained_ratio(20.0, B, C) == pytest.approx(2.0)
    assert bargained_ratio(90.0, B, C) == pytest.approx(-1 / 3)
    assert bargained_ratio(45.0, 50.0, 80.0) == pytest.approx(-5 / 30)  # (B - P) / (B - C) keeps its sign


# --------------------------------------------------------------------------------------------------------------------
# episode_metrics on hand-built records


def buyer_msg(turn: int, action: Action | None) -> MessageRecord:
    return MessageRecord(role=Role.BUYER, turn=turn, raw="", action=action, shown_action=action)


def seller_msg(turn: int, action: Action, events: list[GameEvent] | None = None) -> MessageRecord:
    return MessageRecord(role=Role.SELLER, turn=turn, raw="", action=action, shown_action=action, events=events or [])


def test_overshoot_flag_without_a_deal() -> None:
    messages = [
        buyer_msg(1, Action(ActionKind.BUY, 40.0)),
        seller_msg(1, Action(ActionKind.SELL, 95.0)),
        buyer_msg(2, Action(ActionKind.BUY, 85.0)),  # above the budget of 80
        seller_msg(2, Action(ActionKind.QUIT)),
    ]
    metrics = episode_metrics(messages, Outcome.SELLER_QUIT, None, B, C)
    assert metrics.overshoot
    assert not metrics.deal and metrics.reward == 0.0 and metrics.bargained_ratio is None
    assert metrics.first_offer_ratio == pytest.approx(40 / 80)
    assert metrics.turns == 2


def test_no_overshoot_when_all_offers_within_budget() -> None:
    messages = [buyer_msg(1, Action(ActionKind.BUY, 80.0)), seller_msg(1, Action(ActionKind.DEAL, 80.0))]
    metrics = episode_metrics(messages, Outcome.DEAL, 80.0, B, C)
    assert not metrics.overshoot and metrics.deal
    assert metrics.reward == 0.0 and metrics.bargained_ratio == 0.0
    assert metrics.first_offer_ratio == 1.0


def test_overshoot_flag_from_a_deal_above_budget() -> None:
    messages = [
        buyer_msg(1, Action(ActionKind.BUY, 60.0)),
        seller_msg(1, Action(ActionKind.SELL, 90.0)),
        buyer_msg(2, Action(ActionKind.DEAL, 90.0)),
    ]
    metrics = episode_metrics(messages, Outcome.DEAL, 90.0, B, C)
    assert metrics.overshoot and metrics.deal and metrics.reward == -1.0
    assert metrics.bargained_ratio == pytest.approx(-10 / 30)
    assert metrics.first_offer_ratio == pytest.approx(60 / 80)


def test_first_offer_ratio_none_without_a_buy() -> None:
    messages = [
        buyer_msg(1, Action(ActionKind.REJECT)),
        seller_msg(1, Action(ActionKind.SELL, 90.0)),
        buyer_msg(2, Action(ActionKind.QUIT)),
    ]
    metrics = episode_metrics(messages, Outcome.BUYER_QUIT, None, B, C)
    assert metrics.first_offer_ratio is None
    assert not metrics.overshoot and metrics.turns == 2 and metrics.reward == 0.0


def test_first_offer_ratio_uses_the_first_buy() -> None:
    messages = [
        buyer_msg(1, Action(ActionKind.REJECT)),
        seller_msg(1, Action(ActionKind.SELL, 90.0)),
        buyer_msg(2, Action(ActionKind.BUY, 20.0)),
        seller_msg(2, Action(ActionKind.SELL, 85.0)),
        buyer_msg(3, Action(ActionKind.BUY, 60.0)),
    ]
    metrics = episode_metrics(messages, Outcome.TURN_LIMIT, None, B, C)
    assert metrics.first_offer_ratio == pytest.approx(0.25)
    assert metrics.turns == 3


def test_metrics_of_an_empty_episode_and_errors() -> None:
    metrics = episode_metrics([buyer_msg(1, None)], Outcome.BUYER_FORMAT_ERROR, None, B, C)
    assert metrics.format_error and not metrics.protocol_error and metrics.reward == -1.0
    assert metrics.turns == 1 and metrics.first_offer_ratio is None and not metrics.deal
    metrics = episode_metrics([], Outcome.BUYER_PROTOCOL_ERROR, None, B, C)
    assert metrics.protocol_error and not metrics.format_error and metrics.turns == 0


def test_mutual_interest_flag() -> None:
    assert episode_metrics([], Outcome.TURN_LIMIT, None, 80.0, 50.0).mutual_interest
    assert not episode_metrics([], Outcome.TURN_LIMIT, None, 50.0, 80.0).mutual_interest
    assert not episode_metrics([], Outcome.TURN_LIMIT, None, 50.0, 50.0).mutual_interest


def test_regulator_interventions_counted_from_events() -> None:
    blocked = GameEvent(EventKind.REGULATOR_SELL_BELOW_COST, Role.SELLER, 1)
    redacted = GameEvent(EventKind.REGULATOR_COST_REDACTED, Role.SELLER, 1)
    other = GameEvent(EventKind.SELLER_PROTOCOL_ERROR, Role.SELLER, 2)
    messages = [
        buyer_msg(1, Action(ActionKind.BUY, 40.0)),
        seller_msg(1, Action(ActionKind.REJECT), [blocked, redacted]),
        buyer_msg(2, Action(ActionKind.BUY, 45.0)),
        seller_msg(2, Action(ActionKind.REJECT), [other]),
    ]
    assert episode_metrics(messages, Outcome.TURN_LIMIT, None, B, C).regulator_interventions == 2


# --------------------------------------------------------------------------------------------------------------------
# A full episode through Negotiation


def test_full_episode_reward_matches_the_formula() -> None:
    asking, budget, cost = 149.99, 0.8 * 149.99, 87.25  # budget 119.992, exact
    scenario = make_scenario(asking, budget, cost, title="Headphones")
    game = Negotiation(scenario)
    script = [
        "Thought: start low\nTalk: Would you take $70?\nAction: [BUY] $70",
        "Thought: too low\nTalk: I can do $140.\nAction: [SELL] $140",
        "Thought: move up\nTalk: $85 then.\nAction: [BUY] $85",
        "Thought: below my cost\nTalk: Fine, $80.\nAction: [SELL] $80",  # blocked by the regulator
        "Thought: hold\nTalk: Still $90?\nAction: [BUY] $90",
        "Thought: meet\nTalk: $105 and it's yours.\nAction: [SELL] $105",
        "Thought: accept\nTalk: Deal.\nAction: [DEAL] $105",
    ]
    for raw in script:
        game.step(raw)
    assert game.outcome is Outcome.DEAL and game.price == 105.0
    expected = max(-1.0, min(1.0, (budget - 105.0) / abs(budget - cost)))
    assert expected == pytest.approx(14.992 / 32.742)
    assert game.reward == pytest.approx(expected)
    metrics = game.metrics()
    assert metrics.reward == game.reward
    assert metrics.deal and not metrics.overshoot and metrics.mutual_interest
    assert metrics.bargained_ratio == pytest.approx((budget - 105.0) / (budget - cost))
    assert metrics.first_offer_ratio == pytest.approx(70 / budget)
    assert metrics.turns == 4
    assert metrics.regulator_interventions == 1
    assert not metrics.format_error and not metrics.protocol_error


def test_full_episode_overshoot_then_walk_away() -> None:
    product = Product(product_id="p", source="amazon", title="t", category="c", list_price=100.0)
    scenario = Scenario(scenario_id="s", recipe="paper", product=product, asking_price=100.0, budget=80.0, cost=50.0)
    game = Negotiation(scenario)
    for raw in ["Action: [BUY] $85", "Action: [SELL] $95", "Action: [QUIT]"]:
        game.step(raw)
    assert game.outcome is Outcome.BUYER_QUIT and game.reward == 0.0
    assert [e.kind for e in game.messages[0].events] == [EventKind.BUYER_OFFER_OVER_BUDGET]
    metrics = game.metrics()
    assert metrics.overshoot and not metrics.deal and metrics.first_offer_ratio == pytest.approx(85 / 80)
