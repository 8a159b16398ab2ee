"""Agent specs: ``BACKEND:NAME[?key=value&...]``.

- ``scripted:anchor``, ``scripted:anchor?opening=0.4&concession=2``: scripted agents and numeric parameters;
- ``hf:MODEL``: a local Hugging Face model (an id, a path, or ``smollm2-135m``, the bundled CPU model);
- ``openai:MODEL@BASE_URL``: any OpenAI-compatible endpoint.

LLM parameters are listed in :mod:`counteroffer.agents.llm.factory`.
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
SCRIPTED_BUYERS: dict[str, BuyerFactory] = {
    "naive": lambda spec, p: ConcedingBuyer(spec, p.pop("opening", 0.95), p.pop("concession", 1.0)),
    "anchor": lambda spec, p: ConcedingBuyer(spec, p.pop("opening", 0.5), p.pop("concession", 1.0)),
    "patient": lambda spec, p: PatientBuyer(spec, p.pop("opening", 0.1)),
    "reader": lambda spec, p: ReaderBuyer(spec, p.pop("opening", 0.1), p.pop("split", 0.5), p.pop("digits", 2)),
    "oracle": lambda spec, _: OracleBuyer(spec),
}


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
        agent = table[name](spec, persona, params) if role is Role.SELLER else table[name](spec, params)
    except ValueError as exc:
        raise AgentSpecError(f"{spec}: {exc}") from exc
    if params:
        raise AgentSpecError(f"{spec}: unknown parameter(s) {', '.join(sorted(params))}")
    return agent
