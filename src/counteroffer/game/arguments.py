"""Arguments: what a buyer's Talk claims about the market, the listing or its own payment, checked against the
scenario. Pure and deterministic; the game layer (no model code).

A seller that prices on offers and turns only cannot be moved by words. One that reads words must not be moved by
claims nobody can check either, or a trained buyer learns to say anything: so a word counts only where the game
can verify it. This module finds the arguments below in the **Talk** of a buyer's message (what the seller reads:
never its Thought, a model's separate reasoning, or the seller's messages; a message that did not parse has no
Talk), and checks each one. Every form read is one entry of :data:`FORMS`:

``market_price`` (an :class:`Argument`'s ``value`` is the amount cited)
    the buyer cites a market price shown to both sides (:func:`public_prices`: the product's current and average
    price where the catalogue has them; the asking price is the seller's own, and the lowest price is the seller's
    cost in the paper recipe, so neither is one). True iff the amount is within :data:`MARKET_TOLERANCE` (1%) or
    :data:`MARKET_TOLERANCE_DOLLARS` ($0.50), whichever is larger, of the price it names; a cited price that
    matches none is a false claim.

    - ``average_price``: *average* (optionally *market / selling / sale / retail*, optionally *price*), then *is /
      was / of / has been / 's / : / =* or nothing, then the amount: "the average price is $274.56", "average
      selling price of $274.56", "on average $274.56". Names the average price.
    - ``current_price``: *current* (optionally *market / selling / sale / retail / Amazon*) *price*, linked as
      above: "current price: $196.64". Names the current price.
    - ``currently_selling``: *currently sells / selling / goes / going / retails / retailing for / at*: "it's
      currently selling for $196.64". Names the current price.
    - ``selling_for``: *it / this model / this one* or *they / these / those*, optionally *'s / is / are / has /
      have*, optionally *been*, optionally one of *usually, typically, normally, generally, often, commonly,
      recently, mostly*, then *sells / selling / sold / goes / going / went / retails / retailing* (after a plural
      also *sell / go / retail*) *for / at*: "it's been selling for $274.56", "these go for $196.64". Any public
      price.
    - ``as_low_as``: *went / gone / dropped / fallen / fell / been / sold / dipped* (optionally *down*, *to*)
      *as low as* the amount: "it went as low as $196.64". Any public price.
    - ``market_rate``: *market price / value / rate* or *going rate*, linked as above: "the market price is
      $196.64". Any public price.

    Every form may put *about, around, roughly, approximately, only, just* before the amount.

``listing_fact`` (``value``: the quoted phrase)
    the buyer quotes the listing, in double quotes (straight or curly), right after a source and a verb.

    - ``listing_says``: *(the / your) listing / description / ad / advert / product page / item page / features
      (list) / specs / title*, then *say(s), said, state(s/d), mention(s/ed), list(s/ed), read(s), note(s/d),
      show(s), describe(s)*, optionally *:* or *,* and *that*: 'the listing says "no remote included"'.
    - ``per_listing``: *according to / per / from* and a source as above: 'per the description: "minor scratches
      on the lid"'.

    True iff the quoted words, normalized (lower case, every run of characters that are not letters or digits one
    space), appear whole-word in the normalized title, description and features (all of them, whatever a prompt
    caps). A quote of fewer than :data:`MIN_QUOTED_WORDS` words is not read (quoting "it" proves nothing), and
    neither is an unquoted paraphrase ("the listing says it has no remote"): only a verbatim quote can be checked.
    :func:`listing_facts` gives phrases a buyer can quote.

``quick_payment`` (``value``: None)
    a promise to close at once:

    - ``pay_now``: *I can / I will / I'll / ready to / able to* then *pay, close, settle, buy, complete, finalize,
      wrap this up*, then within 60 characters *today, tonight, now, right now, right away, immediately, this turn,
      on the spot*: "I can pay today", "I'll close this turn if you meet me at $90.00".
    - ``cash_now``: *cash* then *right now, today, tonight, now, on the spot, in hand*: "cash, right now".

    Not read where the words between the two parts end a sentence, negate ("I can pay, but not today") or name a
    later time (*tomorrow, later, next, week, weekend, month*), nor where the clause before it (up to 200
    characters back) holds a negation ("I don't have cash today"); "I can't pay today" has no promise in it.

    **The game holds the buyer to it**: the promise made at turn t is kept (true) iff the episode has a deal in turn
    t or t + 1 (the seller's [DEAL] of the buyer's offer, or the buyer's [DEAL] of the seller's counter), broken
    (false) once turn t + 1 has passed, or the episode ended, without one, and unknown (None) before:
    :func:`episode_arguments` and :func:`shown_arguments` resolve it over the messages so far.

Amounts have a ``$`` sign, as in :mod:`counteroffer.game.quotes` ("$1,234.56", "$82"): "it sells for 500" cites
nothing. Matching is case-insensitive. Each form is searched on its own; where two matches of one kind overlap
only the first counts, so one sentence is one argument of a kind.
"""

from __future__ import annotations

import bisect
import functools
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

import msgspec

from counteroffer.catalog.models import Product
from counteroffer.game.messages import Action, ActionKind, Role
from counteroffer.game.quotes import amount_in, money_pattern
from counteroffer.game.records import MessageRecord

MARKET_TOLERANCE = 0.01  # a cited market price may be rounded: "$275" for $274.56 is the average price
MARKET_TOLERANCE_DOLLARS = 0.50  # ... and a cheap product's "$5" for $4.79 too
MIN_QUOTED_WORDS = 2
FACT_WORDS = 4  # words of a listing line a fact quotes: short enough to say, long enough to be specific
MAX_FACTS = 3
_PROMISE_GAP = 60
_CLAUSE_LOOKBACK = 200  # characters before a promise searched for a negation: a clause, and bounded on 100 kB Talk


class ArgumentKind(StrEnum):
    MARKET_PRICE = "market_price"
    LISTING_FACT = "listing_fact"
    QUICK_PAYMENT = "quick_payment"


class Argument(msgspec.Struct, gc=False, frozen=True):
    """One argument found in a buyer's Talk: the words, what they cite, and whether the game found them true
    (None: a promise not yet tested)."""

    kind: ArgumentKind
    claim: str  # the words of the argument, as written
    value: float | str | None  # the market price cited, the phrase quoted; None for a promise
    true: bool | None
    turn: int


@dataclass(frozen=True, slots=True)
class Listing:
    """What both sides are shown of a product: the text a listing fact quotes and the public market prices."""

    title: str
    description: str = ""
    features: str = ""
    prices: tuple[tuple[str, float], ...] = ()  # (name, price), :func:`public_prices`

    @classmethod
    def of(cls, product: Product) -> Listing:
        return cls(product.title, product.description, product.features, tuple(public_prices(product).items()))


def public_prices(product: Product) -> dict[str, float]:
    """The market prices both sides may cite, by name: the current and the average price, where known."""
    named = {"current": product.current_price, "average": product.average_price}
    return {name: price for name, price in named.items() if price is not None}


_WORD_RE = re.compile(r"[^\W_]+")


def normalize(text: str) -> str:
    """Lower-case words joined by single spaces: "POWERFUL SUCTION: Deep-clean" → "powerful suction deep clean"."""
    return " ".join(_WORD_RE.findall(text.lower()))


@functools.lru_cache(maxsize=256)
def _listing_words(listing: Listing) -> str:
    return f" {normalize(' '.join((listing.title, listing.description, listing.features)))} "


def listing_facts(listing: Listing) -> tuple[str, ...]:
    """Up to :data:`MAX_FACTS` phrases a buyer can quote as a listing fact, each true: the first words of the
    feature lines, then of the description's lines, then of the title."""
    facts: list[str] = []
    for text in (listing.features, listing.description, listing.title):
        for line in text.splitlines():
            phrase = " ".join(line.replace('"', " ").replace("“", " ").replace("”", " ").split()[:FACT_WORDS])
            phrase = phrase.strip(" ,.;:!?-–—")
            if len(normalize(phrase).split()) >= MIN_QUOTED_WORDS and phrase not in facts:
                facts.append(phrase)
                if len(facts) == MAX_FACTS:
                    return tuple(facts)
    return tuple(facts)


# A check reads one match and the listing, and gives the argument's value and truth; None for words that are not
# an argument after all (a quote too short to check, a negated promise).
_Check = Callable[[re.Match[str], Listing], "tuple[float | str | None, bool | None] | None"]

_FLAGS = re.IGNORECASE
_APOSTROPHE = "['’]"
_LINK = rf"(?:\s+(?:is|was|of|has\s+been)|{_APOSTROPHE}s|\s*[:=])?\s*"
_APPROX = r"(?:(?:about|around|roughly|approximately|only|just)\s+)?"
_CITED = _APPROX + money_pattern("amount")
_AVERAGE_RE = re.compile(rf"\baverage(?:\s+(?:market|selling|sale|retail))?(?:\s+price)?{_LINK}{_CITED}", _FLAGS)
_CURRENT_RE = re.compile(rf"\bcurrent(?:\s+(?:market|selling|sale|retail|amazon))?\s+price{_LINK}{_CITED}", _FLAGS)
_CURRENTLY_RE = re.compile(
    rf"\bcurrently\s+(?:sells|selling|goes|going|retails|retailing)\s+(?:for|at)\s+{_CITED}", _FLAGS
)
_ADVERB = r"(?:\s+(?:usually|typically|normally|generally|often|commonly|recently|mostly))?"
_AUX = rf"(?:{_APOSTROPHE}s|{_APOSTROPHE}re|\s+is|\s+are|\s+has|\s+have)?(?:\s+been)?{_ADVERB}"
_SELLING_RE = re.compile(
    r"(?:\b(?:it|this\s+model|this\s+one)"
    rf"{_AUX}\s+(?:sells|selling|sold|goes|going|went|retails|retailing)"
    rf"|\b(?:they|these|those){_AUX}\s+(?:sells?|selling|sold|go(?:es)?|going|went|retail(?:s|ing)?))"
    rf"\s+(?:for|at)\s+{_CITED}",
    _FLAGS,
)
_AS_LOW_AS_RE = re.compile(
    rf"\b(?:went|gone|dropped|fallen|fell|been|sold|dipped)(?:\s+down)?(?:\s+to)?\s+as\s+low\s+as\s+{_CITED}", _FLAGS
)
_MARKET_RATE_RE = re.compile(rf"\b(?:market\s+(?:price|value|rate)|going\s+rate){_LINK}{_CITED}", _FLAGS)

_SOURCE = (
    r"(?:(?:the|your)\s+)?(?:listing|description|ad|advert|advertisement|product\s+page|item\s+page"
    r"|features?(?:\s+list)?|specs?|title)"
)
_QUOTED = r"[\"“”](?P<phrase>[^\"“”\n]{1,300})[\"“”]"
_LISTING_SAYS_RE = re.compile(
    rf"\b{_SOURCE}\s+(?:says?|said|states?|stated|mentions?|mentioned|lists?|listed|reads?|notes?|noted|shows?|describes?)"
    rf"\s*[:,]?\s*(?:that\s+)?{_QUOTED}",
    _FLAGS,
)
_PER_LISTING_RE = re.compile(rf"\b(?:according\s+to|per|from)\s+{_SOURCE}\s*[:,]?\s*{_QUOTED}", _FLAGS)

_WHEN = r"(?P<when>today|tonight|right\s+now|right\s+away|now|immediately|this\s+turn|on\s+the\s+spot)\b"
_PAY_NOW_RE = re.compile(
    rf"\b(?:I\s+(?:can|will)|I{_APOSTROPHE}ll|ready\s+to|able\s+to)\s+"
    r"(?:pay|close|settle|buy|complete|finali[sz]e|wrap\s+(?:this|it)\s+up)\b"
    rf"(?P<gap>[^\n]{{0,{_PROMISE_GAP}}}?)\b{_WHEN}",
    _FLAGS,
)
_CASH_NOW_RE = re.compile(rf"\bcash(?P<gap>\s*[,:–—-]?\s*)(?:{_WHEN}|in\s+hand\b)", _FLAGS)
_SENTENCE_END_RE = re.compile(r"[.!?;](?:\s|$)")
_NEGATION_RE = re.compile(r"\b(?:not|no|never|cannot)\b|n[’']t\b", _FLAGS)
_LATER_RE = re.compile(r"\b(?:tomorrow|later|next|week|weekend|month)\b", _FLAGS)


def _within_tolerance(amount: float, price: float) -> bool:
    return abs(amount - price) <= max(MARKET_TOLERANCE * price, MARKET_TOLERANCE_DOLLARS) + 1e-9


def _market(named: str | None) -> _Check:
    """The check of a market price form: against the price it names, or any public price (``named`` None)."""

    def check(match: re.Match[str], listing: Listing) -> tuple[float, bool]:
        amount = amount_in(match, "amount")
        prices = [price for name, price in listing.prices if named is None or name == named]
        return amount, any(_within_tolerance(amount, price) for price in prices)

    return check


def _check_quote(match: re.Match[str], listing: Listing) -> tuple[str, bool] | None:
    phrase = match.group("phrase").strip()
    words = normalize(phrase)
    if len(words.split()) < MIN_QUOTED_WORDS:
        return None
    return phrase, f" {words} " in _listing_words(listing)


def _check_promise(match: re.Match[str], listing: Listing) -> tuple[None, None] | None:
    gap = match.group("gap")
    if _SENTENCE_END_RE.search(gap) or _NEGATION_RE.search(gap) or _LATER_RE.search(gap):
        return None
    before = match.string[max(0, match.start() - _CLAUSE_LOOKBACK) : match.start()]
    ends = list(_SENTENCE_END_RE.finditer(before))
    if _NEGATION_RE.search(before, ends[-1].end() if ends else 0):
        return None
    return None, None


@dataclass(frozen=True, slots=True)
class Form:
    """One form of argument: where to find it and how to check one match."""

    name: str
    kind: ArgumentKind
    pattern: re.Pattern[str]
    check: _Check
    keywords: tuple[str, ...]  # lower-case words one of which every match holds: a text without any is skipped
    example: str  # a true argument of the form for :data:`EXAMPLE_LISTING` (the tests play every one)


# The listing every form's example is true of.
EXAMPLE_LISTING = Listing(
    title="Fire TV Stick (No Remote), 4K streaming",
    description="Used, minor scratches on the case.\nWorks fine.",
    features="No remote included\nHDMI cable and power adapter",
    prices=(("current", 39.99), ("average", 45.5)),
)

# Every form read, in one place (the module docstring describes each).
FORMS: tuple[Form, ...] = (
    Form(
        "average_price",
        ArgumentKind.MARKET_PRICE,
        _AVERAGE_RE,
        _market("average"),
        ("average",),
        "The average price is $45.50.",
    ),
    Form(
        "current_price",
        ArgumentKind.MARKET_PRICE,
        _CURRENT_RE,
        _market("current"),
        ("current",),
        "The current price is $39.99.",
    ),
    Form(
        "currently_selling",
        ArgumentKind.MARKET_PRICE,
        _CURRENTLY_RE,
        _market("current"),
        ("currently",),
        "It's currently selling for $39.99.",
    ),
    Form(
        "selling_for",
        ArgumentKind.MARKET_PRICE,
        _SELLING_RE,
        _market(None),
        ("sel", "sold", "go", "went", "retail"),
        "It's been selling for about $40.",
    ),
    Form("as_low_as", ArgumentKind.MARKET_PRICE, _AS_LOW_AS_RE, _market(None), ("low",), "It went as low as $39.99."),
    Form(
        "market_rate",
        ArgumentKind.MARKET_PRICE,
        _MARKET_RATE_RE,
        _market(None),
        ("market", "going rate"),
        "The market price is $45.50.",
    ),
    Form(
        "listing_says",
        ArgumentKind.LISTING_FACT,
        _LISTING_SAYS_RE,
        _check_quote,
        ('"', "“", "”"),
        'The listing says "no remote included".',
    ),
    Form(
        "per_listing",
        ArgumentKind.LISTING_FACT,
        _PER_LISTING_RE,
        _check_quote,
        ('"', "“", "”"),
        'Per the description: "minor scratches on the case".',
    ),
    Form(
        "pay_now",
        ArgumentKind.QUICK_PAYMENT,
        _PAY_NOW_RE,
        _check_promise,
        ("pay", "close", "settle", "buy", "complete", "finali", "wrap"),
        "I can pay today if we agree.",
    ),
    Form("cash_now", ArgumentKind.QUICK_PAYMENT, _CASH_NOW_RE, _check_promise, ("cash",), "Cash, right now."),
)


def find_arguments(talk: str, listing: Listing, turn: int) -> list[Argument]:
    """Every argument in one buyer Talk, in the order they appear; promises unresolved (``true`` None)."""
    lower = talk.lower()
    found: list[tuple[int, Argument]] = []
    spans: dict[ArgumentKind, list[tuple[int, int]]] = {}  # each kind's, disjoint and in order
    for form in FORMS:
        if not any(word in lower for word in form.keywords):  # cheaper than a scan, and most Talk holds none
            continue
        taken = spans.setdefault(form.kind, [])
        for match in form.pattern.finditer(talk):
            start, end = match.span()
            after = bisect.bisect_left(taken, (end,))  # the spans starting before this one ends
            if after and taken[after - 1][1] > start:
                continue  # overlaps one of its kind found already
            checked = form.check(match, listing)
            if checked is not None:
                taken.insert(after, (start, end))
                found.append((start, Argument(form.kind, match.group(0), *checked, turn)))
    found.sort(key=lambda item: item[0])
    return [argument for _, argument in found]


# One move of an episode: who moved, in which turn, and the action that took effect (None: none did).
Move = tuple[Role, int, ActionKind | None]


def promise_kept(turn: int, moves: Sequence[Move], finished: bool) -> bool | None:
    """Whether a promise made in ``turn`` was kept: a deal in that turn or the next; False once the next turn
    has passed (its seller message, or any later message, was played) or the episode finished without one."""
    if any(kind is ActionKind.DEAL and turn <= moved <= turn + 1 for _, moved, kind in moves):
        return True
    if finished or any(moved > turn + 1 or (role is Role.SELLER and moved == turn + 1) for role, moved, _ in moves):
        return False
    return None


def _arguments(
    talks: Iterable[tuple[int, str]], moves: Sequence[Move], listing: Listing, finished: bool
) -> list[Argument]:
    found = [argument for turn, talk in talks for argument in find_arguments(talk, listing, turn)]
    return [
        msgspec.structs.replace(argument, true=promise_kept(argument.turn, moves, finished))
        if argument.kind is ArgumentKind.QUICK_PAYMENT
        else argument
        for argument in found
    ]


def episode_arguments(messages: Sequence[MessageRecord], listing: Listing, finished: bool = True) -> list[Argument]:
    """Every argument in the Talk of an episode's buyer messages as the buyer wrote it, its promises resolved over
    the messages (``finished``: none will follow)."""
    talks = ((m.turn, m.talk) for m in messages if m.role is Role.BUYER and m.talk)
    moves = [(m.role, m.turn, m.shown_action.kind if m.shown_action else None) for m in messages]
    return _arguments(talks, moves, listing, finished)


class Shown(Protocol):
    """A message as the other side was shown it (``game.negotiation.VisibleMessage``)."""

    role: Role
    turn: int
    talk: str
    action: Action


def shown_arguments(history: Sequence[Shown], listing: Listing) -> list[Argument]:
    """Every argument in the buyer's Talk as the seller was shown it (after the game's redactions and cap) in a
    live episode, its promises resolved over the history so far: what a seller that reads words can know."""
    talks = ((m.turn, m.talk) for m in history if m.role is Role.BUYER and m.talk)
    return _arguments(talks, [(m.role, m.turn, m.action.kind) for m in history], listing, finished=False)


def false_claims(arguments: Iterable[Argument]) -> int:
    """How many of ``arguments`` the game found false (a promise still untested is not one)."""
    return sum(argument.true is False for argument in arguments)
