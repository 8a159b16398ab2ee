"""The regulator: a seller never sells or agrees below cost and never states its cost, whatever it writes."""

from __future__ import annotations

import pytest
from conftest import make_scenario
from conftest import message as msg
from hypothesis import given, settings
from hypothesis import strategies as st

from counteroffer.game import Action, ActionKind, EventKind, Negotiation, Outcome, Role, format_message
from counteroffer.game.regulator import REDACTED, redact_cost, regulate_seller_action

ASKING, BUDGET = 200.0, 160.0


def event_kinds(game: Negotiation) -> list[EventKind]:
    return [e.kind for m in game.messages for e in m.events]


# --------------------------------------------------------------------------------------------------------------------
# Prices below cost


def test_sell_below_cost_becomes_reject_and_never_takes_effect() -> None:
    game = Negotiation(make_scenario(cost=100.0))
    game.step(msg("[BUY] $60"))
    record = game.step(msg("[SELL] $80", talk="Fine, $80."))
    assert record.action == Action(ActionKind.SELL, 80.0)  # what the seller wrote
    assert record.shown_action == Action(ActionKind.REJECT)  # what took effect
    assert [e.kind for e in record.events] == [EventKind.REGULATOR_SELL_BELOW_COST]
    assert record.events[0].role is Role.SELLER and record.events[0].turn == 1
    assert game.last_sell == ASKING  # the standing offer is unchanged
    assert game.view(Role.BUYER).history[-1].action == Action(ActionKind.REJECT)
    assert not game.done
    # The buyer cannot accept the blocked price: that is a protocol error.
    game.step(msg("[DEAL] $80"))
    assert game.outcome is Outcome.BUYER_PROTOCOL_ERROR and game.price is None and game.reward == -1.0
    assert game.metrics().regulator_interventions == 1


def test_sell_exactly_at_cost_is_allowed() -> None:
    game = Negotiation(make_scenario(cost=100.0))
    game.step(msg("[BUY] $60"))
    record = game.step(msg("[SELL] $100"))
    assert record.shown_action == Action(ActionKind.SELL, 100.0) and record.events == []
    assert game.last_sell == 100.0
    game.step(msg("[DEAL] $100"))
    assert game.outcome is Outcome.DEAL and game.price == 100.0
    assert game.reward == pytest.approx((BUDGET - 100) / (BUDGET - 100))
    assert game.metrics().regulator_interventions == 0


def test_sell_one_cent_below_cost_is_blocked() -> None:
    game = Negotiation(make_scenario(cost=100.0))
    game.step(msg("[BUY] $60"))
    record = game.step(msg("[SELL] $99.99"))
    assert record.shown_action == Action(ActionKind.REJECT)
    assert [e.kind for e in record.events] == [EventKind.REGULATOR_SELL_BELOW_COST]


def test_seller_deal_at_a_buy_below_cost_is_blocked() -> None:
    game = Negotiation(make_scenario(cost=100.0))
    game.step(msg("[BUY] $90"))
    record = game.step(msg("[DEAL] $90", talk="Deal!"))
    assert not game.done and game.price is None
    assert record.shown_action == Action(ActionKind.REJECT)
    assert [e.kind for e in record.events] == [EventKind.REGULATOR_DEAL_BELOW_COST]
    # The game goes on; a later deal at or above cost is fine.
    game.step(msg("[BUY] $100"))
    game.step(msg("[DEAL] $100"))
    assert game.outcome is Outcome.DEAL and game.price == 100.0
    assert game.metrics().regulator_interventions == 1


def test_regulate_seller_action_directly() -> None:
    for action in (Action(ActionKind.REJECT), Action(ActionKind.QUIT), Action(ActionKind.SELL, 50.0)):
        assert regulate_seller_action(action, 50.0, 1) == (action, None)
    blocked, event = regulate_seller_action(Action(ActionKind.SELL, 49.99), 50.0, 3)
    assert blocked == Action(ActionKind.REJECT)
    assert event is not None and event.kind is EventKind.REGULATOR_SELL_BELOW_COST and event.turn == 3
    blocked, event = regulate_seller_action(Action(ActionKind.DEAL, 10.0), 50.0, 2)
    assert blocked == Action(ActionKind.REJECT)
    assert event is not None and event.kind is EventKind.REGULATOR_DEAL_BELOW_COST
    assert event.kind.is_regulator_intervention


# --------------------------------------------------------------------------------------------------------------------
# Cost redaction


@pytest.mark.parametrize(
    ("cost", "talk", "shown"),
    [
        (50.0, "I paid $50 for it.", f"I paid {REDACTED} for it."),
        (50.0, "It cost me $50.00, honestly.", f"It cost me {REDACTED}, honestly."),
        (50.0, "My cost is 50 dollars", f"My cost is {REDACTED} dollars"),
        (50.0, "$ 50 is my floor; 50 is 50.", f"{REDACTED} is my floor; {REDACTED} is {REDACTED}."),
        (1299.5, "I paid $1,299.50 for this.", f"I paid {REDACTED} for this."),
        (1299.5, "I paid 1299.5 for this.", f"I paid {REDACTED} for this."),
        (1299.5, "Cost:\n1,299.5\nfirm", f"Cost:\n{REDACTED}\nfirm"),  # the line breaks around it stay
        (50.0, "USD50 is what I paid", f"USD{REDACTED} is what I paid"),
    ],
)
def test_cost_in_talk_is_redacted_but_kept_in_the_record(cost: float, talk: str, shown: str) -> None:
    game = Negotiation(make_scenario(cost=cost, asking=2000.0, budget=1500.0))
    game.step(msg("[BUY] $1,000"))
    raw = msg("[SELL] $1,800", talk=talk)
    record = game.step(raw)
    assert record.raw == raw and record.talk == talk  # the raw record keeps what the seller wrote
    assert record.shown_talk == shown
    assert [e.kind for e in record.events] == [EventKind.REGULATOR_COST_REDACTED]
    buyer_view = game.view(Role.BUYER)
    assert buyer_view.history[-1].talk == shown
    assert record.shown_action == Action(ActionKind.SELL, 1800.0)  # redaction does not touch the action
    assert game.view(Role.SELLER).own_messages[-1] == raw


@pytest.mark.parametrize(
    "talk",
    [
        "I can do $500.",
        "How about $150?",
        "Not below $49.",
        "It is 50.5 cm wide",
        "$51 is my final word",
        "Price is $5,000",
        "No numbers at all.",
        "",
    ],
)
def test_other_amounts_are_not_redacted(talk: str) -> None:
    game = Negotiation(make_scenario(cost=50.0))
    game.step(msg("[BUY] $60"))
    record = game.step(msg("[SELL] $180", talk=talk))
    assert record.shown_talk == talk
    assert record.events == []
    shown, event = redact_cost(talk, 50.0, 1)
    assert (shown, event) == (talk, None)


def test_buyer_talk_is_never_redacted() -> None:
    game = Negotiation(make_scenario(cost=50.0))
    record = game.step(msg("[BUY] $60", talk="I bet it cost you $50."))
    assert record.shown_talk == "I bet it cost you $50." and record.events == []


def test_redaction_and_blocked_action_in_one_message_are_two_events() -> None:
    game = Negotiation(make_scenario(cost=50.0))
    game.step(msg("[BUY] $40"))
    record = game.step(msg("[SELL] $45", talk="It cost me $50 but take it at $45."))
    assert record.shown_talk == f"It cost me {REDACTED} but take it at $45."
    assert record.shown_action == Action(ActionKind.REJECT)
    assert sorted(e.kind for e in record.events) == sorted(
        [EventKind.REGULATOR_SELL_BELOW_COST, EventKind.REGULATOR_COST_REDACTED]
    )


def test_regulator_interventions_metric_matches_the_events() -> None:
    game = Negotiation(make_scenario(cost=50.0))
    game.step(msg("[BUY] $30"))
    game.step(msg("[SELL] $40", talk="My cost is $50."))  # blocked + redacted: 2
    game.step(msg("[BUY] $35"))
    game.step(msg("[DEAL] $35"))  # blocked deal: 1
    game.step(msg("[BUY] $45"))
    game.step(msg("[DEAL] $44"))  # protocol error, not a regulator intervention
    game.step(msg("[BUY] $55"))
    game.step(msg("[SELL] $70", talk="I said $50.00 already"))  # redacted: 1
    game.step(msg("[BUY] $60"))
    game.step(msg("[DEAL] $60"))
    assert game.outcome is Outcome.DEAL and game.price == 60.0
    kinds = event_kinds(game)
    regulator_events = [k for k in kinds if k.is_regulator_intervention]
    assert len(regulator_events) == 4
    assert EventKind.SELLER_PROTOCOL_ERROR in kinds
    assert game.metrics().regulator_interventions == len(regulator_events)


# --------------------------------------------------------------------------------------------------------------------
# Property: never a deal below cost


seller_moves = st.one_of(
    st.tuples(st.sampled_from([ActionKind.SELL, ActionKind.DEAL]), st.integers(1, 30_000)),
    st.tuples(st.just(ActionKind.DEAL), st.none()),  # DEAL at the buyer's latest BUY, whatever it is
    st.tuples(st.sampled_from([ActionKind.REJECT, ActionKind.QUIT]), st.none()),
    st.tuples(st.just("garbage"), st.none()),
)


@settings(max_examples=300, deadline=None)
@given(
    cost_cents=st.integers(1, 20_000),
    buyer_cents=st.lists(st.integers(1, 30_000), min_size=6, max_size=6),
    seller_script=st.lists(seller_moves, min_size=6, max_size=6),
    seller_talk_cost=st.booleans(),
)
def test_no_deal_below_cost(
    cost_cents: int,
    buyer_cents: list[int],
    seller_script: list[tuple[ActionKind | str, int | None]],
    seller_talk_cost: bool,
) -> None:
    cost = cost_cents / 100
    game = Negotiation(make_scenario(cost=cost, asking=max(ASKING, cost), budget=BUDGET))
    for buyer_price, (kind, seller_price) in zip(buyer_cents, seller_script, strict=True):
        if game.done:
            break
        game.step(format_message("", "", Action(ActionKind.BUY, buyer_price / 100)))
        if kind == "garbage":
            raw = "Action: [SELL] $-1"
        else:
            assert isinstance(kind, ActionKind)
            if not kind.takes_price:
                action = Action(kind)
            elif seller_price is None:
                action = Action(kind, game.last_buy)
            else:
                action = Action(kind, seller_price / 100)
            talk = f"My cost is ${cost:,.2f}." if seller_talk_cost else "ok"
            raw = format_message("", talk, action)
        game.step(raw)
        # Whatever the seller wrote, nothing it shows undercuts its cost, and its cost is never shown.
        shown = game.messages[-1].shown_action
        assert shown is not None
        assert shown.price is None or shown.price >= cost - 1e-9
        assert game.last_sell >= cost - 1e-9
        assert f"${cost:,.2f}" not in game.messages[-1].shown_talk
    assert game.done
    if game.outcome is Outcome.DEAL:
        assert game.price is not None and game.price >= cost - 1e-9
    else:
        assert game.price is None
    blocked = sum(
        1
        for m in game.messages
        for e in m.events
        if e.kind in (EventKind.REGULATOR_SELL_BELOW_COST, EventKind.REGULATOR_DEAL_BELOW_COST)
    )
    assert blocked == sum(
        1
        for m in game.messages
        if m.role is Role.SELLER
        and m.action is not None
        and m.action.price is not None
        and m.action.price < cost
        and not any(e.kind is EventKind.SELLER_PROTOCOL_ERROR for e in m.events)
    )


def test_budget_in_buyer_talk_is_redacted_before_the_seller_reads_it() -> None:
    """A prompt-injected buyer that states its budget: the seller sees [redacted], the record keeps the words."""
    game = Negotiation(make_scenario(asking=2000.0, budget=1500.0, cost=1000.0))
    raw = msg("[BUY] $1,200", talk="OK, my budget is $1,500.00 exactly; I offer $1,200.")
    record = game.step(raw)
    assert record.talk == "OK, my budget is $1,500.00 exactly; I offer $1,200."
    assert record.shown_talk == f"OK, my budget is {REDACTED} exactly; I offer $1,200."
    assert [e.kind for e in record.events] == [EventKind.BUYER_BUDGET_REDACTED]
    assert game.view(Role.SELLER).history[-1].talk == record.shown_talk
    assert record.shown_action == Action(ActionKind.BUY, 1200.0)
    # An offer at the budget is the buyer's choice: the action is never changed.
    game.step(msg("[SELL] $1,800"))
    at_budget = game.step(msg("[BUY] $1,500", talk="Final offer: $1,500."))
    assert at_budget.shown_action == Action(ActionKind.BUY, 1500.0) and not at_budget.events
    assert at_budget.shown_talk == "Final offer: $1,500."  # the offer shows the number anyway


@pytest.mark.parametrize("digits", ["１５００", "١٥٠٠", "1５00"])
def test_private_values_in_other_digits_are_redacted(digits: str) -> None:
    """Full-width and Arabic-Indic digits are amounts too: "１５００" must not get past the redaction."""
    game = Negotiation(make_scenario(asking=2000.0, budget=1500.0, cost=1000.0))
    record = game.step(msg("[BUY] $1,200", talk=f"My budget is {digits}."))
    assert record.shown_talk == f"My budget is {REDACTED}."
    game.step(msg("[SELL] $1,800"))
    shown, event = redact_cost(f"I paid {digits.replace('5', '0').replace('５', '０').replace('٥', '٠')}", 1000.0, 2)
    assert shown == f"I paid {REDACTED}" and event is not None


def test_long_talk_is_cut_without_splitting_a_number() -> None:
    """The cap keeps a 100 kB message out of the other side's prompt; a cut inside "$1,234" would leave "$1" (which
    could be a private value), so a number at the cut is dropped whole."""
    from counteroffer.game.negotiation import TRUNCATION_MARK, GameConfig

    game = Negotiation(make_scenario(cost=1.0, budget=160.0, asking=200.0), GameConfig(max_talk_chars=14))
    game.step(msg("[BUY] $100"))
    record = game.step(msg("[SELL] $150", talk="It was only $1,234,567 new."))
    assert record.shown_talk == "It was only" + TRUNCATION_MARK
    assert [e.kind for e in record.events] == [EventKind.TALK_TRUNCATED]
    assert record.talk == "It was only $1,234,567 new."  # the record keeps the words
