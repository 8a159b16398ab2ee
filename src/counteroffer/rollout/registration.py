"""The Gymnasium registration of ``counteroffer/Negotiation-v0``, defined without importing Gymnasium.

``import counteroffer`` does not import Gymnasium (nor torch): it registers the environment only when Gymnasium is
already imported, as in ``gymnasium.make("counteroffer:counteroffer/Negotiation-v0")``, which imports this package
after Gymnasium. Importing :mod:`counteroffer.rollout.env` registers it too, and :func:`register_envs` (also
``counteroffer.register_envs``) does in any order. There is no entry point to register it from: Gymnasium 1.x loads
no plugins (the ``gymnasium.envs`` entry-point group of the 0.2x releases is gone).
"""

from __future__ import annotations

ENV_ID = "counteroffer/Negotiation-v0"
ENTRY_POINT = "counteroffer.rollout.env:make_env"


def register_envs() -> None:
    """Register ``counteroffer/Negotiation-v0`` with Gymnasium (importing it); does nothing if it is registered."""
    import gymnasium

    if ENV_ID not in gymnasium.registry:
        gymnasium.register(ENV_ID, entry_point=ENTRY_POINT)
