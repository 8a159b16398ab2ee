"""Scenario recipes (products → private values) and deterministic splits.

``paper`` (AmazonHistoryPrice, Xia et al. 2024 / arXiv 2604.09855):
    cost C = lowest historical price; asking price A = max(list price, highest historical price);
    budget B = 0.8 × the seller's listed price. The benchmark's "list price" is the price the seller lists, i.e.
    the asking price A; with that basis the recipe gives exactly the 886 mutual-interest / 44
    conflicting-interest items the paper reports (``budget_basis="list"`` uses the ``list_price`` field instead
    and gives 832 / 98).

``craigslist`` (CraigslistBargain, He et al. 2018):
    asking price A = the listing price; budget B = the dataset's buyer target price (what its human buyers were
    told to aim for), taken as a strict budget; cost C = 0.5 × listing price (the dataset has no seller cost, so
    this is a documented assumption; ``cost_ratio`` overrides it).

Splits: AmazonHistoryPrice is shuffled with a fixed seed and cut into 802 train / 128 test products, so every
run and every user sees the same test set. CraigslistBargain keeps its upstream files as splits.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from counteroffer.catalog.loaders import (
    CRAIGSLIST_FILES,
    CatalogError,
    RecordProblem,
    load_amazon,
    load_craigslist,
)
from counteroffer.catalog.locate import resolve_data_root
from counteroffer.catalog.models import Product, Scenario
from counteroffer.errors import ConfigError

CatalogName = Literal["amazon", "craigslist"]
SPLIT_SEED = 2604_09855
AMAZON_TEST_SIZE = 128
AMAZON_SPLITS = ("train", "test", "all")


class PaperRecipe(BaseModel):
    """AmazonHistoryPrice recipe of the paper; every parameter can be overridden."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: Literal["paper"] = "paper"
    budget_ratio: float = Field(0.8, gt=0, description="budget = budget_ratio × the budget basis price")
    budget_basis: Literal["asking", "list"] = Field(
        "asking", description="'asking' = max(list, highest) as in the paper's counts; 'list' = the list_price field"
    )
    cost_ratio: float = Field(1.0, gt=0, description="cost = cost_ratio × lowest historical price")

    def scenario(self, product: Product) -> Scenario:
        if product.lowest_price is None:
            raise CatalogError(f"{product.product_id}: the paper recipe needs a lowest price")
        asking = max(product.list_price, product.highest_price or 0.0)
        basis = asking if self.budget_basis == "asking" else product.list_price
        return _scenario(product, self.name, asking, self.budget_ratio * basis, self.cost_ratio * product.lowest_price)


class CraigslistRecipe(BaseModel):
    """CraigslistBargain recipe: budget from the buyer target, cost as a share of the listing price."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: Literal["craigslist"] = "craigslist"
    cost_ratio: float = Field(0.5, gt=0, lt=1, description="cost = cost_ratio × listing price")
    budget_over_target: float = Field(1.0, gt=0, description="budget = budget_over_target × buyer target")

    def scenario(self, product: Product) -> Scenario:
        if product.buyer_target is None:
            raise CatalogError(f"{product.product_id}: the craigslist recipe needs a buyer target")
        return _scenario(
            product,
            self.name,
            product.list_price,
            self.budget_over_target * product.buyer_target,
            self.cost_ratio * product.list_price,
        )


Recipe = PaperRecipe | CraigslistRecipe
DEFAULT_RECIPES: dict[str, Recipe] = {"amazon": PaperRecipe(), "craigslist": CraigslistRecipe()}


def _scenario(product: Product, recipe: str, asking: float, budget: float, cost: float) -> Scenario:
    return Scenario(
        scenario_id=product.product_id,
        recipe=recipe,
        product=product,
        # The asking price is shown to people, so it is in cents; the private values stay exact (0.8 × $14.99 =
        # $11.992) so that the mutual-interest split matches the paper's counts.
        asking_price=round(asking, 2),
        budget=round(budget, 6),
        cost=round(cost, 6),
    )


def amazon_split(product_ids: Sequence[str], split: str, seed: int = SPLIT_SEED) -> list[str]:
    """The ids of ``split`` ('train', 'test' or 'all'), in a fixed shuffled order."""
    if split not in AMAZON_SPLITS:
        raise ConfigError(f"unknown AmazonHistoryPrice split {split!r}; choose one of {AMAZON_SPLITS}")
    order = sorted(product_ids)
    random.Random(seed).shuffle(order)
    if split == "all":
        return order
    # A small catalogue (a user's subset, a test fixture) still gets a non-empty train split.
    test_size = min(AMAZON_TEST_SIZE, len(order) // 2)
    return order[:test_size] if split == "test" else order[test_size:]


@dataclass(slots=True)
class ScenarioSet:
    catalog: str
    split: str
    scenarios: list[Scenario]
    problems: list[RecordProblem] = field(default_factory=list)

    @property
    def mutual_interest_count(self) -> int:
        return sum(s.mutual_interest for s in self.scenarios)


def load_scenarios(
    catalog: CatalogName = "amazon",
    split: str = "test",
    *,
    recipe: Recipe | None = None,
    data_root: str | Path | None = None,
    limit: int | None = None,
) -> ScenarioSet:
    """Scenarios of one catalogue split, in the split's fixed order, optionally the first ``limit``."""
    if catalog not in DEFAULT_RECIPES:  # before the recipe lookup, which would raise a bare KeyError
        raise ConfigError(f"unknown catalogue {catalog!r}; choose 'amazon' or 'craigslist'")
    root = resolve_data_root(data_root)
    recipe = recipe or DEFAULT_RECIPES[catalog]
    if catalog == "amazon":
        load = load_amazon(root)
        by_id = {p.product_id: p for p in load.products}
        products = [by_id[i] for i in amazon_split(list(by_id), split)]
    elif catalog == "craigslist":
        if split == "all":
            files: Sequence[str] = CRAIGSLIST_FILES
        elif split in CRAIGSLIST_FILES:
            files = (split,)
        else:
            raise ConfigError(f"unknown CraigslistBargain split {split!r}; choose one of {(*CRAIGSLIST_FILES, 'all')}")
        load = load_craigslist(root, files)
        products = load.products
    else:
        raise ConfigError(f"unknown catalogue {catalog!r}; choose 'amazon' or 'craigslist'")
    if limit is not None:
        products = products[:limit]
    scenarios, problems = [], list(load.problems)
    for position, product in enumerate(products):
        try:
            scenarios.append(recipe.scenario(product))
        except ValueError as exc:  # e.g. a recipe override that puts the cost above the asking price
            problems.append(RecordProblem(f"{catalog}/{split} with recipe {recipe.name}", position, str(exc)))
    if not scenarios:
        raise CatalogError(f"recipe {recipe.name} gives no valid scenario for {catalog}/{split}: {problems[0]}")
    return ScenarioSet(catalog, split, scenarios, problems)
