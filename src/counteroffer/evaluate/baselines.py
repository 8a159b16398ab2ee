"""Honest baselines: a grid search over every registered scripted buyer family, on the train split, against a
seller mixture.

"Best scripted buyer" in every table means this search's winner, chosen on the *train* split and then evaluated
on test like any other buyer, so that a trained model is compared with the strongest rule the registry holds
rather than with one default setting or one family. Each family registers its grid beside its class
(:data:`counteroffer.agents.registry.SCRIPTED_BUYERS`); a family added later is searched without a change here.
Today's families:

- anchor-and-concede (``scripted:anchor?opening=O&concession=C``): open at ``O × budget`` and concede to the
  budget by the last turn along a curve of exponent ``C`` (small C holds low and jumps late);
- patient (``scripted:patient?opening=O``): hold ``O × budget`` and, at the last turn, take the seller's price
  if it is within the budget, else walk away;
- reader (``scripted:reader?opening=O&split=S&digits=D``): hold, answer the seller's first counter-offer with
  ``S`` of it, and at the end offer a still-conceding seller its price cut to ``D`` leading digits (it adapts
  to the seller's moves, which the first two do not).

Every buyer plays every product against every seller of the mixture (the mixture's expected reward, without the
noise of a draw); the ranking is by the mean reward over all those episodes. Scripted episodes take microseconds,
so the default grid (168 buyers × 3 sellers × the train products) runs in a minute or two.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from counteroffer.agents.registry import make_agent, scripted_buyer_grid, talk_blind
from counteroffer.catalog.recipes import CatalogName, load_scenarios
from counteroffer.defaults import BASELINE_MAX_TURNS
from counteroffer.errors import ConfigError
from counteroffer.evaluate.stats import Estimate, bootstrap_mean
from counteroffer.files import write_text_atomic
from counteroffer.game.messages import Role
from counteroffer.game.negotiation import GameConfig
from counteroffer.rollout.mixture import SellerChoice, SellerMixture
from counteroffer.rollout.runner import plan_jobs, run_episodes

BASELINES_FILE = "baselines.json"


class BaselineSearch(BaseModel):
    """What defines a search."""

    model_config = ConfigDict(extra="forbid")
    sellers: list[SellerChoice] = Field(min_length=1, description="the mixture: every buyer meets each of them")
    buyers: list[str] = Field(
        default_factory=scripted_buyer_grid, min_length=1, description="scripted buyer specs (default: every grid)"
    )
    catalog: CatalogName = "amazon"
    split: str = "train"
    limit: int | None = Field(None, ge=1, description="only the first LIMIT products of the split")
    max_turns: int = Field(BASELINE_MAX_TURNS, ge=1)
    seed: int = 0
    data_root: str | None = None

    @field_validator("sellers")
    @classmethod
    def _unweighted(cls, sellers: list[SellerChoice]) -> list[SellerChoice]:
        if len({seller.weight for seller in sellers}) > 1:
            raise ValueError(
                "the baseline search plays every seller on every product, so seller weights would not change it: "
                "drop the weights (they shape training draws only)"
            )
        return sellers


INTERVAL_ROWS = 10  # the leaders get an interval (enough to see whether the winner is clear)


def family(spec: str) -> str:
    """``scripted:reader?opening=0.01`` → ``reader``."""
    return spec.removeprefix("scripted:").partition("?")[0]


@dataclass(frozen=True, slots=True)
class BaselineRow:
    buyer: str
    reward: float  # the mean over every (product, seller) episode
    by_seller: dict[str, float]  # mean reward per seller label
    interval: Estimate | None = None  # the leaders' and each family's best: 95% interval resampling products


@dataclass(frozen=True, slots=True)
class BaselineResult:
    search: BaselineSearch
    rows: list[BaselineRow]  # best first

    @property
    def best(self) -> BaselineRow:
        """The best scripted buyer: the winner over every family searched."""
        return self.rows[0]

    @property
    def best_talk_blind(self) -> BaselineRow | None:
        """The best buyer whose words carry no arguments: against sellers that read, the bar that arguing must
        clear (the same as :attr:`best` while no arguing family leads; ``None`` if none was searched)."""
        return next((row for row in self.rows if talk_blind(row.buyer)), None)

    def family_best(self) -> dict[str, BaselineRow]:
        """Each family's best setting, families in the order of their winners."""
        best: dict[str, BaselineRow] = {}
        for row in self.rows:
            best.setdefault(family(row.buyer), row)
        return best

    def to_json(self) -> dict:
        return {
            "search": self.search.model_dump(mode="json"),
            "best": self.best.buyer,
            "best_talk_blind": self.best_talk_blind.buyer if self.best_talk_blind else None,
            "family_best": {name: row.buyer for name, row in self.family_best().items()},
            "rows": [
                {
                    "buyer": row.buyer,
                    "reward": row.reward,
                    "reward_ci": [row.interval.ci_low, row.interval.ci_high] if row.interval else None,
                    "by_seller": row.by_seller,
                }
                for row in self.rows
            ],
        }


def run_baselines(search: BaselineSearch, out: Path | None = None) -> BaselineResult:
    """Rank ``search.buyers`` by mean reward against the mixture; write ``out/baselines.json`` when given."""
    for spec in search.buyers:
        if not spec.startswith("scripted:") or spec.startswith("scripted:oracle"):
            raise ConfigError(f"the baseline search ranks scripted buyers (not the oracle), not {spec!r}")
    scenarios = load_scenarios(search.catalog, search.split, data_root=search.data_root, limit=search.limit).scenarios
    mixture = SellerMixture(search.sellers)
    buyers = {spec: make_agent(spec, Role.BUYER) for spec in search.buyers}
    # buyer → seller label → (product, reward) of every episode
    rewards: dict[str, dict[str, list[tuple[str, float]]]] = {spec: {} for spec in search.buyers}
    try:
        for choice in mixture.choices:
            seller = mixture.agent(choice)
            jobs = plan_jobs(scenarios, search.buyers, choice.spec, choice.persona, 1, search.seed)

            def record(episode, label: str = choice.label) -> None:  # noqa: ANN001
                rewards[episode.buyer].setdefault(label, []).append((episode.scenario_id, episode.reward))

            run_episodes(
                jobs,
                lambda job, s=seller: (buyers[job.buyer], s),
                record,
                config=GameConfig(max_turns=search.max_turns),
                concurrency=1024,
            )
    finally:
        mixture.close()

    def every(spec: str) -> list[tuple[str, float]]:
        return [pair for pairs in rewards[spec].values() for pair in pairs]

    def mean(pairs: list[tuple[str, float]]) -> float:
        return statistics.fmean(reward for _, reward in pairs)

    def interval(spec: str) -> Estimate:
        pairs = every(spec)
        return bootstrap_mean([r for _, r in pairs], clusters=[p for p, _ in pairs], seed=search.seed)

    ranked = sorted(search.buyers, key=lambda spec: (-mean(every(spec)), spec))
    family_leaders = {next(spec for spec in ranked if family(spec) == name) for name in map(family, ranked)}
    rows = [
        BaselineRow(
            spec,
            mean(every(spec)),
            {label: mean(pairs) for label, pairs in rewards[spec].items()},
            interval(spec) if rank < INTERVAL_ROWS or spec in family_leaders else None,
        )
        for rank, spec in enumerate(ranked)
    ]
    result = BaselineResult(search, rows)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        write_text_atomic(out / BASELINES_FILE, json.dumps(result.to_json(), indent=2) + "\n")
    return result
