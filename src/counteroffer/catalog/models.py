"""Products as the catalogues describe them, and scenarios: a product plus the two private values."""

from __future__ import annotations

import msgspec


class Product(msgspec.Struct, gc=False, frozen=True, kw_only=True):
    """One product as listed, with the price history that recipes turn into private values."""

    product_id: str
    source: str  # "amazon" | "craigslist"
    title: str
    category: str
    description: str = ""
    features: str = ""
    list_price: float
    lowest_price: float | None = None
    highest_price: float | None = None
    current_price: float | None = None
    average_price: float | None = None
    buyer_target: float | None = None  # CraigslistBargain's buyer target price


class Scenario(msgspec.Struct, gc=False, frozen=True, kw_only=True):
    """Everything the game needs about one negotiation's setting.

    ``budget`` is private to the buyer, ``cost`` private to the seller; ``asking_price`` is public and is the
    seller's standing offer before any [SELL].
    """

    scenario_id: str
    recipe: str
    product: Product
    asking_price: float
    budget: float
    cost: float

    def __post_init__(self) -> None:
        if not (self.asking_price > 0 and self.budget > 0 and self.cost > 0):
            raise ValueError(f"scenario {self.scenario_id}: asking price, budget and cost must be positive")
        if self.asking_price < self.cost:
            # The asking price is the seller's standing offer: below cost, a buyer [DEAL] would bypass the regulator.
            raise ValueError(f"scenario {self.scenario_id}: asking price {self.asking_price} is below cost {self.cost}")

    @property
    def mutual_interest(self) -> bool:
        """True when a deal can leave both sides no worse off (budget above cost)."""
        return self.budget > self.cost + 1e-6  # float noise only; values are exact

    @property
    def interest(self) -> str:
        return "MI" if self.mutual_interest else "CI"
