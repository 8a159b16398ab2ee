"""What a training run writes as it goes: ``train_log.jsonl`` (one line per step, plus held-out evaluations) and
the same numbers as TensorBoard scalars in ``tensorboard/``.

A GRPO step's line has the trainer's numbers (loss, learning rate, grad norm, ...), the game metrics of the
step's rollouts (``game``: reward, deal rate, bargained ratio, overshoot rate, first-offer ratio, turns,
format-error rate, ...), the share of its groups whose rewards are all equal (``groups``: ``flat_rate``, ``count``)
and a few sample transcripts. A held-out evaluation adds a line with ``"kind": "eval"``. Every line is a
:class:`~counteroffer.train.log_records.TrainLogEntry` (the fields of each kind are listed there), written here
only; :func:`~counteroffer.train.log_records.read_train_log` reads the file back. Only the main process writes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from counteroffer.files import write_text_atomic
from counteroffer.train.log_records import LOG_FILE, TrainLogEntry, TrainLogError, parse_train_log_line

__all__ = ["LOG_FILE", "TrainLog", "TrainLogEntry"]


class TrainLog(TrainerCallback):
    """Collects what the rollouts and evaluations report and writes it at each of the trainer's log events."""

    def __init__(self, out: Path, enabled: bool = True, start_step: int = 0) -> None:
        """``start_step``: the step the run starts after (the resumed checkpoint's, 0 for a fresh start). What an
        earlier, killed run logged after it is dropped, since it is trained again: no step is logged twice."""
        self.path = out / LOG_FILE
        self.enabled = enabled
        self.pending: dict[str, Any] = {}
        self._writer = None
        if enabled:
            out.mkdir(parents=True, exist_ok=True)
            self._rewind(start_step)
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(log_dir=str(out / "tensorboard"), purge_step=start_step + 1)

    def _rewind(self, start_step: int) -> None:
        """Keep the lines of steps up to ``start_step`` (a fresh start keeps none); a torn last line (a kill
        mid-write) goes too."""
        if not self.path.exists():
            return
        kept = []
        for line in self.path.read_text().splitlines(keepends=True):
            try:
                entry = parse_train_log_line(line)
            except TrainLogError:
                continue
            if start_step and line.endswith("\n") and entry.step <= start_step:
                kept.append(line)
        write_text_atomic(self.path, "".join(kept))

    def add(self, **fields: Any) -> None:
        """Attach fields (``game=…``, ``samples=…``: :class:`TrainLogEntry`'s) to the next step's line."""
        self.pending.update(fields)

    def write(self, entry: TrainLogEntry) -> None:
        if not self.enabled:
            return
        with self.path.open("a") as log:
            log.write(entry.to_line())
        sections = {"trainer": entry.trainer, "game": entry.game, "groups": entry.groups and entry.groups.model_dump()}
        for section, values in sections.items():
            for name, value in (values or {}).items():
                if isinstance(value, int | float) and not isinstance(value, bool):
                    prefix = entry.kind if section == "game" else section
                    self._writer.add_scalar(f"{prefix}/{name}", value, entry.step)
        self._writer.flush()

    def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: ANN001, ANN201 - TrainerCallback API
        if state.is_world_process_zero and logs is not None and "train_runtime" not in logs:
            self.write(TrainLogEntry(kind="train", step=state.global_step, trainer=dict(logs), **self.pending))
        self.pending = {}

    def on_train_end(self, args, state, control, **kwargs):  # noqa: ANN001, ANN201
        if self._writer is not None:
            self._writer.close()
