"""The defaults that more than one entry point shares, in one place so that they agree: the command line, the
library's configs (``BenchConfig``, ``TrainConfig``), the Gymnasium and verifiers environments and the web app.

``DEFAULT_SELLER`` is ``scripted:linear``, the seller a run meets when it names none: ``counteroffer bench`` and
``play``, ``BenchConfig``, the Gymnasium environment, the verifiers environment and a training config's seller
sections. It concedes evenly from the asking price to just above its cost, so against it the scripted buyers'
rewards spread out (from about 0.06 to 0.62) and a policy has a reward surface to climb; a Boulware
seller (``scripted:boulware``) nears its cost only on the last turn, where every anchor-and-concede buyer earns at
most about 0.19 (docs/experiments/cpu-first-recipe.md). Name ``--seller scripted:boulware`` for the harder seller.

This module imports nothing, so any module may import it.
"""

from __future__ import annotations

DEFAULT_SELLER = "scripted:linear"
"""The seller agent spec when none is given (always regulated by the game)."""

DEFAULT_BUYER = "scripted:anchor"
"""The buyer agent spec of ``counteroffer bench`` and ``play`` when none is given."""

DEFAULT_PERSONA = "neutral"
"""The seller's persona when none is given (a :class:`~counteroffer.agents.scripted.Persona` value)."""

DEFAULT_MAX_TURNS = 6
"""Turns per episode when none is given (a turn = a buyer message and the seller's reply)."""

BASELINE_SELLERS = ("scripted:linear", "scripted:titfortat", "scripted:conceder")
"""The seller mixture of ``counteroffer baselines`` when no ``--seller`` is given: the CPU recipes' training sellers."""

BASELINE_MAX_TURNS = 4
"""The turn limit of the baseline search when none is given: the CPU recipes' 4-turn games."""
