"""Where a GRPO step's time goes, logged with the step (``step_seconds`` in ``train_log.jsonl``).

- ``rollout``: playing the step's episodes (the policy's turns, the sellers' turns and the game), of which
  ``policy_generation`` is inside the policy's generator;
- ``log_probabilities``: the loss's forward passes over every episode's tokens;
- ``backward``: the training steps' time outside those two, which is the backward passes and TRL's input
  preparation besides the rollout (rewards and advantages; the old policy's log-probabilities when
  ``num_iterations > 1``, which the recipe does not use);
- ``optimizer``;
- ``step``: the whole step, so ``step`` minus the parts is what none of them covers (callbacks, logging).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from transformers import TrainerCallback

from counteroffer.train.logs import TrainLog

PARTS = ("rollout", "policy_generation", "log_probabilities", "backward", "optimizer", "step")


class StepClock(TrainerCallback):
    """Sums the seconds of each part of a step (see the module docstring) and hands them to the train log."""

    def __init__(self, log: TrainLog) -> None:
        self.log = log
        self.seconds: dict[str, float] = defaultdict(float)
        self._step_started = self._optimizer_started = 0.0

    @contextmanager
    def timing(self, part: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[part] += time.perf_counter() - started

    def add(self, part: str, seconds: float) -> None:
        self.seconds[part] += seconds

    def on_step_begin(self, args, state, control, **kwargs: Any) -> None:  # noqa: ANN001 - TrainerCallback API
        self.seconds = defaultdict(float)
        self._step_started = time.perf_counter()

    def on_pre_optimizer_step(self, args, state, control, **kwargs: Any) -> None:  # noqa: ANN001
        self._optimizer_started = time.perf_counter()

    def on_optimizer_step(self, args, state, control, **kwargs: Any) -> None:  # noqa: ANN001
        self.seconds["optimizer"] += time.perf_counter() - self._optimizer_started

    def on_step_end(self, args, state, control, **kwargs: Any) -> None:  # noqa: ANN001
        self.seconds["step"] = time.perf_counter() - self._step_started
        self.log.add(step_seconds=self.breakdown())

    def breakdown(self) -> dict[str, float]:
        """The step's parts in seconds (see the module docstring)."""
        seconds = dict(self.seconds)
        training = seconds.pop("training_step", 0.0)
        seconds["backward"] = training - seconds.get("rollout", 0.0) - seconds.get("log_probabilities", 0.0)
        return {part: round(seconds.get(part, 0.0), 3) for part in PARTS}


def timed_trainer_class(base: type) -> type:
    """``base`` (``trl.GRPOTrainer``) with its training step and loss (``Trainer``'s overridable methods) timed by
    a :class:`StepClock` passed as ``clock=``."""

    class TimedTrainer(base):
        def __init__(self, *args: Any, clock: StepClock, **kwargs: Any) -> None:
            self.clock = clock
            super().__init__(*args, **kwargs)

        def training_step(self, *args: Any, **kwargs: Any):  # noqa: ANN202
            with self.clock.timing("training_step"):
                return super().training_step(*args, **kwargs)

        def compute_loss(self, *args: Any, **kwargs: Any):  # noqa: ANN202
            with self.clock.timing("log_probabilities"):
                return super().compute_loss(*args, **kwargs)

    TimedTrainer.__name__ = TimedTrainer.__qualname__ = f"Timed{base.__name__}"
    return TimedTrainer
