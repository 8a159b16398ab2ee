"""Agent specs: strings such as ``scripted:anchor`` or ``scripted:anchor?opening=0.4&concession=2``.

The part before the first colon names a backend (``scripted`` here; later ``hf`` and ``openai``), the rest the
agent, and an optional query string sets its numeric parameters.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from urllib.parse import parse_qsl

from counteroffer.agents.base import Agent, AgentSpecError
from counteroffer.agents.scripted import (
    ConcedingBuyer,
    ConcessionSeller,
    OracleBuyer,
    Persona,
    TitForTatSeller,
    UnyieldingSeller,
)
from counteroffer.game.messages import Role

SellerFactory = Callable[[str, Persona, dict[str, float]], Agent]
BuyerFactory = Callable[[str, dict[str, float]], Agent]

SCRIPTED_SELLERS: dict[str, SellerFactory] = {
    "boulware": lambda spec, persona, p: ConcessionSeller(spec, p.pop("exponent", 0.3), persona),
    "linear": lambda spec, persona, p: ConcessionSeller(spec, p.pop("exponent", 1.0), persona),
    "conceder": lambda spec, persona, p: ConcessionSeller(spec, p.pop("exponent", 3.0), persona),
    "titfortat": lambda spec, persona, _: TitForTatSeller(spec, persona),
    "unyielding": lambda spec, persona, _: UnyieldingSeller(spec, persona),
}
SCRIPTED_BUYERS: dict[str, BuyerFactory] = {
    "naive": lambda spec, p: ConcedingBuyer(spec, p.pop("opening", 0.95), p.pop("concession", 1.0)),
    "anchor": lambda spec, p: ConcedingBuyer(spec, p.pop("opening", 0.5), p.pop("concession", 1.0)),
    "oracle": lambda spec, _: OracleBuyer(spec),
}


def _split_spec(spec: str) -> tuple[str, str, dict[str, float]]:
    backend, sep, rest = spec.partition(":")
    if not sep or not rest:
        raise AgentSpecError(f"agent spec {spec!r} must look like BACKEND:NAME, e.g. scripted:anchor")
    name, _, query = rest.partition("?")
    params: dict[str, float] = {}
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        raise AgentSpecError(f"bad parameters {query!r} in {spec!r}; write them as ?key=value&key=value") from None
    for key, value in pairs:
        try:
            params[key] = float(value)
        except ValueError:
            raise AgentSpecError(f"parameter {key}={value!r} of {spec!r} is not a number") from None
        if not math.isfinite(params[key]):  # nan/inf pass the agents' range checks and crash mid-episode
            raise AgentSpecError(f"parameter {key}={value!r} of {spec!r} is not a finite number")
    return backend, name, params


def make_agent(spec: str, role: Role, persona: str = Persona.NEUTRAL) -> Agent:
    """Build the agent a spec names, for ``role``; ``persona`` shapes a seller's wording (and an unyielding one's
    concessions)."""
    backend, name, params = _split_spec(spec)
    if backend != "scripted":
        raise AgentSpecError(f"unknown agent backend {backend!r} in {spec!r}; available: scripted")
    try:
        persona_value = Persona(persona)
    except ValueError:
        raise AgentSpecError(f"unknown persona {persona!r}; choose from {[p.value for p in Persona]}") from None
    table: dict = SCRIPTED_SELLERS if role is Role.SELLER else SCRIPTED_BUYERS
    if name not in table:
        raise AgentSpecError(f"no scripted {role} named {name!r}; available: {', '.join(sorted(table))}")
    try:
        agent = table[name](spec, persona_value, params) if role is Role.SELLER else table[name](spec, params)
    except ValueError as exc:
        raise AgentSpecError(f"{spec}: {exc}") from exc
    if params:
        raise AgentSpecError(f"{spec}: unknown parameter(s) {', '.join(sorted(params))}")
    return agent
