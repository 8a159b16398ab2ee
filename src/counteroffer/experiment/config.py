"""What defines an experiment: a training config (``counteroffer.train.TrainConfig``, from its YAML file and
``--set`` overrides) and the experiment's own options: where its results go, the evaluation's size, the ledger."""

from __future__ import annotations

import shlex
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from counteroffer.config_file import parse_overrides
from counteroffer.train.config import TrainConfig, load_config

DEFAULT_RESULTS = Path("bench/results/cpu-learning")
# Relative to the current directory (the repository's root, where the recorded runs are made).
DEFAULT_LEDGER = Path("bench/results/test-evaluations.jsonl")


class ExperimentConfig(BaseModel):
    """A training config and the experiment's options (``counteroffer experiment``'s arguments)."""

    model_config = ConfigDict(extra="forbid")
    source: Path = Field(description="the training config file (YAML) that ``train`` was read from")
    overrides: list[str] = Field(default_factory=list, description="FIELD=VALUE items set on top of it (--set)")
    train: TrainConfig = Field(description="the training config: checkpoints and working episodes go to its out")
    results: Path = Field(DEFAULT_RESULTS, description="the results folder: summary.json, summary.md, ...")
    rollouts: int = Field(2, ge=1, description="episodes per test product and buyer")
    later_rollouts: int | None = Field(
        None, ge=1, description="rollouts of the last two evaluations (unseen opponents, the untrained model)"
    )
    limit: int | None = Field(
        None, ge=1, description="only the first K products of the baseline search and of the test split (smoke run)"
    )
    report: Path | None = Field(None, description="also write the run's HTML report here")
    summarize_only: bool = Field(False, description="write the results from the episodes played so far")
    ledger: Path = Field(
        DEFAULT_LEDGER,
        description="the ledger of configurations scored on the test products (JSONL; a run adds itself once)",
    )

    @classmethod
    def load(cls, source: Path, overrides: list[str] | None = None, **options: object) -> ExperimentConfig:
        """Read the training config at ``source`` (with ``overrides``) and add the experiment's ``options``."""
        train = load_config(source, parse_overrides(overrides))
        return cls(source=source, overrides=list(overrides or []), train=train, **options)

    @property
    def evaluation_rollouts(self) -> tuple[int, int]:
        """Rollouts of the first evaluations and of the last two (unseen opponents, the untrained model)."""
        return self.rollouts, self.later_rollouts or self.rollouts

    def command(self) -> str:
        """The ``counteroffer experiment`` command line that runs this experiment (the summary records it)."""
        words = ["counteroffer", "experiment", str(self.source)]
        for name, flag in _FLAGS.items():
            value = getattr(self, name)
            if value != type(self).model_fields[name].default:
                words += [flag, str(value)]
        for item in self.overrides:
            words += ["--set", item]
        if self.summarize_only:
            words.append("--summarize-only")
        return shlex.join(words)


_FLAGS = {
    "results": "--results",
    "rollouts": "--rollouts",
    "later_rollouts": "--later-rollouts",
    "limit": "--limit",
    "report": "--report",
    "ledger": "--ledger",
}
