"""The experiment as one command (``counteroffer experiment CONFIG``): baselines, SFT, GRPO and the evaluations of
a training config, resumable at every stage, then the summary of its results (see :mod:`.pipeline`).

It sits after ``report`` in the data flow: it calls train, evaluate, analysis and report; ``cli`` calls it.
"""

from counteroffer.experiment.config import DEFAULT_LEDGER, DEFAULT_RESULTS, ExperimentConfig
from counteroffer.experiment.pipeline import ExperimentError, run_experiment

__all__ = ["DEFAULT_LEDGER", "DEFAULT_RESULTS", "ExperimentConfig", "ExperimentError", "run_experiment"]
