"""What a training run writes as it goes: ``train_log.jsonl`` (one line per step, plus held-out evaluations) and
the same numbers as TensorBoard scalars in ``tensorboard/``.

A GRPO step's line has the trainer's numbers (loss, learning rate, grad norm, ...), the game metrics of the
step's rollouts (``game``: reward, deal rate, bargained ratio, overshoot rate, first-offer ratio, turns,
format-error rate, ...), the share of its groups whose rewards are all equal (``groups``: ``flat_rate``, ``count``)
and a few sample transcripts. A held-out evaluation adds a line with ``"kind": "eval"``.
Only the main process writes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from counteroffer.files import write_text_atomic

LOG_FILE = "train_log.jsonl"


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
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            if start_step and line.endswith("\n") and entry.get("step", 0) <= start_step:
                kept.append(line)
        write_text_atomic(self.path, "".join(kept))

    def add(self, **fields: Any) -> None:
        """Attach fields (``game=…``, ``samples=…``) to the next step's line."""
        self.pending.update(fields)

    def write(self, entry: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with self.path.open("a") as log:
            log.write(json.dumps(entry) + "\n")
        step = entry["step"]
        for section in ("trainer", "game", "groups"):
            for name, value in (entry.get(section) or {}).items():
                if isinstance(value, int | float) and not isinstance(value, bool):
                    prefix = entry["kind"] if section == "game" else section
                    self._writer.add_scalar(f"{prefix}/{name}", value, step)
        self._writer.flush()

    def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: ANN001, ANN201 - TrainerCallback API
        if state.is_world_process_zero and logs is not None and "train_runtime" not in logs:
            self.write({"kind": "train", "step": state.global_step, "trainer": dict(logs), **self.pending})
        self.pending = {}

    def on_train_end(self, args, state, control, **kwargs):  # noqa: ANN001, ANN201
        if self._writer is not None:
            self._writer.close()
