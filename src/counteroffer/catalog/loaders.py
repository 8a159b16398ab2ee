"""Loaders for the two catalogues in their upstream formats.

- AmazonHistoryPrice: a folder of per-category JSON arrays; prices are strings such as ``"$1,099.99"``; most text
  fields are optional.
- CraigslistBargain: JSON lines of dialogues; one product per distinct listing (the same listing appears in
  several dialogues; the first dialogue's buyer target is kept).

A malformed record is skipped and reported as a :class:`RecordProblem` with its file and index (0-based
position in the JSON array, or 1-based line number for JSON lines); the caller shows the count. A missing folder
or a catalogue with no usable record is a :class:`CatalogError`.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from counteroffer.catalog.locate import AMAZON_DIR, CRAIGSLIST_DIR
from counteroffer.catalog.models import Product
from counteroffer.errors import InputError

CRAIGSLIST_FILES = ("test", "validation")
_ASIN_RE = re.compile(r"/(?:product|dp)/([A-Z0-9]{10})")
_MONEY_RE = re.compile(r"^\$?\s*((?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?)$")


class CatalogError(InputError):
    """The catalogue cannot be used at all (missing folder, unreadable file, no valid record)."""


@dataclass(frozen=True, slots=True)
class RecordProblem:
    file: str
    index: int
    reason: str

    def __str__(self) -> str:
        return f"{self.file}[{self.index}]: {self.reason}"


@dataclass(slots=True)
class CatalogLoad:
    products: list[Product] = field(default_factory=list)
    problems: list[RecordProblem] = field(default_factory=list)


class _BadRecord(ValueError):
    pass


def parse_money(value: object, name: str) -> float:
    """A price field as a positive float; ``"$1,099.99"`` and plain numbers are accepted."""
    if isinstance(value, bool):
        raise _BadRecord(f"{name} is not a price: {value!r}")
    if isinstance(value, int | float):
        amount = float(value)
    elif isinstance(value, str):
        match = _MONEY_RE.match(value.strip())
        if match is None:
            raise _BadRecord(f"{name} is not a price: {value!r}")
        amount = float(match.group(1).replace(",", ""))
    elif value is None:
        raise _BadRecord(f"{name} is missing")
    else:
        raise _BadRecord(f"{name} is not a price: {value!r}")
    if not math.isfinite(amount) or amount <= 0:
        raise _BadRecord(f"{name} must be positive, got {value!r}")
    return amount


def _optional_money(record: dict, name: str) -> float | None:
    value = record.get(name)
    return None if value in (None, "") else parse_money(value, name)


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return "\n".join(str(item) for item in value if item)
    return str(value)


def _amazon_product(record: object, category_file: str) -> Product:
    if not isinstance(record, dict):
        raise _BadRecord(f"expected an object, got {type(record).__name__}")
    title = _text(record.get("title") or record.get("amazon_title")).strip()
    if not title:
        raise _BadRecord("title is missing")
    list_price = parse_money(record.get("list_price"), "list_price")
    lowest = parse_money(record.get("lowest_price"), "lowest_price")
    highest = _optional_money(record, "highest_price")
    asking = max(list_price, highest or 0.0)
    if lowest >= asking:
        raise _BadRecord(f"lowest_price {lowest} is not below the asking price {asking}")
    link = _text(record.get("link") or record.get("amazon_link"))
    asin = _ASIN_RE.search(link)
    product_id = asin.group(1) if asin else "amz-" + hashlib.sha1(title.encode()).hexdigest()[:10]
    return Product(
        product_id=product_id,
        source="amazon",
        title=title,
        category=_text(record.get("category")) or category_file,
        description=_text(record.get("description")),
        features=_text(record.get("features")),
        list_price=list_price,
        lowest_price=lowest,
        highest_price=highest,
        current_price=_optional_money(record, "current_price"),
        average_price=_optional_money(record, "average_price"),
    )


def _read_json(path: Path) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CatalogError(f"{path}: cannot read JSON: {exc}") from exc


def load_amazon(root: Path) -> CatalogLoad:
    """Load every ``<category>.json`` under ``root/amazon_history_price`` (or ``root`` itself)."""
    folder = root / AMAZON_DIR if (root / AMAZON_DIR).is_dir() else root
    if not folder.is_dir():
        raise CatalogError(f"AmazonHistoryPrice folder {folder} does not exist")
    files = sorted(folder.glob("*.json"))
    if not files:
        raise CatalogError(f"no <category>.json files in {folder}")
    load = CatalogLoad()
    seen: set[str] = set()
    for path in files:
        records = _read_json(path)
        if not isinstance(records, list):
            raise CatalogError(f"{path}: expected a JSON array of products")
        for index, record in enumerate(records):
            try:
                product = _amazon_product(record, path.stem)
                if product.product_id in seen:
                    raise _BadRecord(f"duplicate product id {product.product_id}")
            except _BadRecord as exc:
                load.problems.append(RecordProblem(str(path), index, str(exc)))
                continue
            seen.add(product.product_id)
            load.products.append(product)
    _require_products(load, folder)
    return load


def _craigslist_product(record: object) -> Product:
    if not isinstance(record, dict):
        raise _BadRecord(f"expected an object, got {type(record).__name__}")
    try:
        items, info = record["items"], record["agent_info"]
        buyer = info["Role"].index("buyer")
        title = _text(items["Title"][buyer]).strip()
        listing_price = parse_money(items["Price"][buyer], "items.Price")
        target = parse_money(info["Target"][buyer], "agent_info.Target (buyer)")
        category = _text(items["Category"][buyer])
        description = _text(items["Description"][buyer])
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        if isinstance(exc, _BadRecord):
            raise
        raise _BadRecord(f"missing or malformed field: {exc!r}") from exc
    if not title:
        raise _BadRecord("title is missing")
    listing = "\x1f".join((title, f"{listing_price:.2f}", category, description))
    return Product(
        product_id="cl-" + hashlib.sha1(listing.encode()).hexdigest()[:12],
        source="craigslist",
        title=title,
        category=category,
        description=description,
        list_price=listing_price,
        buyer_target=target,
    )


def load_craigslist(root: Path, files: Iterable[str] = CRAIGSLIST_FILES) -> CatalogLoad:
    """Load CraigslistBargain dialogues from ``root/craigslist_bargain/<file>.jsonl``, one product per listing."""
    folder = root / CRAIGSLIST_DIR if (root / CRAIGSLIST_DIR).is_dir() else root
    if not folder.is_dir():
        raise CatalogError(f"CraigslistBargain folder {folder} does not exist")
    load = CatalogLoad()
    seen: set[str] = set()
    for name in files:
        path = folder / f"{name}.jsonl"
        if not path.is_file():
            raise CatalogError(f"CraigslistBargain file {path} does not exist")
        with path.open(encoding="utf-8") as lines:
            for line_number, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                try:
                    product = _craigslist_product(json.loads(line))
                except json.JSONDecodeError as exc:
                    load.problems.append(RecordProblem(str(path), line_number, f"invalid JSON: {exc.msg}"))
                    continue
                except _BadRecord as exc:
                    load.problems.append(RecordProblem(str(path), line_number, str(exc)))
                    continue
                if product.product_id not in seen:
                    seen.add(product.product_id)
                    load.products.append(product)
    _require_products(load, folder)
    return load


def _require_products(load: CatalogLoad, folder: Path) -> None:
    if not load.products:
        detail = f" ({len(load.problems)} malformed records, e.g. {load.problems[0]})" if load.problems else ""
        raise CatalogError(f"no valid product in {folder}{detail}")
