"""Adapters to other RL and evaluation frameworks (optional dependencies, imported only when asked for).

- :mod:`counteroffer.integrations.verifiers_env`: the negotiation as a ``verifiers`` multi-turn environment
  (``pip install 'counteroffer[verifiers]'``), for prime-rl, the Environments Hub and ``vf-eval``.
"""
