"""The negotiation state machine: turn order, protocol rules, endings, views."""

from __future__ import annotations

import dataclasses

import pytest
from conftest import make_scenario
from conftest import message as msg

from counteroffer.game import (
    Action,
    ActionKind,
    EventKind,
    FormatErrorKind,
    GameConfig,
    GameOver,
    Negotiation,
    Outcome,
    Role,
    format_message,
)
from counteroffer.game.negotiation import DEFAULT_MAX_TURNS

ASKING, BUDGET, COST = 200.0, 160.0, 100.0


def buy(price: float) -> str:
    return msg(f"[BUY] ${price:,.2f}")


def sell(price: float) -> str:
    return msg(f"[SELL] ${price:,.2f}")


def deal(price: float) -> str:
    return msg(f"[DEAL] ${price:,.2f}")


REJECT, QUIT = msg("[REJECT]"), msg("[QUIT]")


def events(game: Negotiation) -> list[EventKind]:
    return [e.kind for m in game.messages for e in m.events]


@pytest.fixture
def game() -> Negotiation:
    return Negotiation(make_scenario())


# --------------------------------------------------------------------------------------------------------------------
# Turn order


def test_buyer_moves_first_and_roles_alternate(game: Negotiation) -> None:
    assert game.next_role is Role.BUYER and game.turn == 1 and not game.done
    expected = []
    for turn in range(1, 4):
        assert (game.next_role, game.turn) == (Role.BUYER, turn)
        game.step(buy(100 + turn))
        assert (game.next_role, game.turn) == (Role.SELLER, turn)
        game.step(sell(190 - turn))
        expected += [(Role.BUYER, turn), (Role.SELLER, turn)]
    assert [(m.role, m.turn) for m in game.messages] == expected
    assert game.last_buy == 103.0 and game.last_sell == 187.0
    assert not game.done


def test_step_returns_the_record(game: Negotiation) -> None:
    record = game.step(msg("[BUY] $120", talk="Hi", thought="low"))
    assert record is game.messages[-1]
    assert record.role is Role.BUYER and record.turn == 1
    assert (record.thought, record.talk, record.action) == ("low", "Hi", Action(ActionKind.BUY, 120.0))
    assert record.shown_action == Action(ActionKind.BUY, 120.0) and record.shown_talk == "Hi"
    assert record.events == []


def test_reward_and_metrics_before_the_end_raise(game: Negotiation) -> None:
    with pytest.raises(GameOver):
        _ = game.reward
    with pytest.raises(GameOver):
        game.metrics()


# --------------------------------------------------------------------------------------------------------------------
# The buyer's first action


@pytest.mark.parametrize("first", [buy(120), REJECT])
def test_first_buyer_action_buy_or_reject_is_fine(game: Negotiation, first: str) -> None:
    game.step(first)
    assert not game.done and game.next_role is Role.SELLER


@pytest.mark.parametrize("first", [deal(ASKING), QUIT])
def test_first_buyer_action_deal_or_quit_is_a_protocol_error(game: Negotiation, first: str) -> None:
    record = game.step(first)
    assert game.done and game.outcome is Outcome.BUYER_PROTOCOL_ERROR
    assert game.reward == -1.0
    assert game.price is None
    assert [e.kind for e in record.events] == [EventKind.BUYER_PROTOCOL_ERROR]
    assert record.shown_action is None
    assert game.view(Role.SELLER).history == ()  # an illegal action never takes effect or is shown
    metrics = game.metrics()
    assert metrics.protocol_error and not metrics.format_error and metrics.reward == -1.0


def test_buyer_quit_after_the_first_turn_is_allowed(game: Negotiation) -> None:
    game.step(REJECT)
    game.step(sell(190))
    game.step(QUIT)
    assert game.outcome is Outcome.BUYER_QUIT and game.reward == 0.0 and game.price is None


# --------------------------------------------------------------------------------------------------------------------
# DEAL rules


def test_buyer_deal_at_the_asking_price_before_any_sell(game: Negotiation) -> None:
    game.step(buy(120))
    game.step(REJECT)
    game.step(deal(ASKING))
    assert game.outcome is Outcome.DEAL and game.price == ASKING
    assert game.reward == -1.0  # the asking price is above the budget


def test_buyer_deal_at_another_price_before_any_sell_is_a_protocol_error(game: Negotiation) -> None:
    game.step(buy(120))
    game.step(REJECT)
    game.step(deal(150))
    assert game.outcome is Outcome.BUYER_PROTOCOL_ERROR and game.reward == -1.0


def test_buyer_deal_must_match_the_latest_sell(game: Negotiation) -> None:
    game.step(buy(120))
    game.step(sell(150))
    game.step(buy(125))
    game.step(sell(140))
    # The earlier offer of $150 is not the standing one any more.
    game.step(deal(150))
    assert game.outcome is Outcome.BUYER_PROTOCOL_ERROR
    assert events(game)[-1] is EventKind.BUYER_PROTOCOL_ERROR
    assert game.reward == -1.0


def test_buyer_deal_at_the_latest_sell(game: Negotiation) -> None:
    game.step(buy(120))
    game.step(sell(150))
    game.step(buy(125))
    game.step(sell(140))
    game.step(deal(140))
    assert game.outcome is Outcome.DEAL and game.price == 140.0
    assert game.reward == pytest.approx((BUDGET - 140) / (BUDGET - COST))


def test_seller_reject_keeps_the_standing_offer(game: Negotiation) -> None:
    game.step(buy(120))
    game.step(sell(150))
    game.step(buy(125))
    game.step(REJECT)
    assert game.last_sell == 150.0
    game.step(deal(150))
    assert game.outcome is Outcome.DEAL and game.price == 150.0


def test_seller_deal_at_the_latest_buy(game: Negotiation) -> None:
    game.step(buy(120))
    game.step(sell(150))
    game.step(buy(130))
    game.step(deal(130))
    assert game.outcome is Outcome.DEAL and game.price == 130.0
    assert game.reward == pytest.approx(0.5)
    assert events(game) == []


def test_seller_deal_at_an_older_buy_becomes_reject(game: Negotiation) -> None:
    game.step(buy(120))
    game.step(sell(150))
    game.step(buy(130))
    record = game.step(deal(120))
    assert not game.done
    assert record.action == Action(ActionKind.DEAL, 120.0)  # what the seller wrote
    assert record.shown_action == Action(ActionKind.REJECT)  # what took effect
    assert [e.kind for e in record.events] == [EventKind.SELLER_PROTOCOL_ERROR]
    assert game.view(Role.BUYER).history[-1].action == Action(ActionKind.REJECT)
    assert game.next_role is Role.BUYER and game.turn == 3
    assert game.last_sell == 150.0


def test_seller_deal_without_any_buy_becomes_reject(game: Negotiation) -> None:
    game.step(REJECT)
    record = game.step(deal(120))
    assert not game.done and game.last_buy is None
    assert record.shown_action == Action(ActionKind.REJECT)
    assert [e.kind for e in record.events] == [EventKind.SELLER_PROTOCOL_ERROR]
    # The game goes on normally.
    game.step(buy(110))
    game.step(deal(110))
    assert game.outcome is Outcome.DEAL and game.price == 110.0


# --------------------------------------------------------------------------------------------------------------------
# Format errors


@pytest.mark.parametrize("turn_of_error", [1, 3])
def test_buyer_format_error_ends_the_episode(game: Negotiation, turn_of_error: int) -> None:
    for _ in range(turn_of_error - 1):
        game.step(buy(120))
        game.step(sell(150))
    record = game.step("Thought: hmm\nTalk: I'll pay $130")  # no Action section
    assert game.done and game.outcome is Outcome.BUYER_FORMAT_ERROR
    assert record.format_error is not None and record.format_error.kind is FormatErrorKind.MISSING_ACTION
    assert record.action is None and record.shown_action is None
    assert [e.kind for e in record.events] == [EventKind.BUYER_FORMAT_ERROR]
    assert game.reward == -1.0
    metrics = game.metrics()
    assert metrics.format_error and not metrics.protocol_error and metrics.turns == turn_of_error
    with pytest.raises(GameOver):
        game.step(REJECT)


@pytest.mark.parametrize("bad", ["", "Action: [SELL] $130", "Action: [BUY] $-3", "Action: [BUY]"])
def test_buyer_format_errors_of_each_kind_end_the_episode(game: Negotiation, bad: str) -> None:
    game.step(bad)
    assert game.outcome is Outcome.BUYER_FORMAT_ERROR and game.reward == -1.0


@pytest.mark.parametrize("bad", ["", "Talk: no action", "Action: [BUY] $150", "Action: [SELL] $abc"])
def test_seller_format_error_becomes_reject(game: Negotiation, bad: str) -> None:
    game.step(buy(120))
    record = game.step(bad)
    assert not game.done
    assert record.format_error is not None and record.action is None
    assert record.shown_action == Action(ActionKind.REJECT)
    assert [e.kind for e in record.events] == [EventKind.SELLER_FORMAT_ERROR]
    assert game.view(Role.BUYER).history[-1].action == Action(ActionKind.REJECT)
    assert game.next_role is Role.BUYER and game.turn == 2
    assert game.last_sell == ASKING


# --------------------------------------------------------------------------------------------------------------------
# QUIT and the turn limit


def test_seller_quit(game: Negotiation) -> None:
    game.step(buy(50))
    game.step(QUIT)
    assert game.outcome is Outcome.SELLER_QUIT and game.price is None and game.reward == 0.0
    assert not game.metrics().deal
    with pytest.raises(GameOver):
        game.step(buy(60))


def test_buyer_quit(game: Negotiation) -> None:
    game.step(buy(120))
    game.step(sell(150))
    game.step(QUIT)
    assert game.outcome is Outcome.BUYER_QUIT and game.price is None and game.reward == 0.0


def test_default_turn_limit_is_six(game: Negotiation) -> None:
    assert DEFAULT_MAX_TURNS == 6 and game.config.max_turns == 6
    for turn in range(1, 7):
        assert not game.done and game.turn == turn
        game.step(buy(100 + turn))
        game.step(sell(190 - turn))
    assert game.done and game.outcome is Outcome.TURN_LIMIT
    assert game.reward == 0.0 and game.price is None
    assert len(game.messages) == 12
    assert game.metrics().turns == 6
    with pytest.raises(GameOver):
        game.step(buy(150))
    with pytest.raises(GameOver):
        game.play(Action(ActionKind.BUY, 150.0))
    assert len(game.messages) == 12


def test_custom_turn_limit() -> None:
    game = Negotiation(make_scenario(), GameConfig(max_turns=2))
    game.step(buy(110))
    game.step(sell(180))
    game.step(buy(120))
    assert not game.done
    game.step(REJECT)
    assert game.outcome is Outcome.TURN_LIMIT and game.reward == 0.0
    assert game.view(Role.BUYER).max_turns == 2
    with pytest.raises(GameOver):
        game.step(buy(130))


def test_deal_on_the_last_turn_counts() -> None:
    game = Negotiation(make_scenario(), GameConfig(max_turns=1))
    game.step(buy(130))
    assert game.view(Role.SELLER).is_last_turn
    game.step(deal(130))
    assert game.outcome is Outcome.DEAL and game.price == 130.0


def test_max_turns_must_be_positive() -> None:
    with pytest.raises(ValueError):
        GameConfig(max_turns=0)


# --------------------------------------------------------------------------------------------------------------------
# Views


def _view_text(view: object) -> str:
    parts = []
    for field in dataclasses.fields(view):  # type: ignore[arg-type]
        value = getattr(view, field.name)
        parts.append(repr(value))
    return "\n".join(parts)


def test_views_never_show_the_other_sides_thought(game: Negotiation) -> None:
    game.step(msg("[BUY] $120", talk="Hello, I like it.", thought="BUYERSECRET42 my budget is 160"))
    game.step(msg("[SELL] $170", talk="It is a fine machine.", thought="SELLERSECRET77 my cost is 100"))
    game.step(msg("[BUY] $130", talk="Meet me lower?", thought="BUYERSECRET42 again"))
    game.step("Thought: SELLERSECRET77 broken\nTalk: hmm")  # a seller format error: REJECT
    game.step(msg("[BUY] $135", talk="Last try.", thought="BUYERSECRET42 third"))

    seller_view = game.view(Role.SELLER)
    buyer_view = game.view(Role.BUYER)
    assert "BUYERSECRET42" not in _view_text(seller_view)
    assert "SELLERSECRET77" not in _view_text(buyer_view)
    for visible in seller_view.history + buyer_view.history:
        assert "SECRET" not in visible.talk
    # Both sides see the same public history of Talk and effective actions.
    assert seller_view.history == buyer_view.history
    assert [v.talk for v in buyer_view.history] == [
        "Hello, I like it.",
        "It is a fine machine.",
        "Meet me lower?",
        "",
        "Last try.",
    ]
    assert [v.action for v in buyer_view.history] == [
        Action(ActionKind.BUY, 120.0),
        Action(ActionKind.SELL, 170.0),
        Action(ActionKind.BUY, 130.0),
        Action(ActionKind.REJECT),
        Action(ActionKind.BUY, 135.0),
    ]
    # Each side can re-read its own raw messages, Thought included.
    assert len(buyer_view.own_messages) == 3
    assert all("BUYERSECRET42" in m for m in buyer_view.own_messages)
    assert len(seller_view.own_messages) == 2
    assert all("SELLERSECRET77" in m for m in seller_view.own_messages)
    assert buyer_view.own_messages == tuple(m.raw for m in game.messages if m.role is Role.BUYER)


def test_view_private_values_and_public_facts(game: Negotiation) -> None:
    buyer_view, seller_view = game.view(Role.BUYER), game.view(Role.SELLER)
    assert buyer_view.private_value == BUDGET and seller_view.private_value == COST
    assert str(COST) not in _view_text(buyer_view).replace(str(ASKING), "")
    assert buyer_view.asking_price == seller_view.asking_price == ASKING
    assert buyer_view.title == "Espresso machine" and buyer_view.role is Role.BUYER
    assert buyer_view.last_sell == ASKING and buyer_view.last_buy is None
    assert buyer_view.turn == 1 and not buyer_view.is_last_turn


# --------------------------------------------------------------------------------------------------------------------
# play() follows the rules of step()


def test_play_full_episode(game: Negotiation) -> None:
    game.play(Action(ActionKind.BUY, 120.0), talk="Hi", thought="PLAYSECRET")
    game.play(Action(ActionKind.SELL, 150.0), talk="No")
    game.play(Action(ActionKind.DEAL, 150.0))
    assert game.outcome is Outcome.DEAL and game.price == 150.0
    first = game.messages[0]
    assert first.raw == format_message("PLAYSECRET", "Hi", Action(ActionKind.BUY, 120.0))
    assert first.thought == "PLAYSECRET" and first.shown_talk == "Hi"
    assert "PLAYSECRET" not in _view_text(game.view(Role.SELLER))


def test_play_first_buyer_deal_is_a_protocol_error(game: Negotiation) -> None:
    game.play(Action(ActionKind.DEAL, ASKING))
    assert game.outcome is Outcome.BUYER_PROTOCOL_ERROR and game.reward == -1.0


def test_play_quit_first_is_a_protocol_error(game: Negotiation) -> None:
    game.play(Action(ActionKind.QUIT))
    assert game.outcome is Outcome.BUYER_PROTOCOL_ERROR


def test_play_buyer_deal_must_match(game: Negotiation) -> None:
    game.play(Action(ActionKind.BUY, 120.0))
    game.play(Action(ActionKind.SELL, 150.0))
    game.play(Action(ActionKind.DEAL, 149.0))
    assert game.outcome is Outcome.BUYER_PROTOCOL_ERROR


def test_play_seller_deal_mismatch_becomes_reject(game: Negotiation) -> None:
    game.play(Action(ActionKind.BUY, 120.0))
    record = game.play(Action(ActionKind.DEAL, 125.0))
    assert not game.done and record.shown_action == Action(ActionKind.REJECT)
    assert [e.kind for e in record.events] == [EventKind.SELLER_PROTOCOL_ERROR]


def test_play_buyer_using_sell_is_a_format_error_as_in_step() -> None:
    for via_step in (True, False):
        game = Negotiation(make_scenario())
        game.play(Action(ActionKind.BUY, 120.0))
        game.play(Action(ActionKind.SELL, 150.0))
        if via_step:
            game.step(sell(140))
        else:
            game.play(Action(ActionKind.SELL, 140.0))
        assert game.outcome is Outcome.BUYER_FORMAT_ERROR, via_step
        assert game.messages[-1].format_error is not None
        assert game.messages[-1].format_error.kind is FormatErrorKind.ACTION_NOT_ALLOWED_FOR_ROLE


def test_play_seller_using_buy_becomes_reject(game: Negotiation) -> None:
    game.play(Action(ActionKind.BUY, 120.0))
    record = game.play(Action(ActionKind.BUY, 150.0))
    assert not game.done
    assert record.shown_action == Action(ActionKind.REJECT)
    assert [e.kind for e in record.events] == [EventKind.SELLER_FORMAT_ERROR]


@pytest.mark.parametrize(
    ("action", "kind"),
    [
        (Action(ActionKind.BUY), FormatErrorKind.MISSING_PRICE),
        (Action(ActionKind.BUY, -5.0), FormatErrorKind.INVALID_PRICE),
        (Action(ActionKind.BUY, 0.0), FormatErrorKind.INVALID_PRICE),
        (Action(ActionKind.BUY, float("nan")), FormatErrorKind.INVALID_PRICE),
        (Action(ActionKind.BUY, float("inf")), FormatErrorKind.INVALID_PRICE),
        (Action(ActionKind.BUY, 5e9), FormatErrorKind.INVALID_PRICE),
        (Action(ActionKind.REJECT, 5.0), FormatErrorKind.UNEXPECTED_PRICE),
    ],
)
def test_play_invalid_buyer_action_is_a_format_error(game: Negotiation, action: Action, kind: FormatErrorKind) -> None:
    game.play(action)
    assert game.outcome is Outcome.BUYER_FORMAT_ERROR and game.reward == -1.0
    assert game.messages[-1].format_error is not None and game.messages[-1].format_error.kind is kind


def test_play_rounds_prices_to_cents_like_step(game: Negotiation) -> None:
    record = game.play(Action(ActionKind.BUY, 120.126))
    assert record.action == Action(ActionKind.BUY, 120.13)
    assert game.last_buy == 120.13
    # The record's raw text reads back to the same action.
    game2 = Negotiation(make_scenario())
    assert game2.step(record.raw).action == record.action


def test_play_and_step_give_the_same_outcomes() -> None:
    script = [
        Action(ActionKind.BUY, 90.0),
        Action(ActionKind.SELL, 95.0),  # below cost: blocked
        Action(ActionKind.BUY, 101.0),
        Action(ActionKind.DEAL, 90.0),  # not the latest BUY
        Action(ActionKind.REJECT),
        Action(ActionKind.SELL, 180.0),
        Action(ActionKind.BUY, 120.0),
        Action(ActionKind.DEAL, 120.0),
    ]
    by_play, by_step = Negotiation(make_scenario()), Negotiation(make_scenario())
    for action in script:
        by_play.play(action, talk="t")
        by_step.step(format_message("", "t", action))
    assert by_play.outcome is by_step.outcome is Outcome.DEAL
    assert by_play.price == by_step.price == 120.0
    assert [(m.shown_action, [e.kind for e in m.events]) for m in by_play.messages] == [
        (m.shown_action, [e.kind for e in m.events]) for m in by_step.messages
    ]
    assert by_play.reward == by_step.reward == pytest.approx(40 / 60)
