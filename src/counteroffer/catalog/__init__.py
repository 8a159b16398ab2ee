"""Product catalogues (AmazonHistoryPrice, CraigslistBargain), scenario recipes and splits."""

from counteroffer.catalog.loaders import (
    CatalogError,
    CatalogLoad,
    RecordProblem,
    load_amazon,
    load_craigslist,
)
from counteroffer.catalog.locate import DataNotFoundError, resolve_data_root
from counteroffer.catalog.models import Product, Scenario
from counteroffer.catalog.recipes import (
    CraigslistRecipe,
    PaperRecipe,
    Recipe,
    ScenarioSet,
    amazon_split,
    load_scenarios,
)

__all__ = [
    "CatalogError",
    "CatalogLoad",
    "CraigslistRecipe",
    "DataNotFoundError",
    "PaperRecipe",
    "Product",
    "Recipe",
    "RecordProblem",
    "Scenario",
    "ScenarioSet",
    "amazon_split",
    "load_amazon",
    "load_craigslist",
    "load_scenarios",
    "resolve_data_root",
]
