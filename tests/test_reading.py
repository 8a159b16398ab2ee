"""Sellers that read the buyer's checked arguments (agents/scripted/reading.py) and the buyer that argues
(agents/scripted/arguers.py): the lever, the hints, what true, false, wasted and repeated arguments do, the
regulator, the oracle, and what arguing earns against them."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import msgspec
import pytest
from conftest import make_scenario, run_cli
from invariants import check_episode

from counteroffer.agents import TurnRequest, make_agent
from counteroffer.agents.registry import oracle_rivals
from counteroffer.agents.scripted import (
    ArguePolicy,
    ArguingBuyer,
    ConcessionSeller,
    Persona,
    ReadingSeller,
    TitForTatSeller,
)
from counteroffer.agents.scripted.arguers import PROMISE, argument_sentence
from counteroffer.agents.scripted.base import seller_floor
from counteroffer.agents.scripted.reading import Reading, read
from counteroffer.catalog import Scenario, load_scenarios
from counteroffer.game import Action, ActionKind, EpisodeRecord, Negotiation, Role
from counteroffer.game.arguments import Argument, ArgumentKind, Listing, find_arguments
from counteroffer.game.hints import HINTS, HintSet, argument_match, hinted_lever
from counteroffer.rollout.runner import plan_jobs, run_episodes
from counteroffer.seeding import derive_seed

MARKET, FACT, PAYMENT = ArgumentKind.MARKET_PRICE, ArgumentKind.LISTING_FACT, ArgumentKind.QUICK_PAYMENT
READING = ("reading-boulware", "reading-linear", "reading-conceder", "reading-titfortat")
PERSONAS = [persona.value for persona in Persona]


@pytest.fixture(scope="module")
def train_split(shared_data: Path) -> list[Scenario]:
    return load_scenarios("amazon", "train", data_root=shared_data).scenarios


@pytest.fixture(scope="module")
def test_split(shared_data: Path) -> list[Scenario]:
    return load_scenarios("amazon", "test", data_root=shared_data).scenarios


def play(scenarios: Sequence[Scenario], buyer: str, seller: str, persona: str = "neutral") -> list[EpisodeRecord]:
    seller_agent = make_agent(seller, Role.SELLER, persona)
    buyer_agent = make_agent(buyer, Role.BUYER)
    buyer_agent.bind_opponent(seller_agent)
    records: list[EpisodeRecord] = []
    run_episodes(
        plan_jobs(scenarios, [buyer], seller, persona, 1, 0), lambda _: (buyer_agent, seller_agent), records.append
    )
    return records


def mean_reward(records: Sequence[EpisodeRecord]) -> float:
    return sum(record.reward for record in records) / len(records)


# --------------------------------------------------------------------------------------------------------------------
# The registry


@pytest.mark.parametrize("persona", PERSONAS)
@pytest.mark.parametrize("name", READING)
def test_make_every_reading_seller(name: str, persona: str) -> None:
    seller = make_agent(f"scripted:{name}", Role.SELLER, persona)
    assert type(seller) is ReadingSeller and seller.persona is Persona(persona) and seller.reads_talk
    assert type(seller.base) is (TitForTatSeller if name.endswith("titfortat") else ConcessionSeller)
    assert seller.levers == tuple(ArgumentKind)


def test_reading_seller_parameters_take_effect() -> None:
    seller = make_agent(
        "scripted:reading-boulware?exponent=0.5&levers=listing_fact,market_price&hints=test", Role.SELLER
    )
    assert seller.base.exponent == 0.5 and seller.levers == (MARKET, FACT)  # canonical order, as written or not
    assert all(len(texts) == 1 for texts in seller.hints.values())
    assert isinstance(make_agent("scripted:arguer?policy=random&opening=0.2", Role.BUYER), ArguingBuyer)


@pytest.mark.parametrize(
    ("spec", "role", "message"),
    [
        ("scripted:reading-linear?levers=charm", Role.SELLER, "'charm' is not a valid ArgumentKind"),
        ("scripted:reading-linear?hints=dev", Role.SELLER, "'dev' is not a valid HintSet"),
        ("scripted:reading-titfortat?exponent=2", Role.SELLER, "unknown parameter.*exponent"),
        ("scripted:linear?levers=market_price", Role.SELLER, "unknown parameter.*levers"),
        ("scripted:arguer?policy=loud", Role.BUYER, "'loud' is not a valid ArguePolicy"),
        ("scripted:anchor?policy=hint", Role.BUYER, "unknown parameter.*policy"),
    ],
)
def test_bad_reading_specs_raise_a_helpful_error(spec: str, role: Role, message: str) -> None:
    from counteroffer.agents import AgentSpecError

    with pytest.raises(AgentSpecError, match=message):
        make_agent(spec, role)


# --------------------------------------------------------------------------------------------------------------------
# The lever and its hints


def test_the_hints_hold_out_one_wording_per_lever_and_never_name_the_argument() -> None:
    assert len({hint.id for hint in HINTS}) == len(HINTS)
    for lever in ArgumentKind:
        hints = [hint for hint in HINTS if hint.lever is lever]
        assert len(hints) >= 4 and sum(hint.held_out for hint in hints) == 1
    for hint in HINTS:
        assert find_arguments(hint.text, Listing("x"), 1) == []  # not an argument in any words
        lower = hint.text.lower()
        assert not any(word in lower for word in ("$", "average", "price is", "says", "pay", "cash", "today"))


def test_the_lever_is_drawn_from_the_seed_alone_and_unrelated_to_the_random_arguer() -> None:
    seller = make_agent("scripted:reading-linear", Role.SELLER)
    restricted = make_agent("scripted:reading-linear?levers=quick_payment,market_price", Role.SELLER)
    seeds = range(600)
    levers = [seller.lever(seed) for seed in seeds]
    assert all(300 > levers.count(kind) > 100 for kind in ArgumentKind)
    assert {restricted.lever(seed) for seed in seeds} == {PAYMENT, MARKET}
    # The random arguer's kind (every kind available) agrees with the lever about a third of the time.
    kinds = list(ArgumentKind)
    agree = sum(kinds[derive_seed(seed, "argument") % 3] is lever for seed, lever in zip(seeds, levers, strict=True))
    assert 0.25 < agree / len(seeds) < 0.42


@pytest.mark.parametrize("hints", list(HintSet))
def test_each_sell_opens_with_a_hint_of_the_lever_from_its_set(test_split: list[Scenario], hints: HintSet) -> None:
    seller = make_agent(f"scripted:reading-titfortat?hints={hints}", Role.SELLER)
    seen: set[str] = set()
    for record in play(test_split[:30], "scripted:arguer?policy=none", f"scripted:reading-titfortat?hints={hints}"):
        lever = seller.lever(record.seed)
        for message in record.messages:
            if message.role is Role.SELLER and message.shown_action.kind is ActionKind.SELL:
                (hint,) = [hint for hint in HINTS if message.shown_talk.startswith(hint.text)]
                assert hint.lever is lever
                assert hints is HintSet.ALL or hint.held_out is (hints is HintSet.TEST)
                seen.add(hint.id)
    assert len(seen) >= (3 if hints is HintSet.TEST else 6)


# --------------------------------------------------------------------------------------------------------------------
# What arguments do: one scenario, hand-played


def test_read_tells_the_lever_from_the_waste_and_the_lies() -> None:
    def argument(kind: ArgumentKind, turn: int, true: bool | None = True) -> Argument:
        return Argument(kind, "", None, true, turn)

    assert read([], MARKET, 1) == Reading(False, False, False, 0)
    assert read([argument(MARKET, 1)], MARKET, 1) == Reading(True, False, True, 0)
    assert read([argument(MARKET, 1), argument(FACT, 2), argument(MARKET, 2)], MARKET, 2) == Reading(
        True, False, False, 2
    )
    assert read([argument(PAYMENT, 1, None)], PAYMENT, 1) == Reading(True, False, True, 0)  # taken at its word
    assert read([argument(PAYMENT, 1, False), argument(MARKET, 2)], MARKET, 2).hardened


def test_the_match_needs_only_true_arguments_of_the_hinted_lever() -> None:
    def argument(kind: ArgumentKind, true: bool | None = True) -> Argument:
        return Argument(kind, "", None, true, 1)

    assert argument_match([argument(MARKET)], None) is None  # no hint: nothing to answer
    assert argument_match([], FACT) is False
    assert argument_match([argument(FACT), argument(FACT)], FACT) is True
    assert argument_match([argument(PAYMENT, None)], PAYMENT) is True  # a promise not yet tested
    assert argument_match([argument(FACT), argument(MARKET)], FACT) is False  # one off-lever argument
    assert argument_match([argument(FACT, False)], FACT) is False  # a false quote


def test_the_hinted_lever_is_read_from_the_sellers_talk_only(test_split: list[Scenario]) -> None:
    record = play(test_split[:1], "scripted:arguer?policy=none", "scripted:reading-linear?levers=listing_fact")[0]
    assert hinted_lever(record.messages) is FACT
    assert hinted_lever(record.messages, Role.BUYER) is None
    assert record.metrics is not None and record.metrics.argument_match is False  # it never argued


ASKING, COST = 200.0, 100.0
HELD = 150.01  # the first cent above cost, plus half the margin above it
MOVED = 112.51  # ... of which the lever leaves a quarter


def hand_played(seller_spec: str, buyer_moves: Sequence[tuple[Action, str]]) -> list[float | None]:
    """The seller's price after each buyer move (None where it accepted), on a $200 product that cost $100 with a
    current price of $180 and an average of $190, in a 6-turn game."""
    product = msgspec.structs.replace(make_scenario().product, current_price=180.0, average_price=190.0)
    scenario = msgspec.structs.replace(make_scenario(asking=ASKING, cost=COST), product=product)
    seller = make_agent(seller_spec, Role.SELLER)
    game = Negotiation(scenario)
    prices: list[float | None] = []
    for action, talk in buyer_moves:
        game.play(action, talk)
        if game.done:
            break
        game.step(seller.message(TurnRequest(game.view(Role.SELLER), seed=7)))
        shown = game.messages[-1].shown_action
        prices.append(shown.price if shown.kind is ActionKind.SELL else None)
    return prices


BUY = Action(ActionKind.BUY, 50.0)
TRUE_MARKET, FALSE_MARKET = "The average price is $190.00.", "The average price is $120.00."
TRUE_FACT = 'The listing says "a small espresso machine".'
SILENT_LINEAR = [191.67, 183.34, 175.01]  # the held floor's line, 150.01 + 49.99 × (1 - t/6), up to the cent


def test_silence_follows_the_held_floor() -> None:
    assert seller_floor(COST) + 0.5 * (ASKING - seller_floor(COST)) == pytest.approx(HELD, abs=0.01)
    assert hand_played("scripted:reading-linear", [(BUY, "")] * 3) == SILENT_LINEAR


def test_the_true_lever_moves_the_floor_and_the_price_at_once() -> None:
    prices = hand_played("scripted:reading-linear?levers=market_price", [(BUY, TRUE_MARKET), (BUY, ""), (BUY, "")])
    assert prices[0] == pytest.approx(ASKING - (HELD - MOVED))  # the floor's drop, at once
    assert prices[2] == pytest.approx(MOVED + (ASKING - MOVED) * 3 / 6, abs=0.01)  # then the lowered line
    assert all(price < silent for price, silent in zip(prices, SILENT_LINEAR, strict=True))


def test_a_false_claim_hardens_the_seller_for_the_rest_of_the_episode() -> None:
    lied = hand_played("scripted:reading-linear?levers=market_price", [(BUY, FALSE_MARKET), (BUY, TRUE_MARKET)] * 2)
    assert lied == [ASKING] * 4


def test_a_wasted_argument_halves_the_next_concession() -> None:
    wrong = hand_played("scripted:reading-linear?levers=listing_fact", [(BUY, TRUE_MARKET), (BUY, "")])
    assert ASKING - wrong[0] == pytest.approx((ASKING - SILENT_LINEAR[0]) / 2, abs=0.01)
    assert wrong[1] == SILENT_LINEAR[1]  # one halving, then back on its line
    # The lever pulled once, then again at turn 3 (when the lowered line has caught up with the price): wasted.
    once = hand_played("scripted:reading-linear?levers=listing_fact", [(BUY, TRUE_FACT), (BUY, ""), (BUY, "")])
    again = hand_played("scripted:reading-linear?levers=listing_fact", [(BUY, TRUE_FACT), (BUY, ""), (BUY, TRUE_FACT)])
    assert again[:2] == once[:2]
    assert again[1] - again[2] == pytest.approx((once[1] - once[2]) / 2, abs=0.01)


def test_a_promise_moves_the_seller_until_it_is_broken() -> None:
    spec = "scripted:reading-linear?levers=quick_payment"
    broken = hand_played(spec, [(BUY, PROMISE)] + [(BUY, "")] * 3)
    pulled = hand_played("scripted:reading-linear?levers=market_price", [(BUY, TRUE_MARKET)] + [(BUY, "")] * 3)
    assert broken[:2] == pulled[:2] and broken[0] == pytest.approx(ASKING - (HELD - MOVED))  # taken at its word
    assert broken[2:] == [broken[1]] * 2 and pulled[3] < pulled[2] < pulled[1]  # turn 2 passed: no more concessions
    assert hand_played(spec, [(BUY, PROMISE), (Action(ActionKind.DEAL, broken[0]), "")]) == [broken[0]]


# --------------------------------------------------------------------------------------------------------------------
# The rules hold whatever is said


@pytest.mark.parametrize("persona", PERSONAS)
@pytest.mark.parametrize("name", READING)
def test_no_argument_takes_a_reading_seller_below_cost(test_split: list[Scenario], name: str, persona: str) -> None:
    for policy in ArguePolicy:
        for record in play(
            test_split[:24], f"scripted:arguer?policy={policy}&opening=0.01", f"scripted:{name}", persona
        ):
            check_episode(record)
            cost = record.scenario.cost
            for message in record.messages:
                assert not any(event.kind.is_regulator_intervention for event in message.events), record.key
                if message.role is Role.SELLER:
                    assert message.shown_action.price is None or message.shown_action.price > cost, record.key


def test_reading_episodes_are_reproducible(test_split: list[Scenario]) -> None:
    first = play(test_split[:16], "scripted:arguer?policy=random", "scripted:reading-titfortat", "begging")
    again = play(test_split[:16], "scripted:arguer?policy=random", "scripted:reading-titfortat", "begging")
    assert [msgspec.json.encode(r) for r in first] == [msgspec.json.encode(r) for r in again]


@pytest.mark.parametrize(("seller", "persona"), [("reading-linear", "neutral"), ("reading-titfortat", "unyielding")])
def test_no_scripted_buyer_beats_the_oracle_against_a_reading_seller(
    test_split: list[Scenario], seller: str, persona: str
) -> None:
    """The oracle replays whole messages against a seller that reads them, so the arguing rivals bound it too."""
    scenarios = test_split[:6]
    oracle = {r.scenario_id: r.reward for r in play(scenarios, "scripted:oracle", f"scripted:{seller}", persona)}
    for rival in oracle_rivals():
        for record in play(scenarios, rival, f"scripted:{seller}", persona):
            assert oracle[record.scenario_id] >= record.reward, (rival, record.scenario_id)


# --------------------------------------------------------------------------------------------------------------------
# What arguing earns


def test_the_arguer_says_true_things(train_split: list[Scenario]) -> None:
    for scenario in train_split[:40]:
        listing = Listing.of(scenario.product)
        for kind in ArgumentKind:
            sentence = argument_sentence(kind, listing)
            assert sentence is not None
            (argument,) = find_arguments(sentence, listing, 1)
            assert argument.kind is kind and argument.true is not False


class _Repeater(ArguingBuyer):
    """Argues every true market price and listing fact, every turn (no promise, so never a false claim)."""

    def arguments(self, request: TurnRequest) -> list[str]:
        listing = request.view.listing
        return [sentence for kind in (MARKET, FACT) if (sentence := argument_sentence(kind, listing))]


def test_reading_the_hint_pays_and_arguing_everything_does_not(train_split: list[Scenario]) -> None:
    """Against the reading sellers on 40 train products: citing the hinted lever once beats arguing at random, which
    beats silence; arguing everything every turn is no better than silence (its broken promises harden the seller),
    and repeating true arguments every turn loses to making the right one once."""
    scenarios = train_split[:40]
    sellers = ("scripted:reading-linear", "scripted:reading-titfortat")
    policies = [policy.value for policy in ArguePolicy]
    rewards = {
        policy: sum(mean_reward(play(scenarios, f"scripted:arguer?policy={policy}", s)) for s in sellers) / 2
        for policy in policies
    }
    assert rewards["hint"] > rewards["random"] + 0.1 > rewards["none"] + 0.1, rewards
    assert rewards["all"] <= rewards["none"], rewards
    for seller in (f"{s}?levers=market_price,listing_fact" for s in sellers):
        repeater, seller_agent = _Repeater("scripted:repeater"), make_agent(seller, Role.SELLER)
        records: list[EpisodeRecord] = []
        run_episodes(
            plan_jobs(scenarios, ["repeater"], seller, "neutral", 1, 0),
            lambda _, pair=(repeater, seller_agent): pair,
            records.append,
        )
        assert mean_reward(records) < mean_reward(play(scenarios, "scripted:arguer?policy=hint", seller)) - 0.05


def test_a_bench_summary_counts_arguments_false_claims_and_matches(shared_data: Path, tmp_path: Path) -> None:
    """End to end through the CLI: the summary's argument, false-claim and argument-lever match rates, with exact
    intervals: the buyer that answers the hint matches it nearly always, one that argues at random about a third
    of the time, one that argues everything never."""
    buyers = [
        "scripted:arguer?policy=none",
        "scripted:arguer?policy=hint",
        "scripted:arguer?policy=all",
        "scripted:arguer?policy=random",
    ]
    args = [a for buyer in buyers for a in ("--buyer", buyer)]
    args += ["--seller", "scripted:reading-linear", "--split", "test", "--limit", "24"]
    result = run_cli("bench", *args, "--data", shared_data, "--out", tmp_path / "run")
    assert result.returncode == 0, result.stderr
    rows = {row["buyer"]: row["overall"] for row in json.loads((tmp_path / "run" / "summary.json").read_text())["rows"]}
    silent, hinted, everything, random = (rows[buyer] for buyer in buyers)
    assert silent["argument_rate"]["mean"] == 0 and silent["false_claim_rate"]["mean"] == 0
    assert silent["argument_match_rate"]["mean"] == 0 and everything["argument_match_rate"]["mean"] == 0
    assert hinted["argument_match_rate"]["mean"] > 0.8 > random["argument_match_rate"]["mean"] > 0.1
    assert hinted["argument_match_rate"]["n"] == hinted["episodes"]  # every reading seller's offer hints
    assert hinted["argument_rate"]["mean"] > 0.5
    assert everything["argument_rate"]["mean"] == 1 and everything["false_claim_rate"]["mean"] > 0  # broken promises
    assert everything["false_claim_rate"]["events"] <= everything["false_claim_rate"]["n"]


def test_which_specs_read_words_is_told_without_loading_a_model() -> None:
    from counteroffer.agents.registry import reads_talk

    assert reads_talk("scripted:reading-linear?levers=market_price", Role.SELLER)
    assert not reads_talk("scripted:linear", Role.SELLER)
    assert reads_talk("hf:/no/such/model?levers=all", Role.SELLER)  # a path that does not exist: nothing loaded
    assert not reads_talk("hf:/no/such/model", Role.SELLER)


def test_the_levers_draw_does_not_depend_on_the_order_they_are_written() -> None:
    from counteroffer.game.hints import draw_lever, parse_levers

    forward, backward = parse_levers("market_price,listing_fact"), parse_levers("listing_fact, market_price")
    assert forward == backward == (MARKET, FACT)
    assert all(draw_lever(seed, forward) is draw_lever(seed, backward) for seed in range(50))
