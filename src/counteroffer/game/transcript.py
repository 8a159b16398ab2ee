"""A plain-text transcript of an episode (what training logs keep as samples) and its parser.

Format: a header line ``TITLE | budget B cost C asking A | OUTCOME at PRICE | reward R``, then one entry per
message, ``[ROLE TURN] RAW`` (a raw message may span several lines).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from counteroffer.game.messages import FormatError, Role, parse_message
from counteroffer.game.records import EpisodeRecord, Outcome

_HEADER = re.compile(
    r"\| budget (?P<budget>[-\d.]+) cost (?P<cost>[-\d.]+) asking [-\d.]+ \| (?P<outcome>\S+) at (?P<price>\S+) "
    r"\| reward (?P<reward>[-\d.]+)$"
)
_MESSAGE = re.compile(r"^\[(?P<role>buyer|seller) (?P<turn>\d+)\] ", re.MULTILINE)


def transcript(record: EpisodeRecord) -> str:
    """A readable transcript of one episode."""
    scenario = record.scenario
    lines = [
        f"{scenario.product.title[:80]} | budget {scenario.budget:.2f} cost {scenario.cost:.2f} "
        f"asking {scenario.asking_price:.2f} | {record.outcome} at {record.price} | reward {record.reward:.3f}"
    ]
    lines += [f"[{m.role} {m.turn}] {m.raw}" for m in record.messages]
    return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class TranscriptMessage:
    role: Role
    turn: int
    raw: str

    @property
    def talk(self) -> str:
        """The Talk part; the whole text when the message does not parse."""
        parsed = parse_message(self.raw, self.role)
        return self.raw if isinstance(parsed, FormatError) else parsed.talk


@dataclass(frozen=True, slots=True)
class ParsedTranscript:
    outcome: Outcome | None  # None: an errored episode
    price: float | None
    reward: float
    budget: float
    cost: float
    messages: list[TranscriptMessage]


def parse_transcript(text: str) -> ParsedTranscript:
    """Read back a :func:`transcript`; raises ``ValueError`` when the header is not a transcript header."""
    header, _, body = text.partition("\n")
    match = _HEADER.search(header)
    if match is None:
        raise ValueError(f"not a transcript header: {header[:120]!r}")
    starts = list(_MESSAGE.finditer(body))
    messages = [
        TranscriptMessage(
            Role(start.group("role")),
            int(start.group("turn")),
            body[start.end() : starts[i + 1].start() if i + 1 < len(starts) else len(body)].rstrip("\n"),
        )
        for i, start in enumerate(starts)
    ]
    outcome = match.group("outcome")
    price = match.group("price")
    return ParsedTranscript(
        outcome=None if outcome == "None" else Outcome(outcome),
        price=None if price == "None" else float(price),
        reward=float(match.group("reward")),
        budget=float(match.group("budget")),
        cost=float(match.group("cost")),
        messages=messages,
    )
