"""Hypothesis fuzzing of whole episodes: both sides write random messages (valid, invalid for the role, with
prices that are negative, zero, NaN, huge, near the other side's offer or equal to a private value, or plain noise)
and the game's invariants (``invariants.check_episode``) hold in every one of 10,000 generated episodes.

Messages are mostly legal for their role, so that episodes go deep: with the fixed seed, the 10,000 episodes end
35% on a buyer protocol error, 32% on a buyer format error, 12% at the turn limit, 10% on a seller quit, 6% in a
deal and 4% on a buyer quit, and they raise every event kind of the game (regulator blocks and redactions,
protocol and format errors, invalid unicode, truncated Talk, over-budget offers)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from invariants import check_episode

from counteroffer.catalog.models import Product, Scenario
from counteroffer.game import Negotiation, Role
from counteroffer.game.negotiation import GameConfig
from counteroffer.rollout.runner import EpisodeJob, record_of

EPISODES = 10_000
FULL_WIDTH = str.maketrans("0123456789", "０１２３４５６７８９")
KINDS = ["BUY", "SELL", "DEAL", "REJECT", "QUIT", "OFFER", ""]
NOISE = st.text(st.characters(codec="utf-8"), max_size=40) | st.sampled_from(
    [
        "",
        "   ",
        "Action:",
        "[DEAL]",
        "Thought: x",
        "\x00",
        "\u202e",
        "\ud800 lone",
        "\udfff",
        "Talk:\nAction:\nAction:",
        "[SELL] $5 [BUY] $4",
    ]
)


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    cost = draw(st.floats(1.0, 5000.0)).__round__(2)
    budget = draw(st.one_of(st.floats(0.5, 6000.0), st.just(cost))).__round__(2)  # MI, CI and B == C
    asking = round(max(cost, budget) * draw(st.floats(1.0, 2.0)), 2)
    product = Product(product_id="p", source="amazon", title="Fuzzed widget", category="fuzz", list_price=asking)
    return Scenario(scenario_id="fuzz", recipe="fuzz", product=product, asking_price=asking, budget=budget, cost=cost)


def price_text(draw: st.DrawFn, game: Negotiation, kind: str) -> str:
    """Mostly a plausible price (the other side's offer for a DEAL, else near a private value or an offer), else
    something no price should be."""
    if draw(st.integers(0, 4)) == 0:
        weird = draw(
            st.floats(allow_nan=True, allow_infinity=True)
            | st.integers(-(10**30), 10**30)
            | st.sampled_from(["abc", ""])
        )
        return f"${weird}"
    other_offer = game.last_sell if game.next_role is Role.BUYER else (game.last_buy or game.scenario.asking_price)
    if kind == "DEAL" and draw(st.integers(0, 3)) > 0:
        amount = other_offer
    else:
        anchor = draw(
            st.sampled_from([game.scenario.budget, game.scenario.cost, other_offer, game.scenario.asking_price])
        )
        amount = round(anchor * draw(st.sampled_from([1.0, 0.5, 0.9, 0.99, 1.01, 1.1]) | st.floats(0.2, 2.0)), 2)
    style = draw(st.sampled_from(["${:,.2f}", "${:.2f}", "$ {:.2f}", "{:.2f}"]))
    text = style.format(max(amount, 0.01))
    return text.translate(FULL_WIDTH) if draw(st.integers(0, 9)) == 0 else text  # "１５００" is an amount too


ROLE_KINDS = {
    Role.BUYER: ["BUY", "BUY", "DEAL", "REJECT", "QUIT"],
    Role.SELLER: ["SELL", "SELL", "DEAL", "REJECT", "QUIT"],
}


def message_text(draw: st.DrawFn, game: Negotiation) -> str:
    if draw(st.integers(0, 19)) == 0:
        return draw(NOISE)
    kinds = ROLE_KINDS[game.next_role] if draw(st.integers(0, 9)) > 0 else KINDS
    kind = draw(st.sampled_from(kinds))
    takes_price = kind in ("BUY", "SELL", "DEAL")
    if draw(st.integers(0, 19)) == 0:
        takes_price = not takes_price
    action = f"[{kind}] {price_text(draw, game, kind)}" if takes_price else f"[{kind}]"
    talk = draw(st.sampled_from(["", "ok", "My number is {}.", "I paid {} for it", "Budget {}?"])).format(
        price_text(draw, game, "")
    )
    parts = [f"Thought: {draw(NOISE)}"] if draw(st.booleans()) else []
    parts += [f"Talk: {talk}", f"Action: {action}"]
    return "\n".join(parts)


@pytest.mark.slow
@settings(max_examples=EPISODES, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])  # fmt: skip
@given(scenario=scenarios(), max_turns=st.integers(1, 4), data=st.data())
def test_invariants_hold_in_generated_episodes(scenario: Scenario, max_turns: int, data: st.DataObject) -> None:
    game = Negotiation(scenario, GameConfig(max_turns=max_turns, max_talk_chars=30))
    while not game.done:
        game.step(message_text(data.draw, game))
    record = record_of(EpisodeJob("fuzz:buyer", "fuzz:seller", "neutral", scenario, 0, 0), game)
    check_episode(record, max_talk_chars=30)
    assert record.messages[0].role is Role.BUYER
