"""Agent specs: ``BACKEND:NAME[?key=value&...]``.

- ``scripted:anchor``, ``scripted:anchor?opening=0.4&concession=2``: scripted agents and numeric parameters;
- ``hf:MODEL``: a local Hugging Face model (an id, a path, or ``smollm2-135m``, the bundled CPU model);
- ``openai:MODEL@BASE_URL``: any OpenAI-compatible endpoint.

LLM parameters are listed in :mod:`counteroffer.agents.llm.factory`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from counteroffer.agents.base import Agent, AgentSpecError
from counteroffer.agents.scripted import (
    ConcedingBuyer,
    ConcessionSeller,
    OracleBuyer,
    PatientBuyer,
    Persona,
    ReaderBuyer,
    TitForTatSeller,
    UnyieldingSeller,
)
from counteroffer.game.messages import Role

SellerFactory = Callable[[str, Persona, dict[str, float]], Agent]
BuyerFactory = Callable[[str, dict[str, float]], Agent]
LLM_BACKENDS = ("hf", "openai")

SCRIPTED_SELLERS: dict[str, SellerFactory] = {
    "boulware": lambda spec, persona, p: ConcessionSeller(spec, p.pop("exponent", 0.3), persona),
    "linear": lambda spec, persona, p: ConcessionSeller(spec, p.pop("exponent", 1.0), persona),
    "conceder": lambda spec, persona, p: ConcessionSeller(spec, p.pop("exponent", 3.0), persona),
    "titfortat": lambda spec, persona, _: TitForTatSeller(spec, persona),
    "unyielding": lambda spec, persona, _: UnyieldingSeller(spec, persona),
}


@dataclass(frozen=True, slots=True)
class BuyerFamily:
    """A scripted buyer family: how a spec's parameters build it, and the parameter grid that
    ``counteroffer baselines`` searches for the best scripted buyer (empty: not searched, e.g. a setting another
    family's grid covers, or the oracle)."""

    make: BuyerFactory
    grid: Mapping[str, tuple[float, ...]] = field(default_factory=dict)


SCRIPTED_BUYERS: dict[str, BuyerFamily] = {
    "naive": BuyerFamily(lambda spec, p: ConcedingBuyer(spec, p.pop("opening", 0.95), p.pop("concession", 1.0))),
    "anchor": BuyerFamily(
        lambda spec, p: ConcedingBuyer(spec, p.pop("opening", 0.5), p.pop("concession", 1.0)), ConcedingBuyer.GRID
    ),
    "patient": BuyerFamily(lambda spec, p: PatientBuyer(spec, p.pop("opening", 0.1)), PatientBuyer.GRID),
    "reader": BuyerFamily(
        lambda spec, p: ReaderBuyer(spec, p.pop("opening", 0.1), p.pop("split", 0.5), p.pop("digits", 2)),
        ReaderBuyer.GRID,
    ),
    "oracle": BuyerFamily(lambda spec, _: OracleBuyer(spec, rivals=oracle_rivals)),
}


def family_grid(name: str) -> list[str]:
    """The specs of one family's grid, e.g. ``scripted:anchor?opening=0.02&concession=0.8``."""
    grid = SCRIPTED_BUYERS[name].grid
    return [
        f"scripted:{name}?" + "&".join(f"{key}={value:g}" for key, value in zip(grid, values, strict=True))
        for values in itertools.product(*grid.values())
    ]


def scripted_buyer_grid() -> list[str]:
    """Every registered family's grid: the scripted buyers the best scripted buyer is searched among."""
    return [spec for name, family in SCRIPTED_BUYERS.items() if family.grid for spec in family_grid(name)]


def oracle_rivals() -> list[str]:
    """The scripted buyers the oracle must never lose to: every family's default setting and its grid."""
    return [f"scripted:{name}" for name in SCRIPTED_BUYERS if name != "oracle"] + scripted_buyer_grid()


def _split_spec(spec: str) -> tuple[str, str, dict[str, str]]:
    backend, sep, rest = spec.partition(":")
    if not sep or not rest:
        raise AgentSpecError(
            f"agent spec {spec!r} must look like BACKEND:NAME, e.g. scripted:anchor, hf:smollm2-135m, "
            "openai:MODEL@http://localhost:8000/v1"
        )
    name, _, query = rest.partition("?")
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        raise AgentSpecError(f"bad parameters {query!r} in {spec!r}; write them as ?key=value&key=value") from None
    return backend, name, dict(pairs)


def _numbers(spec: str, params: dict[str, str]) -> dict[str, float]:
    numbers: dict[str, float] = {}
    for key, value in params.items():
        try:
            numbers[key] = float(value)
        except ValueError:
            raise AgentSpecError(f"parameter {key}={value!r} of {spec!r} is not a number") from None
        if not math.isfinite(numbers[key]):  # nan/inf pass the agents' range checks and crash mid-episode
            raise AgentSpecError(f"parameter {key}={value!r} of {spec!r} is not a finite number")
    return numbers


def make_agent(spec: str, role: Role, persona: str = Persona.NEUTRAL) -> Agent:
    """Build the agent a spec names, for ``role``. ``persona`` shapes a seller: its wording, its prompt, and for
    ``unyielding`` a scripted seller's concessions."""
    backend, name, params = _split_spec(spec)
    try:
        persona_value = Persona(persona)
    except ValueError:
        raise AgentSpecError(f"unknown persona {persona!r}; choose from {[p.value for p in Persona]}") from None
    if backend == "scripted":
        return _scripted_agent(spec, name, role, persona_value, _numbers(spec, params))
    if backend in LLM_BACKENDS:
        from counteroffer.agents.llm.factory import make_llm_agent  # imports torch only when an LLM is asked for

        fallback = (
            _scripted_agent("scripted:linear", "linear", role, persona_value, {}) if role is Role.SELLER else None
        )
        return make_llm_agent(spec, backend, name, params, role, persona_value.value, fallback)
    raise AgentSpecError(f"unknown agent backend {backend!r} in {spec!r}; available: scripted, hf, openai")


def _scripted_agent(spec: str, name: str, role: Role, persona: Persona, params: dict[str, float]) -> Agent:
    table: dict = SCRIPTED_SELLERS if role is Role.SELLER else SCRIPTED_BUYERS
    if name not in table:
        raise AgentSpecError(f"no scripted {role} named {name!r}; available: {', '.join(sorted(table))}")
    try:
        agent = table[name](spec, persona, params) if role is Role.SELLER else table[name].make(spec, params)
    except ValueError as exc:
        raise AgentSpecError(f"{spec}: {exc}") from exc
    if params:
        raise AgentSpecError(f"{spec}: unknown parameter(s) {', '.join(sorted(params))}")
    return agent
