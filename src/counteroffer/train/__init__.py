"""Training the buyer: an SFT warm start on scripted demonstrations, then multi-turn GRPO on TRL.

Needs the ``train`` extra (TRL, peft, datasets, tensorboard). ``run_sft`` and ``run_grpo`` are what
``counteroffer train sft|grpo CONFIG`` call; both read one :class:`TrainConfig` (YAML, see ``configs/``).
"""

from counteroffer.train.config import ConfigError, TrainConfig, load_config

__all__ = ["ConfigError", "TrainConfig", "load_config", "run_grpo", "run_sft"]


def run_sft(config: TrainConfig, *, resume: bool = False):  # noqa: ANN201 - imported lazily: TRL is heavy
    from counteroffer.train.sft import run_sft as run

    return run(config, resume=resume)


def run_grpo(config: TrainConfig, *, resume: bool = False):  # noqa: ANN201
    from counteroffer.train.grpo import run_grpo as run

    return run(config, resume=resume)
