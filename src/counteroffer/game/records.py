"""Typed records of what happened in an episode: outcomes, events, messages, metrics and the episode itself.

An :class:`EpisodeRecord` holds everything needed to re-score the episode: the scenario with both private
values, every message raw and as shown, the parsed actions, the outcome, price, reward, metrics, seed and
agent specs. Records are msgspec structs, so they encode to and decode from JSON lines quickly and strictly.
They hold no reference cycles, so they opt out of the cyclic garbage collector (``gc=False``): a bench keeps
thousands of them alive, and GC passes over them made the engine's throughput noisy (median 5.3k → 6.7k eps/s).
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

import msgspec

from counteroffer.catalog.models import Scenario
from counteroffer.game.messages import Action, FormatError, Role


class Outcome(StrEnum):
    DEAL = "deal"
    BUYER_QUIT = "buyer_quit"
    SELLER_QUIT = "seller_quit"
    TURN_LIMIT = "turn_limit"
    BUYER_FORMAT_ERROR = "buyer_format_error"
    BUYER_PROTOCOL_ERROR = "buyer_protocol_error"

    @property
    def is_buyer_error(self) -> bool:
        return self in (Outcome.BUYER_FORMAT_ERROR, Outcome.BUYER_PROTOCOL_ERROR)

    @property
    def is_deadlock(self) -> bool:
        """The sides could not agree: the turn limit, or either side quit."""
        return self in (Outcome.TURN_LIMIT, Outcome.BUYER_QUIT, Outcome.SELLER_QUIT)


def deadlock_rate(outcomes: Sequence[Outcome]) -> float | None:
    """The share of ``outcomes`` where the sides could not agree (turn limit or a quit); None for none."""
    return sum(outcome.is_deadlock for outcome in outcomes) / len(outcomes) if outcomes else None


class EventKind(StrEnum):
    """Every oddity the game notices. Regulator interventions start with ``regulator_``."""

    BUYER_FORMAT_ERROR = "buyer_format_error"
    BUYER_PROTOCOL_ERROR = "buyer_protocol_error"
    BUYER_OFFER_OVER_BUDGET = "buyer_offer_over_budget"
    BUYER_BUDGET_REDACTED = "buyer_budget_redacted"  # the buyer stated its exact budget in Talk
    SELLER_FORMAT_ERROR = "seller_format_error"
    SELLER_PROTOCOL_ERROR = "seller_protocol_error"
    REGULATOR_SELL_BELOW_COST = "regulator_sell_below_cost"
    REGULATOR_DEAL_BELOW_COST = "regulator_deal_below_cost"
    REGULATOR_COST_REDACTED = "regulator_cost_redacted"
    INVALID_UNICODE = "invalid_unicode"  # lone surrogates in a message, replaced before anything else read it
    TALK_TRUNCATED = "talk_truncated"  # Talk longer than the game's cap was cut before the other side saw it
    AGENT_REASKED = "agent_reasked"  # a malformed message was asked again (detail: the malformed text)
    AGENT_FALLBACK = "agent_fallback"  # the agent gave up and another agent wrote the message (detail: its spec)

    @property
    def is_regulator_intervention(self) -> bool:
        return self.value.startswith("regulator_")


class GameEvent(msgspec.Struct, gc=False, frozen=True):
    kind: EventKind
    role: Role
    turn: int
    detail: str = ""


class MessageRecord(msgspec.Struct, gc=False, kw_only=True):
    """One message: what the agent wrote, how it parsed, and what the other side was shown."""

    role: Role
    turn: int
    raw: str
    thought: str = ""
    talk: str = ""
    action: Action | None = None  # the parsed action, before any regulation
    format_error: FormatError | None = None
    shown_talk: str = ""
    shown_action: Action | None = None  # the action that took effect and was shown
    events: list[GameEvent] = msgspec.field(default_factory=list)
    reasoning: str = ""  # a model's separate reasoning (<think> blocks, a reasoning field): never shown or parsed
    replaced_raw: str = ""  # when a fallback agent wrote ``raw``: what the agent itself last wrote


class EpisodeMetrics(msgspec.Struct, gc=False, frozen=True, kw_only=True):
    """Per-episode metrics of docs/design.md §1. ``None`` where a metric is undefined for this episode."""

    reward: float
    deal: bool
    bargained_ratio: float | None  # (B - P) / (B - C), deals only
    overshoot: bool  # any buyer offer or deal above the budget
    first_offer_ratio: float | None  # first [BUY] price / budget
    turns: int
    format_error: bool
    protocol_error: bool
    regulator_interventions: int
    mutual_interest: bool
    # Any budget, fraction or rounding the buyer stated wrongly (game/quotes.py), and how many it stated; None for
    # records written before these were counted.
    misquote: bool | None = None
    quotes: int | None = None
    # The arguments in the buyer's Talk (game/arguments.py), and how many the game found false; None for records
    # written before these were counted, or scored without the product.
    arguments: int | None = None
    false_claims: int | None = None
    # Whether they answered the seller's hint (game/hints.py: argued, only true arguments of the hinted lever);
    # None where the seller hinted at none, or for records written before it was counted.
    argument_match: bool | None = None


class EpisodeStatus(StrEnum):
    OK = "ok"
    ERRORED = "errored"  # an agent failed (e.g. an endpoint after its retries): excluded from scores, re-run


class EpisodeRecord(msgspec.Struct, gc=False, kw_only=True):
    key: str
    status: EpisodeStatus = EpisodeStatus.OK
    buyer: str
    seller: str
    persona: str
    rollout_index: int
    seed: int
    max_turns: int
    scenario: Scenario
    messages: list[MessageRecord]
    outcome: Outcome | None
    price: float | None
    reward: float
    metrics: EpisodeMetrics | None
    error: str | None = None

    @property
    def scenario_id(self) -> str:
        """The product's scenario: the unit that intervals resample."""
        return self.scenario.scenario_id


def episode_key(buyer: str, seller: str, persona: str, scenario_id: str, rollout_index: int) -> str:
    """The identity of an episode in a run: resuming skips keys already finished."""
    return f"{buyer}|{seller}|{persona}|{scenario_id}|{rollout_index}"
