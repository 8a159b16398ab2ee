"""counteroffer: train and evaluate LLM negotiators with reinforcement learning from verifiable rewards."""

import sys as _sys

from counteroffer.rollout.registration import register_envs

__version__ = "0.1.0"
__all__ = ["__version__", "register_envs"]

# ``import counteroffer`` imports neither Gymnasium nor torch. With Gymnasium already imported (``import gymnasium``
# first, or ``gymnasium.make("counteroffer:counteroffer/Negotiation-v0")``), it registers counteroffer/Negotiation-v0
# now; in any order, ``counteroffer.register_envs()`` or ``import counteroffer.rollout.env`` does.
if "gymnasium" in _sys.modules:
    register_envs()
