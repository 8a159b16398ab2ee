"""Honest baselines: a grid search over the fixed scripted buyers, on the train split, against a seller mixture.

"Best fixed scripted buyer" in every table means this search's winner, chosen on the *train* split and then
evaluated on test like any other buyer, so that a trained model is compared with the strongest rule the grid
holds rather than with one default setting.

The grid covers two families of fixed rules, which decide from the clock and their own budget alone (they look at
the seller's price only to accept it):

- anchor-and-concede (``scripted:anchor?opening=O&concession=C``): open at ``O × budget`` and concede to the
  budget by the last turn along a curve of exponent ``C`` (small C holds low and jumps late);
- patient (``scripted:patient?opening=O``): hold ``O × budget`` and, at the last turn, take the seller's price
  if it is within the budget, else walk away.

Every buyer plays every product against every seller of the mixture (the mixture's expected reward, without the
noise of a draw); the ranking is by the mean reward over all those episodes. Scripted episodes take microseconds,
so the default grid (72 buyers × 3 sellers × 802 products) runs in well under a minute.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from counteroffer.agents.registry import make_agent
from counteroffer.catalog.recipes import CatalogName, load_scenarios
from counteroffer.evaluate.stats import Estimate, bootstrap_mean
from counteroffer.files import write_text_atomic
from counteroffer.game.messages import Role
from counteroffer.game.negotiation import GameConfig
from counteroffer.rollout.mixture import SellerChoice, SellerMixture
from counteroffer.rollout.runner import plan_jobs, run_episodes

BASELINES_FILE = "baselines.json"
ANCHOR_OPENINGS = (0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
ANCHOR_CONCESSIONS = (0.3, 0.5, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0)
PATIENT_OPENINGS = (0.05, 0.1, 0.3, 0.5)


def default_grid() -> list[str]:
    """The fixed scripted buyers the search ranks."""
    anchors = [f"scripted:anchor?opening={o:g}&concession={c:g}" for o in ANCHOR_OPENINGS for c in ANCHOR_CONCESSIONS]
    return anchors + [f"scripted:patient?opening={o:g}" for o in PATIENT_OPENINGS]


class BaselineSearch(BaseModel):
    """What defines a search."""

    model_config = ConfigDict(extra="forbid")
    sellers: list[SellerChoice] = Field(min_length=1, description="the mixture: every buyer meets each of them")
    buyers: list[str] = Field(default_factory=default_grid, min_length=1, description="scripted buyer specs")
    catalog: CatalogName = "amazon"
    split: str = "train"
    limit: int | None = Field(None, ge=1, description="only the first LIMIT products of the split")
    max_turns: int = Field(4, ge=1)
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


INTERVAL_ROWS = 10  # the leaders get a bootstrap interval (enough to see whether the winner is clear)


@dataclass(frozen=True, slots=True)
class BaselineRow:
    buyer: str
    reward: float  # the mean over every (product, seller) episode
    by_seller: dict[str, float]  # mean reward per seller label
    interval: Estimate | None = None  # the leaders' 95% bootstrap interval


@dataclass(frozen=True, slots=True)
class BaselineResult:
    search: BaselineSearch
    rows: list[BaselineRow]  # best first

    @property
    def best(self) -> BaselineRow:
        return self.rows[0]

    def to_json(self) -> dict:
        return {
            "search": self.search.model_dump(mode="json"),
            "best": self.best.buyer,
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
            raise ValueError(f"the baseline search ranks fixed scripted buyers, not {spec!r}")
    scenarios = load_scenarios(search.catalog, search.split, data_root=search.data_root, limit=search.limit).scenarios
    mixture = SellerMixture(search.sellers)
    buyers = {spec: make_agent(spec, Role.BUYER) for spec in search.buyers}
    rewards: dict[str, dict[str, list[float]]] = {spec: {} for spec in search.buyers}
    try:
        for choice in mixture.choices:
            seller = mixture.agent(choice)
            jobs = plan_jobs(scenarios, search.buyers, choice.spec, choice.persona, 1, search.seed)

            def record(episode, label: str = choice.label) -> None:  # noqa: ANN001
                rewards[episode.buyer].setdefault(label, []).append(episode.reward)

            run_episodes(
                jobs,
                lambda job, s=seller: (buyers[job.buyer], s),
                record,
                config=GameConfig(max_turns=search.max_turns),
                concurrency=1024,
            )
    finally:
        mixture.close()

    def every(spec: str) -> list[float]:
        return [r for values in rewards[spec].values() for r in values]

    ranked = sorted(search.buyers, key=lambda spec: (-statistics.fmean(every(spec)), spec))
    rows = [
        BaselineRow(
            spec,
            statistics.fmean(every(spec)),
            {label: statistics.fmean(values) for label, values in rewards[spec].items()},
            bootstrap_mean(every(spec), seed=search.seed) if rank < INTERVAL_ROWS else None,
        )
        for rank, spec in enumerate(ranked)
    ]
    result = BaselineResult(search, rows)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        write_text_atomic(out / BASELINES_FILE, json.dumps(result.to_json(), indent=2) + "\n")
    return result
