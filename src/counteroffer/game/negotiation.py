"""The negotiation state machine (docs/design.md §1).

The buyer moves first; a turn is one buyer message and the seller's reply; the episode ends on a DEAL, a QUIT,
a buyer format or protocol error, or the turn limit. The asking price is the seller's standing offer until it
makes a [SELL]. A [DEAL] must name the counterpart's latest offer. The seller is wrapped by the regulator, and a
seller's malformed or illegal action becomes a [REJECT] (recorded as an event), so a faulty seller can never
end, or win, a game by breaking the rules.

Usage::

    game = Negotiation(scenario)
    while not game.done:
        game.step(agent_for(game.next_role).write(game.view(game.next_role)))
    game.outcome, game.price, game.reward
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import msgspec

from counteroffer.catalog.models import Scenario
from counteroffer.defaults import DEFAULT_MAX_TURNS
from counteroffer.game.arguments import Listing, public_prices
from counteroffer.game.messages import (
    Action,
    ActionKind,
    FormatError,
    Role,
    format_message,
    format_money,
    parse_action,
    parse_message,
)
from counteroffer.game.records import EpisodeMetrics, EventKind, GameEvent, MessageRecord, Outcome
from counteroffer.game.regulator import redact_budget, redact_cost, regulate_seller_action
from counteroffer.game.reward import PRICE_TOLERANCE, VALUE_EPSILON, buyer_reward, episode_metrics

DEFAULT_MAX_TALK_CHARS = 2000
TRUNCATION_MARK = " […]"
_NUMBER_CHAR = re.compile(r"[\d.,]")
_TRAILING_NUMBER = re.compile(r"\$?[\d.,]+$")
_BUYER_OPENING_ACTIONS = frozenset({ActionKind.BUY, ActionKind.REJECT})


class GameConfig(msgspec.Struct, gc=False, frozen=True, kw_only=True):
    max_turns: int = DEFAULT_MAX_TURNS
    # The longest Talk the other side is shown; longer Talk is cut (and the record keeps it whole), so one
    # 100 kB message cannot blow an LLM opponent's context or an endpoint's bill.
    max_talk_chars: int = DEFAULT_MAX_TALK_CHARS

    def __post_init__(self) -> None:
        if self.max_turns < 1:
            raise ValueError(f"max_turns must be at least 1, got {self.max_turns}")
        if self.max_talk_chars < 1:
            raise ValueError(f"max_talk_chars must be at least 1, got {self.max_talk_chars}")


def repair_text(text: str) -> tuple[str, str]:
    """``text`` with lone UTF-16 surrogates (which no UTF-8 file, JSON encoder or HTTP body accepts) replaced by
    U+FFFD, valid surrogate pairs joined; and what was repaired ("" when nothing was)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        repaired = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        return repaired, "UTF-16 surrogates repaired (pairs joined, lone ones replaced by U+FFFD)"
    return text, ""


class GameOver(RuntimeError):
    """Raised when a message is played into a finished game."""


@dataclass(frozen=True, slots=True)
class VisibleMessage:
    """A message as the other side sees it: Talk and the action that took effect, never the Thought."""

    role: Role
    turn: int
    talk: str
    action: Action


@dataclass(frozen=True, slots=True)
class RoleView:
    """What one role knows when it is its move: public facts, its own private value, and the visible history.

    ``own_messages`` are the role's own raw messages (an agent may re-read its own Thoughts); ``history`` is the
    whole conversation as shown, so the other side's Thought never appears in it.
    """

    role: Role
    scenario_id: str
    title: str
    category: str
    description: str
    features: str
    asking_price: float
    private_value: float  # the budget for the buyer, the cost for the seller
    turn: int
    max_turns: int
    history: tuple[VisibleMessage, ...]
    own_messages: tuple[str, ...]
    last_buy: float | None
    last_sell: float
    public_prices: tuple[tuple[str, float], ...]  # the market prices both sides may cite (game.arguments)

    @property
    def is_last_turn(self) -> bool:
        return self.turn >= self.max_turns

    @property
    def listing(self) -> Listing:
        """What both sides are shown of the product, as the argument checks read it."""
        return Listing(self.title, self.description, self.features, self.public_prices)


class Negotiation:
    """One episode's state. Feed it each side's raw messages in turn with :meth:`step`."""

    __slots__ = (
        "scenario",
        "config",
        "messages",
        "turn",
        "next_role",
        "last_buy",
        "last_sell",
        "outcome",
        "price",
        "_history",
        "_own_raw",
        "_public_prices",
    )

    def __init__(self, scenario: Scenario, config: GameConfig | None = None) -> None:
        self.scenario = scenario
        self.config = config or GameConfig()
        self.messages: list[MessageRecord] = []
        self.turn = 1
        self.next_role = Role.BUYER
        self.last_buy: float | None = None
        self.last_sell: float = scenario.asking_price
        self.outcome: Outcome | None = None
        self.price: float | None = None
        self._history: list[VisibleMessage] = []
        self._own_raw: dict[Role, list[str]] = {Role.BUYER: [], Role.SELLER: []}
        self._public_prices = tuple(public_prices(scenario.product).items())  # every view shows the same

    @property
    def done(self) -> bool:
        return self.outcome is not None

    @property
    def reward(self) -> float:
        if self.outcome is None:
            raise GameOver("the episode is not finished")
        return buyer_reward(self.outcome, self.price, self.scenario.budget, self.scenario.cost)

    def metrics(self) -> EpisodeMetrics:
        if self.outcome is None:
            raise GameOver("the episode is not finished")
        scenario = self.scenario
        return episode_metrics(
            self.messages, self.outcome, self.price, scenario.budget, scenario.cost, product=scenario.product
        )

    def view(self, role: Role) -> RoleView:
        product = self.scenario.product
        return RoleView(
            role=role,
            scenario_id=self.scenario.scenario_id,
            title=product.title,
            category=product.category,
            description=product.description,
            features=product.features,
            asking_price=self.scenario.asking_price,
            private_value=self.scenario.budget if role is Role.BUYER else self.scenario.cost,
            turn=self.turn,
            max_turns=self.config.max_turns,
            history=tuple(self._history),
            own_messages=tuple(self._own_raw[role]),
            last_buy=self.last_buy,
            last_sell=self.last_sell,
            public_prices=self._public_prices,
        )

    def step(self, raw: str) -> MessageRecord:
        """Play the next message (from :attr:`next_role`), given as raw text, and return its record."""
        self._require_live()
        raw, repaired = repair_text(raw)
        parsed = parse_message(raw, self.next_role)
        record = MessageRecord(role=self.next_role, turn=self.turn, raw=raw)
        if repaired:
            record.events.append(GameEvent(EventKind.INVALID_UNICODE, self.next_role, self.turn, repaired))
        if isinstance(parsed, FormatError):
            record.format_error = parsed
        else:
            record.thought, record.talk, record.action = parsed.thought, parsed.talk, parsed.action
        return self._play(record)

    def play(self, action: Action, talk: str = "", thought: str = "") -> MessageRecord:
        """Play an already-structured message (a person in the web app, a simulation); same rules as :meth:`step`."""
        self._require_live()
        (talk, talk_repaired), (thought, thought_repaired) = repair_text(talk), repair_text(thought)
        raw = format_message(thought, talk, action)
        record = MessageRecord(role=self.next_role, turn=self.turn, raw=raw, thought=thought, talk=talk)
        if talk_repaired or thought_repaired:
            detail = talk_repaired or thought_repaired
            record.events.append(GameEvent(EventKind.INVALID_UNICODE, self.next_role, self.turn, detail))
        # Check the action exactly as step() would read it back: allowed for the role, a price where one is needed
        # (positive, finite, in cents) and none where it is not. An illegal action is a format error, as in step().
        checked = parse_action(action.render(), self.next_role)
        if isinstance(checked, FormatError):
            record.format_error = checked
        else:
            record.action = checked
        return self._play(record)

    def _require_live(self) -> None:
        if self.outcome is not None:
            raise GameOver(f"the episode ended with {self.outcome}")

    def _play(self, record: MessageRecord) -> MessageRecord:
        role = record.role
        if role is Role.BUYER:
            self._apply_buyer(record)
        else:
            self._apply_seller(record)
        self.messages.append(record)
        self._own_raw[role].append(record.raw)
        if record.shown_action is not None:
            self._history.append(VisibleMessage(role, self.turn, record.shown_talk, record.shown_action))
        if self.outcome is None:
            if role is Role.SELLER:
                if self.turn >= self.config.max_turns:
                    self.outcome = Outcome.TURN_LIMIT
                else:
                    self.turn += 1
            self.next_role = role.other
        return record

    def _show(self, record: MessageRecord, action: Action, redacted: tuple[str, GameEvent | None]) -> None:
        """What the other side sees of a message: its action, and its (redacted) Talk cut to the game's cap."""
        talk, redaction = redacted
        if redaction is not None:
            record.events.append(redaction)
        record.shown_talk, record.shown_action = self._capped(talk, record), action

    def _capped(self, talk: str, record: MessageRecord) -> str:
        """``talk`` (already redacted) cut to the game's cap. A number the cut would split is dropped whole: the
        front of a number can be another amount (cutting "$1,234" can leave "$1", perhaps a private value)."""
        cap = self.config.max_talk_chars
        if len(talk) <= cap:
            return talk
        head = talk[:cap]
        if _NUMBER_CHAR.match(talk[cap]):
            head = _TRAILING_NUMBER.sub("", head)
        head = head.rstrip()
        record.events.append(
            GameEvent(EventKind.TALK_TRUNCATED, record.role, self.turn, f"{len(talk) - len(head)} characters cut")
        )
        return head + TRUNCATION_MARK

    def _end(self, outcome: Outcome, price: float | None = None) -> None:
        self.outcome, self.price = outcome, price

    def _buyer_error(self, record: MessageRecord, detail: str) -> None:
        record.events.append(GameEvent(EventKind.BUYER_PROTOCOL_ERROR, Role.BUYER, self.turn, detail))
        self._end(Outcome.BUYER_PROTOCOL_ERROR)

    def _apply_buyer(self, record: MessageRecord) -> None:
        action = record.action
        if action is None:
            detail = str(record.format_error or "")
            record.events.append(GameEvent(EventKind.BUYER_FORMAT_ERROR, Role.BUYER, self.turn, detail))
            self._end(Outcome.BUYER_FORMAT_ERROR)
            return
        if self.turn == 1 and action.kind not in _BUYER_OPENING_ACTIONS:
            self._buyer_error(record, f"the first buyer action must be [BUY] or [REJECT], not [{action.kind}]")
            return
        if action.kind is ActionKind.DEAL:
            assert action.price is not None
            if abs(action.price - self.last_sell) > PRICE_TOLERANCE:
                self._buyer_error(
                    record, f"{action.render()} is not the seller's latest offer {format_money(self.last_sell)}"
                )
                return
        budget = self.scenario.budget
        # An offer at the budget shows that number anyway, and its Talk may name it: only other mentions leak.
        offers_budget = action.price is not None and abs(action.price - budget) <= PRICE_TOLERANCE
        self._show(
            record, action, (record.talk, None) if offers_budget else redact_budget(record.talk, budget, self.turn)
        )
        if action.kind is ActionKind.BUY:
            assert action.price is not None
            self.last_buy = action.price
            if action.price > budget + VALUE_EPSILON:
                record.events.append(
                    GameEvent(EventKind.BUYER_OFFER_OVER_BUDGET, Role.BUYER, self.turn, action.render())
                )
        elif action.kind is ActionKind.DEAL:
            self._end(Outcome.DEAL, self.last_sell)
        elif action.kind is ActionKind.QUIT:
            self._end(Outcome.BUYER_QUIT)

    def _apply_seller(self, record: MessageRecord) -> None:
        turn = self.turn
        action = record.action
        if action is None:
            detail = str(record.format_error or "")
            record.events.append(GameEvent(EventKind.SELLER_FORMAT_ERROR, Role.SELLER, turn, detail))
            action = Action(ActionKind.REJECT)
        elif action.kind is ActionKind.DEAL:
            assert action.price is not None
            if self.last_buy is None or abs(action.price - self.last_buy) > PRICE_TOLERANCE:
                latest = "no offer" if self.last_buy is None else format_money(self.last_buy)
                record.events.append(
                    GameEvent(
                        EventKind.SELLER_PROTOCOL_ERROR,
                        Role.SELLER,
                        turn,
                        f"{action.render()} is not the buyer's latest offer ({latest})",
                    )
                )
                action = Action(ActionKind.REJECT)
        action, intervention = regulate_seller_action(action, self.scenario.cost, turn)
        if intervention is not None:
            record.events.append(intervention)
        self._show(record, action, redact_cost(record.talk, self.scenario.cost, turn))
        if action.kind is ActionKind.SELL:
            assert action.price is not None
            self.last_sell = action.price
        elif action.kind is ActionKind.DEAL:
            self._end(Outcome.DEAL, action.price)
        elif action.kind is ActionKind.QUIT:
            self._end(Outcome.SELLER_QUIT)
