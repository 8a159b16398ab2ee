"""Agent specs: ``BACKEND:NAME[?key=value&...]``.

- ``scripted:anchor``, ``scripted:anchor?opening=0.4&concession=2``: scripted agents and numeric parameters, and
  the few whose values are words (:data:`WORD_PARAMETERS`: ``scripted:reading-linear?levers=market_price,
  listing_fact&hints=train``, ``scripted:arguer?policy=random``);
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
    ArguePolicy,
    ArguingBuyer,
    ConcedingBuyer,
    ConcessionSeller,
    HintSet,
    OracleBuyer,
    PatientBuyer,
    Persona,
    ReaderBuyer,
    ReadingSeller,
    ScriptedSeller,
    TitForTatSeller,
    UnyieldingSeller,
    parse_levers,
)
from counteroffer.game.messages import Role

# A spec's parameters: numbers, except those named in WORD_PARAMETERS.
Params = dict[str, float | str]
SellerFactory = Callable[[str, Persona, Params], Agent]
BuyerFactory = Callable[[str, Params], Agent]
LLM_BACKENDS = ("hf", "openai")
WORD_PARAMETERS = frozenset({"levers", "hints", "policy"})
# The scripted agent whose words an LLM agent's Talk is replaced with under ``talk=plain`` (the talk ablation); the
# seller's also writes a seller LLM's turn that stays malformed after its re-asks.
PLAIN_TALKERS = {Role.BUYER: ("scripted:reader", "reader"), Role.SELLER: ("scripted:linear", "linear")}


def _concession(exponent: float) -> SellerFactory:
    return lambda spec, persona, p: ConcessionSeller(spec, p.pop("exponent", exponent), persona)


def _reading(base: SellerFactory) -> SellerFactory:
    """The variant of ``base`` that reads the buyer's arguments: its parameters, and ``levers`` and ``hints``."""

    def make(spec: str, persona: Persona, p: Params) -> Agent:
        seller = base(spec, persona, p)
        assert isinstance(seller, ScriptedSeller)
        levers, hints = parse_levers(str(p.pop("levers", ""))), HintSet(p.pop("hints", HintSet.ALL))
        return ReadingSeller(spec, seller, levers, hints)

    return make


SCRIPTED_SELLERS: dict[str, SellerFactory] = {
    "boulware": _concession(0.3),
    "linear": _concession(1.0),
    "conceder": _concession(3.0),
    "titfortat": lambda spec, persona, _: TitForTatSeller(spec, persona),
    "unyielding": lambda spec, persona, _: UnyieldingSeller(spec, persona),
}
SCRIPTED_SELLERS.update(
    {f"reading-{name}": _reading(SCRIPTED_SELLERS[name]) for name in ("boulware", "linear", "conceder", "titfortat")}
)


@dataclass(frozen=True, slots=True)
class BuyerFamily:
    """A scripted buyer family: how a spec's parameters build it, and the parameter grid that
    ``counteroffer baselines`` searches for the best scripted buyer (empty: not searched, e.g. a setting another
    family's grid covers, or the oracle)."""

    make: BuyerFactory
    grid: Mapping[str, tuple[float | str, ...]] = field(default_factory=dict)
    # Whether its Talk carries arguments a reading seller checks (game/arguments.py); the others are talk-blind,
    # and the best of them is the bar words must clear.
    argues: bool = False


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
    "arguer": BuyerFamily(
        lambda spec, p: ArguingBuyer(
            spec,
            ArguePolicy(p.pop("policy", ArguePolicy.HINT)),
            p.pop("opening", 0.1),
            p.pop("split", 0.5),
            p.pop("digits", 2),
        ),
        ArguingBuyer.GRID,
        argues=True,
    ),
    "oracle": BuyerFamily(lambda spec, _: OracleBuyer(spec, rivals=oracle_rivals)),
}


def family_grid(name: str) -> list[str]:
    """The specs of one family's grid, e.g. ``scripted:anchor?opening=0.02&concession=0.8``."""
    grid = SCRIPTED_BUYERS[name].grid
    return [
        f"scripted:{name}?" + "&".join(f"{key}={_written(value)}" for key, value in zip(grid, values, strict=True))
        for values in itertools.product(*grid.values())
    ]


def _written(value: float | str) -> str:
    return value if isinstance(value, str) else f"{value:g}"


def scripted_buyer_grid() -> list[str]:
    """Every registered family's grid: the scripted buyers the best scripted buyer is searched among."""
    return [spec for name, family in SCRIPTED_BUYERS.items() if family.grid for spec in family_grid(name)]


def talk_blind(spec: str) -> bool:
    """Whether a scripted buyer spec's family never argues (see :attr:`BuyerFamily.argues`)."""
    family = SCRIPTED_BUYERS.get(spec.removeprefix("scripted:").partition("?")[0])
    return family is not None and not family.argues


def reads_talk(spec: str, role: Role) -> bool:
    """Whether the agent a spec names reads the other side's words: a scripted agent that says so
    (``reads_talk``: the reading sellers, the arguers), or an LLM seller told its lever (``levers=``). No model
    is loaded."""
    backend, name, params = _split_spec(spec)
    if backend in LLM_BACKENDS:
        return role is Role.SELLER and "levers" in params
    return bool(getattr(make_agent(spec, role), "reads_talk", False))


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


def _values(spec: str, params: dict[str, str]) -> Params:
    values: Params = {}
    for key, value in params.items():
        if key in WORD_PARAMETERS:
            values[key] = value
            continue
        try:
            number = float(value)
        except ValueError:
            raise AgentSpecError(f"parameter {key}={value!r} of {spec!r} is not a number") from None
        if not math.isfinite(number):  # nan/inf pass the agents' range checks and crash mid-episode
            raise AgentSpecError(f"parameter {key}={value!r} of {spec!r} is not a finite number")
        values[key] = number
    return values


def make_agent(spec: str, role: Role, persona: str = Persona.NEUTRAL) -> Agent:
    """Build the agent a spec names, for ``role``. ``persona`` shapes a seller: its wording, its prompt, and for
    ``unyielding`` a scripted seller's concessions."""
    backend, name, params = _split_spec(spec)
    try:
        persona_value = Persona(persona)
    except ValueError:
        raise AgentSpecError(f"unknown persona {persona!r}; choose from {[p.value for p in Persona]}") from None
    if backend == "scripted":
        return _scripted_agent(spec, name, role, persona_value, _values(spec, params))
    if backend in LLM_BACKENDS:
        from counteroffer.agents.llm.factory import make_llm_agent  # imports torch only when an LLM is asked for

        plain = _scripted_agent(*PLAIN_TALKERS[role], role, persona_value, {})
        fallback = plain if role is Role.SELLER else None
        return make_llm_agent(spec, backend, name, params, role, persona_value.value, fallback, plain)
    raise AgentSpecError(f"unknown agent backend {backend!r} in {spec!r}; available: scripted, hf, openai")


def _scripted_agent(spec: str, name: str, role: Role, persona: Persona, params: Params) -> Agent:
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
