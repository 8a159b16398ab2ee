"""A plain-text transcript of an episode (what training logs keep as samples) and its parser.

Format: a header line ``TITLE | budget B cost C asking A | OUTCOME at PRICE | reward R``, then one entry per
message, ``[ROLE TURN] RAW``; the further lines of a multi-line message are indented by four spaces, so a model
that writes ``[seller 1]`` at the start of a line cannot fake a message.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from counteroffer.game.messages import FormatError, Role, parse_message
from counteroffer.game.records import EpisodeRecord, MessageRecord, Outcome

_HEADER = re.compile(r"\| budget [-\d.]+ cost [-\d.]+ asking [-\d.]+ \| (?P<outcome>\S+) at \S+ \| reward [-\d.]+$")
CONTINUATION = "\n    "
_MESSAGE = re.compile(r"^\[(?P<role>buyer|seller) (?P<turn>\d+)\] ", re.MULTILINE)


def transcript_text(record: EpisodeRecord) -> str:
    """A readable transcript of one episode."""
    scenario = record.scenario
    lines = [
        f"{scenario.product.title[:80]} | budget {scenario.budget:.2f} cost {scenario.cost:.2f} "
        f"asking {scenario.asking_price:.2f} | {record.outcome} at {record.price} | reward {record.reward:.3f}"
    ]
    return "\n".join([*lines, messages_text(record.messages)])


def messages_text(messages: Sequence[MessageRecord]) -> str:
    """The messages of a transcript, one entry each (an episode in progress has no header yet)."""
    return "\n".join(f"[{m.role} {m.turn}] {m.raw.replace(chr(10), CONTINUATION)}" for m in messages)


@dataclass(frozen=True, slots=True)
class TranscriptMessage:
    role: Role
    turn: int
    raw: str

    @property
    def talk(self) -> str:
        """The Talk part; empty when the message does not parse (its text may hold the private Thought)."""
        parsed = parse_message(self.raw, self.role)
        return "" if isinstance(parsed, FormatError) else parsed.talk


@dataclass(frozen=True, slots=True)
class ParsedTranscript:
    outcome: Outcome | None  # None: an errored episode
    messages: list[TranscriptMessage]


def parse_transcript(text: str) -> ParsedTranscript:
    """Read back a :func:`transcript_text` (also those written before continuation lines were indented);
    raises ``ValueError`` when the header is not a transcript header."""
    header, _, body = text.partition("\n")
    match = _HEADER.search(header)
    if match is None:
        raise ValueError(f"not a transcript header: {header[:120]!r}")
    starts = list(_MESSAGE.finditer(body))
    messages = [
        TranscriptMessage(
            Role(start.group("role")),
            int(start.group("turn")),
            body[start.end() : starts[i + 1].start() if i + 1 < len(starts) else len(body)]
            .rstrip("\n")
            .replace(CONTINUATION, "\n"),
        )
        for i, start in enumerate(starts)
    ]
    outcome = match.group("outcome")
    return ParsedTranscript(outcome=None if outcome == "None" else Outcome(outcome), messages=messages)
