"""Shared fixtures: the catalogue copies in ../shared/data and a way to run the real ``counteroffer`` command."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from counteroffer.agents.base import Agent, AgentFailure, Message, TurnRequest
from counteroffer.catalog.models import Product, Scenario
from counteroffer.evaluate.bench import BenchConfig

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

# The command line exactly as the installed console script runs it (``counteroffer = counteroffer.cli.app:main``),
# started through this interpreter so that the tests do not depend on PATH.
CLI = [sys.executable, "-c", "from counteroffer.cli.app import main; main()"]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder holding ``amazon_history_price/`` and ``craigslist_bargain/``; the test is skipped without it."""
    missing = [name for name in ("amazon_history_price", "craigslist_bargain") if not (SHARED_DATA / name).is_dir()]
    if missing:
        pytest.skip(
            f"shared catalogue data not found: {', '.join(missing)} missing under {SHARED_DATA} "
            "(these tests read the dataset copies in ../shared/data beside the checkout)"
        )
    return SHARED_DATA


def run_cli(*args: str | Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``counteroffer ARGS`` in a subprocess and capture its output."""
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=timeout, check=False)


def make_scenario(
    asking: float = 200.0, budget: float = 160.0, cost: float = 100.0, title: str = "Espresso machine"
) -> Scenario:
    """A hand-built scenario for rule tests (no catalogue needed)."""
    product = Product(
        product_id="p-1",
        source="amazon",
        title=title,
        category="Kitchen",
        description="A small espresso machine.",
        features="15 bar pump",
        list_price=asking,
        lowest_price=cost,
        highest_price=asking,
    )
    return Scenario(scenario_id="s-1", recipe="paper", product=product, asking_price=asking, budget=budget, cost=cost)


def message(action: str, talk: str = "", thought: str = "") -> str:
    """A raw message in the paper's format."""
    return f"Thought: {thought}\nTalk: {talk}\nAction: {action}"


def small_bench(out: Path, data: Path, buyers: list[str], seller: str, **overrides: object) -> BenchConfig:
    """A bench on the first two test products, one rollout each: what the model and server tests play."""
    settings: dict[str, object] = {"split": "test", "limit": 2, "rollouts": 1, **overrides}
    return BenchConfig(buyers=buyers, seller=seller, data_root=str(data), out=out, **settings)  # type: ignore[arg-type]


class FailsOnce(Agent):
    """A test double (a mock, on purpose: the failure is injected): ``inner``'s answers, except that its
    ``fail_on_call``-th ``act`` call answers every request with an :class:`AgentFailure`, the way an endpoint agent
    answers once its retries are spent. ``calls`` counts the ``act`` calls."""

    CAUSE = "endpoint unavailable (after 4 retries)"

    def __init__(self, inner: Agent, fail_on_call: int = 1) -> None:
        super().__init__(inner.spec, inner.role)
        self.inner = inner
        self.fail_on_call = fail_on_call
        self.calls = 0

    def act(self, requests: Sequence[TurnRequest]) -> list[Message | AgentFailure]:
        self.calls += 1
        if self.calls == self.fail_on_call:
            return [AgentFailure(self.CAUSE) for _ in requests]
        return self.inner.act(requests)

    def close(self) -> None:
        self.inner.close()
