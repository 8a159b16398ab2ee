"""counteroffer: train and evaluate LLM negotiators with reinforcement learning from verifiable rewards."""

import gymnasium as _gymnasium

__version__ = "0.1.0"

# ``gymnasium.make("counteroffer/Negotiation-v0", seller=..., split=..., max_turns=...)`` after ``import counteroffer``
# (or ``gymnasium.make("counteroffer:counteroffer/Negotiation-v0")`` without it); see counteroffer.rollout.env.
if "counteroffer/Negotiation-v0" not in _gymnasium.registry:
    _gymnasium.register("counteroffer/Negotiation-v0", entry_point="counteroffer.rollout.env:make_env")
