"""The episodes file: one JSON line per finished episode, appended as each episode ends.

Crash safety: every record is written with a single ``write`` on a file opened in append mode, so a killed
process leaves at most one torn last line; opening the store cuts that line off. Resume: the keys of records
with status ``ok`` are finished and skipped; an ``errored`` record is kept for the audit trail but its key is
run again, and the later record supersedes it.

Memory: the store keeps only a small :class:`StoredEpisode` per key (who played, the seed and private values, the
metrics), never the transcripts, so a bench of a million episodes resumes and summarises in little memory;
:meth:`EpisodeStore.records` reads the full records back from the file.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import msgspec

from counteroffer.catalog.models import Scenario
from counteroffer.errors import CounterofferError
from counteroffer.game.records import EpisodeMetrics, EpisodeRecord, EpisodeStatus

T = TypeVar("T")
_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(EpisodeRecord)


def scenario_digest(scenario: Scenario) -> str:
    """A short fingerprint of everything in a scenario."""
    return hashlib.blake2b(_encoder.encode(scenario), digest_size=12).hexdigest()


class StoredEpisode(msgspec.Struct, gc=False, frozen=True, kw_only=True):
    """What the store keeps in memory of an episode: enough to resume, to check a resume's settings and to
    summarise (``summarize`` reads these fields), not the messages."""

    key: str
    status: EpisodeStatus
    buyer: str
    seller: str
    persona: str
    scenario_id: str  # the product: the unit that intervals resample
    seed: int
    max_turns: int
    scenario_digest: str  # of the whole scenario: product text and recipe as well as the private values
    metrics: EpisodeMetrics | None

    @classmethod
    def of(cls, record: EpisodeRecord) -> StoredEpisode:
        return cls(
            key=record.key,
            status=record.status,
            buyer=record.buyer,
            seller=record.seller,
            persona=record.persona,
            scenario_id=record.scenario_id,
            seed=record.seed,
            max_turns=record.max_turns,
            scenario_digest=scenario_digest(record.scenario),
            metrics=record.metrics,
        )


class EpisodeStoreError(CounterofferError, RuntimeError):
    """The episodes file holds a line that is not an episode record (not just a torn last line)."""


def _decode_complete_lines(
    path: Path, data: bytes, keep: Callable[[EpisodeRecord], T] = lambda record: record
) -> tuple[dict[str, T], int]:
    """``keep(record)`` of the latest record of each key in the complete lines of ``data``, and where those
    lines end."""
    complete = data.rfind(b"\n") + 1
    latest: dict[str, T] = {}
    for number, line in enumerate(data[:complete].splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = _decoder.decode(line)
        except msgspec.DecodeError as exc:
            raise EpisodeStoreError(
                f"{path}:{number}: not an episode record ({exc}); move the file aside or fix the line"
            ) from exc
        latest[record.key] = keep(record)
    return latest, complete


def read_episodes(path: str | Path) -> list[EpisodeRecord]:
    """The latest record of every key, for readers (reports, the web app) of a file that a run may be appending
    to: a last line still being written is skipped, and the file is never changed or created."""
    path = Path(path)
    if not path.exists():
        return []
    return list(_decode_complete_lines(path, path.read_bytes())[0].values())


class EpisodeStore:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._latest: dict[str, StoredEpisode] = {}
        self.repaired_bytes = self._load()
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def _load(self) -> int:
        """Read every record; cut off a torn last line (no newline) and return how many bytes were cut."""
        if not self.path.exists():
            return 0
        data = self.path.read_bytes()
        self._latest, complete = _decode_complete_lines(self.path, data, StoredEpisode.of)
        if complete < len(data):
            with self.path.open("rb+") as handle:
                handle.truncate(complete)
        return len(data) - complete

    def is_finished(self, key: str) -> bool:
        record = self._latest.get(key)
        return record is not None and record.status is EpisodeStatus.OK

    def latest(self, key: str) -> StoredEpisode | None:
        """What the store keeps of the latest record of ``key``, if any."""
        return self._latest.get(key)

    def append(self, record: EpisodeRecord) -> None:
        line = _encoder.encode(record) + b"\n"
        written = os.write(self._fd, line)
        if written != len(line):  # a regular file only short-writes when the disk is full
            raise OSError(f"short write to {self.path}: {written} of {len(line)} bytes")
        self._latest[record.key] = StoredEpisode.of(record)

    def stored(self) -> list[StoredEpisode]:
        """What the store keeps of the latest record of every key (in memory: no file read)."""
        return list(self._latest.values())

    def records(self) -> list[EpisodeRecord]:
        """The latest full record of every key, read back from the file."""
        return read_episodes(self.path)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> EpisodeStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
