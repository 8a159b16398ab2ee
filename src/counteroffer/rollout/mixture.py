"""A mixture of sellers: which seller (strategy and persona) each product meets.

A single scripted seller is easy to exploit (against a time-dependent seller, waiting always pays), so training
and model selection can draw the opponent per product from several. The draw is a pure function of a key (the
product, and for GRPO the step) and the base seed, so a resumed run and every process of a multi-process run
draw the same seller, and every episode of one GRPO group meets the same seller: the group baseline then compares
like with like. A seller's ``weight`` makes it drawn more or less often (a curriculum that leans on the seller a
policy loses to); the draw of equal weights is the uniform one, so unweighted runs replay as before.
"""

from __future__ import annotations

import bisect
import itertools
import re
from collections.abc import Sequence
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer, model_validator

from counteroffer.agents.base import Agent
from counteroffer.agents.registry import make_agent
from counteroffer.defaults import DEFAULT_PERSONA
from counteroffer.errors import ConfigError
from counteroffer.game.messages import Role
from counteroffer.seeding import derive_seed

T = TypeVar("T")
_LABEL = re.compile(r"^(?P<spec>.+?)\s+\((?P<persona>[\w-]+)\)$")


class SellerChoice(BaseModel):
    """One seller of a mixture: a spec string (neutral persona), its :attr:`label` ``"SPEC (PERSONA)"``, or in
    YAML ``{spec: ..., persona: ..., weight: ...}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    spec: str = Field(description="seller agent spec, e.g. scripted:titfortat or openai:MODEL@URL")
    persona: str = Field(DEFAULT_PERSONA, description="seller persona")
    weight: float = Field(
        1.0, gt=0, description="how often it is drawn relative to the others' weights (the draw's odds, not a label)"
    )

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        labelled = _LABEL.match(value.strip())
        return labelled.groupdict() if labelled else {"spec": value.strip()}

    @model_serializer(mode="wrap")
    def _without_the_default_weight(self, handler: SerializerFunctionWrapHandler) -> dict:
        # A dump written before weights existed (a saved baseline search, a run's config) must still compare equal.
        dumped = handler(self)
        if self.weight == 1.0:
            dumped.pop("weight", None)
        return dumped

    @property
    def label(self) -> str:
        """How logs and tables name it: the spec, with the persona unless it is neutral."""
        return self.spec if self.persona == "neutral" else f"{self.spec} ({self.persona})"


def draw(options: Sequence[T], key: str, seed: int, what: str, weights: Sequence[float] | None = None) -> T:
    """One of ``options`` for ``key``: uniform (or in proportion to ``weights``), and a pure function of
    ``(seed, what, key)`` (``what`` names the kind of draw, so that drawing a seller and drawing a buyer for one key
    are independent)."""
    if len(options) == 1:
        return options[0]
    digest = derive_seed(seed, what, key, bits=64)
    if weights is not None and len(weights) != len(options):
        raise ValueError(f"{len(weights)} weights for {len(options)} options")
    if weights is None or len(set(weights)) == 1:
        return options[digest % len(options)]
    bounds = list(itertools.accumulate(weights))
    return options[min(bisect.bisect_right(bounds, digest / 2**64 * bounds[-1]), len(options) - 1)]


def draw_seller(choices: Sequence[SellerChoice], key: str, seed: int) -> SellerChoice:
    """The seller of ``choices`` that ``key`` meets, in proportion to their weights."""
    return draw(choices, key, seed, "seller", [choice.weight for choice in choices])


class SellerMixture:
    """The sellers of a mixture, each built once, and the deterministic draw of one per key."""

    def __init__(self, choices: Sequence[SellerChoice]) -> None:
        if not choices:
            raise ConfigError("a seller mixture needs at least one seller")
        labels = [c.label for c in choices]
        if len(set(labels)) != len(labels):
            raise ConfigError(f"a seller mixture lists a seller twice (give it a weight instead): {labels}")
        self.choices = tuple(choices)
        self.agents: dict[str, Agent] = {c.label: make_agent(c.spec, Role.SELLER, c.persona) for c in choices}

    def draw(self, key: str, seed: int) -> SellerChoice:
        """The seller that ``key`` meets, in proportion to the weights; stable across runs and processes."""
        return draw_seller(self.choices, key, seed)

    def agent(self, choice: SellerChoice) -> Agent:
        """The agent of ``choice``'s spec and persona (its weight does not name it)."""
        return self.agents[choice.label]

    def close(self) -> None:
        for agent in self.agents.values():
            agent.close()
