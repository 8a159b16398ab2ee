"""A mixture of sellers: which seller (strategy and persona) each product meets.

A single scripted seller is easy to exploit (against a time-dependent seller, waiting always pays), so training
and model selection can draw the opponent per product from several. The draw is a pure function of a key (the
product, and for GRPO the step) and the base seed, so a resumed run and every process of a multi-process run
draw the same seller, and every episode of one GRPO group meets the same seller: the group baseline then compares
like with like.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from counteroffer.agents.base import Agent
from counteroffer.agents.registry import make_agent
from counteroffer.game.messages import Role

T = TypeVar("T")
_LABEL = re.compile(r"^(?P<spec>.+?)\s+\((?P<persona>[\w-]+)\)$")


class SellerChoice(BaseModel):
    """One seller of a mixture: a spec string (neutral persona), its :attr:`label` ``"SPEC (PERSONA)"``, or in
    YAML ``{spec: ..., persona: ...}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    spec: str = Field(description="seller agent spec, e.g. scripted:titfortat or openai:MODEL@URL")
    persona: str = Field("neutral", description="seller persona")

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        labelled = _LABEL.match(value.strip())
        return labelled.groupdict() if labelled else {"spec": value.strip()}

    @property
    def label(self) -> str:
        """How logs and tables name it: the spec, with the persona unless it is neutral."""
        return self.spec if self.persona == "neutral" else f"{self.spec} ({self.persona})"


def draw(options: Sequence[T], key: str, seed: int, what: str) -> T:
    """One of ``options`` for ``key``: uniform, and a pure function of ``(seed, what, key)`` (``what`` names the
    kind of draw, so that drawing a seller and drawing a buyer for one key are independent)."""
    if len(options) == 1:
        return options[0]
    digest = hashlib.blake2b(f"{seed}|{what}|{key}".encode(), digest_size=8).digest()
    return options[int.from_bytes(digest, "big") % len(options)]


class SellerMixture:
    """The sellers of a mixture, each built once, and the deterministic draw of one per key."""

    def __init__(self, choices: Sequence[SellerChoice]) -> None:
        if not choices:
            raise ValueError("a seller mixture needs at least one seller")
        if len(set(choices)) != len(choices):
            raise ValueError(f"a seller mixture lists a seller twice: {[c.label for c in choices]}")
        self.choices = tuple(choices)
        self.agents: dict[SellerChoice, Agent] = {c: make_agent(c.spec, Role.SELLER, c.persona) for c in choices}

    def draw(self, key: str, seed: int) -> SellerChoice:
        """The seller that ``key`` meets: uniform over the mixture, stable across runs and processes."""
        return draw(self.choices, key, seed, "seller")

    def agent(self, choice: SellerChoice) -> Agent:
        return self.agents[choice]

    def close(self) -> None:
        for agent in self.agents.values():
            agent.close()
