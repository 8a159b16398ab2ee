"""The Talk-swap test: does a seller's price answer what the buyer *says*, its offers held fixed?

For each product (and rollout) the scripted reader buyer (``scripted:reader``, plain words) opens, the seller
answers (its Talk may hint at its lever: :mod:`counteroffer.game.hints`), and the reader makes its second offer.
That second message is then played four times from the same game, with the same offer and action and the same
sampling seed for the seller, under four Talks (:class:`Swap`):

- ``none``: the reader's template alone;
- ``right``: a true argument of the lever the seller hinted at, then the template;
- ``wrong``: a true market price or listing fact that is not the lever (a promise to pay is never the wrong
  argument: it binds the buyer's next move);
- ``false``: a market price 30% (at least $1) below the lowest public price, a claim the game finds false, then
  the template.

The seller's reply is recorded each time: its action and price, and its **concession**: how far its price fell
from its first one, as a share of that price (a deal counts the buyer's offer, a rejection the seller's standing
price: no concession; walking away has no price and is counted apart, ``quit_rate``). A seller that ignores
words concedes the same under all four (a scripted seller that prices on offers alone, exactly); a seller that
reads them concedes more to ``right`` than to ``none``, and less to ``false``. Each variant's difference from
``none`` is paired episode by episode, its interval resampling products (:mod:`counteroffer.evaluate.stats`).
``right`` and ``wrong`` need a hint: episodes whose seller hinted at no lever play only ``none`` and ``false``,
and the result counts them (``hinted``). An LLM seller's turns that the scripted fallback wrote are counted
(``fallback_rate``): those prices are the fallback's, not the model's.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from counteroffer.agents import Agent, Reply, TurnRequest, make_agent
from counteroffer.agents.scripted.arguers import argument_sentence
from counteroffer.catalog.models import Scenario
from counteroffer.catalog.recipes import CatalogName, load_scenarios
from counteroffer.evaluate.stats import Estimate, bootstrap_mean, rate_estimate
from counteroffer.files import write_text_atomic
from counteroffer.game.arguments import ArgumentKind, Listing, find_arguments
from counteroffer.game.hints import hinted_lever
from counteroffer.game.messages import (
    Action,
    ActionKind,
    FormatError,
    Role,
    format_message,
    format_money,
    parse_message,
)
from counteroffer.game.negotiation import DEFAULT_MAX_TURNS, GameConfig, Negotiation
from counteroffer.seeding import derive_seed

RESULT_FILE = "talk_swap.json"
FALSE_PRICE_CUT = 0.3  # the false claim's price: this share (and at least $1) below the lowest public price
BUYER = "scripted:reader"


class Swap(StrEnum):
    NONE = "none"
    RIGHT = "right"
    WRONG = "wrong"
    FALSE = "false"


class TalkSwapConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seller: str = Field(description="seller agent spec")
    persona: str = "neutral"
    catalog: CatalogName = "amazon"
    split: str = "test"
    limit: int | None = Field(None, ge=1, description="only the first K products")
    rollouts: int = Field(1, ge=1, description="games per product (seeds)")
    max_turns: int = Field(DEFAULT_MAX_TURNS, ge=3, description="the game's turn limit (the swap is at turn 2)")
    seed: int = 0
    data_root: str | None = None


@dataclass(frozen=True, slots=True)
class SwapReply:
    """The seller's reply to one variant of the buyer's second message."""

    product: str
    rollout: int
    swap: Swap
    action: ActionKind | None  # None: the seller's agent failed (no message)
    price: float | None
    concession: float | None  # (first price − this price) / first price; None without a price
    fallback: bool


class SwapSummary(BaseModel):
    swap: Swap
    n: int
    concession: Estimate
    deal_rate: Estimate
    quit_rate: Estimate
    # This variant's concession minus ``none``'s, episode by episode (None for ``none`` itself).
    versus_none: Estimate | None = None


class TalkSwapResult(BaseModel):
    config: TalkSwapConfig
    games: int  # games that reached the swap (the game still live and the reader offering again)
    errored: int  # games whose seller's first turn failed (an agent failure): left out
    hinted: int  # of those, games whose seller hinted at a lever
    fallback_rate: float | None  # the share of the swapped turns the scripted fallback wrote
    swaps: list[SwapSummary]


def talks(swap: Swap, lever: ArgumentKind | None, listing: Listing) -> str | None:
    """The argument ``swap`` puts before the template, ``""`` for none, or None where it cannot be made (no
    hinted lever, no true argument of another kind, no public price)."""
    if swap is Swap.NONE:
        return ""
    if swap is Swap.FALSE:
        if not listing.prices:
            return None
        name, price = min(listing.prices, key=lambda named: named[1])
        cited = round(price - max(FALSE_PRICE_CUT * price, 1.0), 2)
        claim = f"The {name} price is {format_money(cited)}."
        checked = find_arguments(claim, listing, 0)
        return claim if cited > 0 and checked and all(a.true is False for a in checked) else None
    if lever is None:
        return None
    if swap is Swap.RIGHT:
        return argument_sentence(lever, listing)
    others = [kind for kind in ArgumentKind if kind is not lever and kind is not ArgumentKind.QUICK_PAYMENT]
    return next((s for s in (argument_sentence(kind, listing) for kind in others) if s is not None), None)


def _seller_price(action: Action | None, buyer_offer: float, standing: float) -> float | None:
    """The price a seller's reply stands at: a deal's is the buyer's offer, a rejection's its standing price."""
    if action is None or action.kind is ActionKind.QUIT:
        return None
    if action.kind is ActionKind.DEAL:
        return buyer_offer
    return action.price if action.kind is ActionKind.SELL else standing


def run_talk_swap(config: TalkSwapConfig, out: Path | None = None) -> TalkSwapResult:
    """Play the test (see the module's docstring); with ``out``, also write ``out/talk_swap.json``."""
    scenarios = load_scenarios(config.catalog, config.split, data_root=config.data_root, limit=config.limit).scenarios
    seller = make_agent(config.seller, Role.SELLER, config.persona)
    buyer = make_agent(BUYER, Role.BUYER)
    try:
        replies, games, hinted, errored = _play(config, scenarios, seller, buyer)
    finally:
        seller.close()
    swapped = [reply for reply in replies if reply.action is not None or reply.fallback]
    result = TalkSwapResult(
        config=config,
        games=games,
        errored=errored,
        hinted=hinted,
        fallback_rate=sum(r.fallback for r in swapped) / len(swapped) if swapped else None,
        swaps=summarize_swaps(replies, config.seed),
    )
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        write_text_atomic(out / RESULT_FILE, result.model_dump_json(indent=2) + "\n")
    return result


@dataclass(slots=True)
class _Pending:
    product: str
    rollout: int
    swap: Swap
    game: Negotiation
    seed: int
    first_price: float
    offer: float


def _play(
    config: TalkSwapConfig, scenarios: Sequence[Scenario], seller: Agent, buyer: Agent
) -> tuple[list[SwapReply], int, int, int]:
    games: list[tuple[Scenario, int, Negotiation, int]] = []
    for scenario in scenarios:
        for rollout in range(config.rollouts):
            seed = derive_seed(config.seed, "talk-swap", scenario.scenario_id, rollout)
            game = Negotiation(scenario, GameConfig(max_turns=config.max_turns))
            games.append((scenario, rollout, game, seed))
    # The reader opens and the seller answers: each side's turns of every game in one batch.
    for role, agent in ((Role.BUYER, buyer), (Role.SELLER, seller)):
        live = [(game, seed) for _, _, game, seed in games if not game.done]
        messages = agent.act([TurnRequest(game.view(role), seed) for game, seed in live])
        for (game, _), message in zip(live, messages, strict=True):
            if isinstance(message, (str, Reply)):
                game.step(message.text if isinstance(message, Reply) else message)
    pending: list[_Pending] = []
    reached = hinted = errored = 0
    for scenario, rollout, game, seed in games:
        if game.done:
            continue
        if game.next_role is not Role.BUYER:  # the seller's first turn failed: nothing to swap against
            errored += 1
            continue
        view = game.view(Role.BUYER)
        (template,) = buyer.act([TurnRequest(view, seed)])
        parsed = parse_message(str(template), Role.BUYER)
        assert not isinstance(parsed, FormatError)
        if parsed.action.kind is not ActionKind.BUY or parsed.action.price is None:
            continue  # the reader takes the first price or walks away: no offer to hold fixed
        reached += 1
        lever = hinted_lever(game.messages)
        hinted += lever is not None
        for swap in Swap:
            argument = talks(swap, lever, view.listing)
            if argument is None:
                continue
            variant = copy.deepcopy(game)
            talk = f"{argument} {parsed.talk}".strip()
            variant.step(format_message(parsed.thought, talk, parsed.action))
            if not variant.done:
                pending.append(
                    _Pending(scenario.scenario_id, rollout, swap, variant, seed, view.last_sell, parsed.action.price)
                )
    answers = seller.act([TurnRequest(p.game.view(Role.SELLER), p.seed) for p in pending])
    replies = []
    for item, answer in zip(pending, answers, strict=True):
        fallback = isinstance(answer, Reply) and answer.fallback is not None
        action = None
        if isinstance(answer, (str, Reply)):
            record = item.game.step(answer.text if isinstance(answer, Reply) else answer)
            action = record.shown_action
        price = _seller_price(action, item.offer, item.first_price)
        concession = (item.first_price - price) / item.first_price if price is not None else None
        kind = action.kind if action is not None else None
        replies.append(SwapReply(item.product, item.rollout, item.swap, kind, price, concession, fallback))
    return replies, reached, hinted, errored


def summarize_swaps(replies: Sequence[SwapReply], seed: int = 0) -> list[SwapSummary]:
    """Each variant's concession and deal rate, and its concession paired with ``none``'s, clustered by product."""
    by_swap: dict[Swap, dict[tuple[str, int], SwapReply]] = {swap: {} for swap in Swap}
    for reply in replies:
        by_swap[reply.swap][(reply.product, reply.rollout)] = reply
    summaries = []
    for swap, found in by_swap.items():
        priced = [(key, r.concession) for key, r in found.items() if r.concession is not None]
        keys, products = list(found), [product for product, _ in found]
        versus = None
        if swap is not Swap.NONE:
            none = by_swap[Swap.NONE]
            pairs = [
                (key, c - none[key].concession) for key, c in priced if key in none and none[key].concession is not None
            ]
            versus = bootstrap_mean([d for _, d in pairs], clusters=[k[0] for k, _ in pairs], seed=seed)
        summaries.append(
            SwapSummary(
                swap=swap,
                n=len(found),
                concession=bootstrap_mean([c for _, c in priced], clusters=[k[0] for k, _ in priced], seed=seed),
                deal_rate=rate_estimate(
                    [found[k].action is ActionKind.DEAL for k in keys], clusters=products, seed=seed
                ),
                quit_rate=rate_estimate(
                    [found[k].action is ActionKind.QUIT for k in keys], clusters=products, seed=seed
                ),
                versus_none=versus,
            )
        )
    return summaries
