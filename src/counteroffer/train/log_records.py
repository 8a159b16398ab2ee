"""One line of a training run's ``train_log.jsonl``, as a typed record, and the one reader of the file.

:class:`~counteroffer.train.logs.TrainLog` (the trainer's callback) is the only writer: SFT and GRPO hand it
:class:`TrainLogEntry` records. Analysis (phases), the report's plots and the experiment read the file with
:func:`read_train_log`. This module imports neither torch nor transformers, so readers stay light.

The lines, by ``kind``:

- ``"data"`` (SFT, step 0): the demonstrations the stage trains on: ``demonstrations``, ``too_long`` (left out,
  longer than ``sft.max_length``) and ``tokens``;
- ``"train"`` (every logging step of SFT or GRPO): ``trainer``, the trainer's numbers (loss, learning rate, grad
  norm, SFT's ``mean_token_accuracy``, ...); a GRPO step adds ``game`` (the game metrics of the step's rollouts:
  reward, deal rate, bargained ratio, first-offer ratio, deadlock rates, format-error rate, episodes, errored,
  ...), ``game_by_seller`` (the same per seller of a mixture), ``groups`` (``count`` and ``flat_rate``: the share
  of groups whose rewards are all equal), ``samples`` (a few transcripts) and ``rollout`` (the main process's
  generation: seconds and token counts);
- ``"eval"`` (GRPO's held-out validation): ``game``, ``game_by_seller`` and one sample transcript.

Fields a line does not have are left out of it (a line is written with only the fields that were set), and
unknown fields are kept, so logs of older or newer versions still read.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from counteroffer.config_file import validation_problems
from counteroffer.errors import InputError

LOG_FILE = "train_log.jsonl"

LogKind = Literal["data", "train", "eval"]
# Game metrics by name (floats, counts, or None where no episode had the metric); kept as written.
Metrics = dict[str, Any]


class GroupStats(BaseModel):
    """GRPO's groups of one step: how many, and the share whose rewards are all equal (no gradient)."""

    model_config = ConfigDict(extra="allow")
    count: int
    flat_rate: float


class TrainLogEntry(BaseModel):
    """One line of ``train_log.jsonl`` (see the module's docstring for which kind has which fields)."""

    model_config = ConfigDict(extra="allow")
    kind: LogKind
    step: int = Field(ge=0, description="the trainer's global step (0: before the first)")
    trainer: dict[str, Any] = Field(default_factory=dict, description="the trainer's own numbers (train lines)")
    game: Metrics | None = Field(None, description="game metrics of the step's rollouts or held-out episodes")
    game_by_seller: dict[str, Metrics] = Field(default_factory=dict, description="game metrics per seller label")
    groups: GroupStats | None = None
    samples: list[str] = Field(default_factory=list, description="sample transcripts")
    rollout: dict[str, Any] | None = Field(None, description="the main process's generation: seconds, tokens")
    step_seconds: dict[str, float] | None = Field(
        None, description="a GRPO step's seconds by part (counteroffer.train.timing.PARTS)"
    )
    demonstrations: int | None = Field(None, description="data lines: SFT demonstrations played")
    too_long: int | None = Field(None, description="data lines: demonstrations longer than sft.max_length")
    tokens: int | None = Field(None, description="data lines: tokens of the kept demonstrations")

    def to_line(self) -> str:
        """The JSON line (with its newline) that the log holds: only the fields that were set."""
        return json.dumps(self.model_dump(exclude_unset=True)) + "\n"

    @classmethod
    def of(cls, entry: TrainLogEntry | dict[str, Any]) -> TrainLogEntry:
        """An entry as is, or a decoded line (a dict) validated as one."""
        return entry if isinstance(entry, TrainLogEntry) else cls.model_validate(entry)


class TrainLogError(InputError):
    """A line of a train log that is not JSON or not a log record; the message gives FILE:LINE."""


def parse_train_log_line(line: str, where: str = "<line>") -> TrainLogEntry:
    """One line as a record; ``where`` (``FILE:LINE``) starts the message of the :class:`TrainLogError`."""
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        raise TrainLogError(f"{where}: not a JSON line ({exc.msg})") from None
    try:
        return TrainLogEntry.model_validate(data)
    except ValidationError as exc:
        raise TrainLogError(f"{where}: not a train log line ({validation_problems(exc)})") from None


def read_train_log(path: Path) -> list[TrainLogEntry]:
    """Every line of a train log, in file order (blank lines skipped). A line that is not JSON (a torn write) or
    not a log record raises :class:`TrainLogError` naming the file and the line number."""
    return [
        parse_train_log_line(line, f"{path}:{number}")
        for number, line in enumerate(Path(path).read_text().splitlines(), start=1)
        if line.strip()
    ]
