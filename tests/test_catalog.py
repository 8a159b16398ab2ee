"""Catalogue loaders, scenario recipes and splits, on the shared data and on small malformed copies."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import pytest

from counteroffer.catalog import (
    CatalogError,
    CraigslistRecipe,
    DataNotFoundError,
    PaperRecipe,
    RecordProblem,
    amazon_split,
    load_amazon,
    load_craigslist,
    load_scenarios,
    resolve_data_root,
)
from counteroffer.catalog.loaders import parse_money
from counteroffer.catalog.locate import DATA_ENV_VAR

# B0C73H8PVT (electronics.json[196], a Hisense 55" TV): list $1,099.99, lowest $698.00, highest $1,299.99,
# current $698.00, average $766.58. Its highest price is above its list price, so the asking price is the highest.
TV_ID = "B0C73H8PVT"
# The first dialogue of craigslist test.jsonl: "Ubiquiti Networks UAP-AC-LITE", listed at $65, buyer target $49.
# Later dialogues of the same listing have targets 59, 49, 39, 59: the first dialogue's target is kept.
UBIQUITI_PREFIX = "Ubiquiti Networks UAP"
# The fixed test split; changing it changes every published number, so it is pinned.
TEST_SPLIT_SHA256 = "d838a755c27211c5f3640e6a71257a4ee405de671a6601f83eedbc59816fa8d2"


def _raw_amazon(shared_data: Path, asin: str) -> dict:
    for path in sorted((shared_data / "amazon_history_price").glob("*.json")):
        for record in json.loads(path.read_text(encoding="utf-8")):
            if asin in record.get("link", ""):
                return record
    raise AssertionError(f"{asin} not in the shared data")


# --- AmazonHistoryPrice on the shared data ------------------------------------------------------------------------


def test_amazon_loads_every_product(shared_data: Path) -> None:
    load = load_amazon(shared_data)
    assert len(load.products) == 930
    assert load.problems == []
    assert len({p.product_id for p in load.products}) == 930
    assert all(p.source == "amazon" and p.title and p.lowest_price is not None for p in load.products)
    assert all(p.lowest_price < max(p.list_price, p.highest_price or 0) for p in load.products)
    # The folder itself is accepted as well as the data root.
    assert len(load_amazon(shared_data / "amazon_history_price").products) == 930


def test_amazon_prices_parse_and_features_are_kept(shared_data: Path) -> None:
    products = {p.product_id: p for p in load_amazon(shared_data).products}
    tv = products[TV_ID]
    assert tv.list_price == 1099.99
    assert tv.lowest_price == 698.00
    assert tv.highest_price == 1299.99
    assert tv.current_price == 698.00
    assert tv.average_price == 766.58
    assert tv.category == "electronics"
    raw = _raw_amazon(shared_data, TV_ID)
    assert isinstance(raw["features"], str) and len(raw["features"]) > 100
    assert tv.features == raw["features"]
    assert tv.description == raw["description"]
    assert tv.title == raw["title"]


@pytest.mark.parametrize(
    ("text", "value"),
    [("$1,099.99", 1099.99), ("$4.99", 4.99), ("1099.99", 1099.99), ("$ 12", 12.0), (" $3,597.99 ", 3597.99), (7, 7.0)],
)
def test_parse_money_accepts_upstream_forms(text: object, value: float) -> None:
    assert parse_money(text, "list_price") == value


@pytest.mark.parametrize("text", ["$abc", "", "$0.00", "-$5.00", -5, 0, "1,09.99", "$12.99 - $15.99", None, True, [1]])
def test_parse_money_rejects_non_prices(text: object) -> None:
    with pytest.raises(ValueError, match="list_price"):
        parse_money(text, "list_price")


# --- recipes and splits --------------------------------------------------------------------------------------------


def test_amazon_split_sizes_disjoint_and_complete(shared_data: Path) -> None:
    train = load_scenarios("amazon", "train", data_root=shared_data)
    test = load_scenarios("amazon", "test", data_root=shared_data)
    everything = load_scenarios("amazon", "all", data_root=shared_data)
    train_ids = [s.scenario_id for s in train.scenarios]
    test_ids = [s.scenario_id for s in test.scenarios]
    all_ids = [s.scenario_id for s in everything.scenarios]
    assert (len(train_ids), len(test_ids), len(all_ids)) == (802, 128, 930)
    assert len(set(train_ids)) == 802 and len(set(test_ids)) == 128 and len(set(all_ids)) == 930
    assert not set(train_ids) & set(test_ids)
    assert set(train_ids) | set(test_ids) == set(all_ids)
    assert hashlib.sha256("\n".join(test_ids).encode()).hexdigest() == TEST_SPLIT_SHA256


def test_amazon_split_is_deterministic(shared_data: Path) -> None:
    first = [s.scenario_id for s in load_scenarios("amazon", "test", data_root=shared_data).scenarios]
    second = [s.scenario_id for s in load_scenarios("amazon", "test", data_root=shared_data).scenarios]
    assert first == second
    # The split does not depend on the order in which products were read.
    ids = [p.product_id for p in load_amazon(shared_data).products]
    shuffled = ids[:]
    random.Random(7).shuffle(shuffled)
    for split in ("train", "test", "all"):
        assert amazon_split(ids, split) == amazon_split(shuffled, split)
    assert amazon_split(ids, "test") == first
    assert amazon_split(ids, "test", seed=1) != first
    with pytest.raises(ValueError, match="unknown AmazonHistoryPrice split"):
        amazon_split(ids, "dev")


def test_small_catalogue_still_has_both_splits() -> None:
    ids = [f"id{i}" for i in range(10)]
    assert len(amazon_split(ids, "test")) == 5
    assert len(amazon_split(ids, "train")) == 5


def test_paper_recipe_counts(shared_data: Path) -> None:
    everything = load_scenarios("amazon", "all", data_root=shared_data)
    assert everything.mutual_interest_count == 886
    assert sum(s.interest == "CI" for s in everything.scenarios) == 44
    assert all(s.recipe == "paper" for s in everything.scenarios)
    list_basis = load_scenarios("amazon", "all", data_root=shared_data, recipe=PaperRecipe(budget_basis="list"))
    assert list_basis.mutual_interest_count == 832


def test_paper_recipe_values_for_a_hand_checked_product(shared_data: Path) -> None:
    scenarios = {s.scenario_id: s for s in load_scenarios("amazon", "all", data_root=shared_data).scenarios}
    tv = scenarios[TV_ID]
    assert tv.cost == pytest.approx(698.00)
    assert tv.asking_price == pytest.approx(1299.99)  # max(list $1,099.99, highest $1,299.99)
    assert tv.budget == pytest.approx(0.8 * 1299.99)
    assert tv.mutual_interest
    by_list = PaperRecipe(budget_basis="list").scenario(tv.product)
    assert by_list.budget == pytest.approx(0.8 * 1099.99)
    assert by_list.asking_price == pytest.approx(1299.99)


def test_recipe_overrides_change_the_values(shared_data: Path) -> None:
    default = load_scenarios("amazon", "all", data_root=shared_data)
    richer = load_scenarios("amazon", "all", data_root=shared_data, recipe=PaperRecipe(budget_ratio=0.9))
    for base, rich in zip(default.scenarios, richer.scenarios, strict=True):
        assert rich.scenario_id == base.scenario_id
        assert rich.budget == pytest.approx(base.budget * 0.9 / 0.8)
        assert rich.cost == base.cost and rich.asking_price == base.asking_price
    assert richer.mutual_interest_count > default.mutual_interest_count
    dearer = PaperRecipe(cost_ratio=1.1).scenario(default.scenarios[0].product)
    assert dearer.cost == pytest.approx(1.1 * default.scenarios[0].cost)
    with pytest.raises(ValueError):
        PaperRecipe(budget_ratio=0)
    with pytest.raises(ValueError):
        PaperRecipe(budget_basis="highest")  # type: ignore[arg-type]


def test_limit_takes_the_first_scenarios(shared_data: Path) -> None:
    full = load_scenarios("amazon", "test", data_root=shared_data)
    first = load_scenarios("amazon", "test", data_root=shared_data, limit=5)
    assert [s.scenario_id for s in first.scenarios] == [s.scenario_id for s in full.scenarios[:5]]


def test_unknown_catalogue_or_split_is_a_clear_error(shared_data: Path) -> None:
    with pytest.raises(ValueError, match="unknown catalogue 'ebay'"):
        load_scenarios("ebay", "test", data_root=shared_data)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown CraigslistBargain split 'train'"):
        load_scenarios("craigslist", "train", data_root=shared_data)


# --- CraigslistBargain on the shared data --------------------------------------------------------------------------


def test_craigslist_has_one_scenario_per_listing(shared_data: Path) -> None:
    path = shared_data / "craigslist_bargain" / "test.jsonl"
    dialogues = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert len(dialogues) == 838
    listings = set()
    for dialogue in dialogues:
        buyer = dialogue["agent_info"]["Role"].index("buyer")
        items = dialogue["items"]
        listings.add(tuple(items[field][buyer] for field in ("Title", "Price", "Category", "Description")))
    test = load_scenarios("craigslist", "test", data_root=shared_data)
    assert test.problems == []
    assert len(test.scenarios) == len(listings) < len(dialogues)
    assert len({s.scenario_id for s in test.scenarios}) == len(test.scenarios)
    assert all(s.scenario_id.startswith("cl-") and s.recipe == "craigslist" for s in test.scenarios)


def test_craigslist_recipe_on_a_hand_picked_listing(shared_data: Path) -> None:
    test = load_scenarios("craigslist", "test", data_root=shared_data)
    ubiquiti = [s for s in test.scenarios if s.product.title.startswith(UBIQUITI_PREFIX)]
    assert len(ubiquiti) == 1
    scenario = ubiquiti[0]
    assert scenario is test.scenarios[0]  # the first dialogue's listing comes first
    assert scenario.product.category == "electronics"
    assert scenario.asking_price == 65.0
    assert scenario.budget == 49.0  # the first dialogue's buyer target, not a later one (59, 39)
    assert scenario.cost == 32.5
    assert scenario.mutual_interest
    custom = CraigslistRecipe(cost_ratio=0.8, budget_over_target=1.1).scenario(scenario.product)
    assert (custom.cost, custom.budget, custom.asking_price) == pytest.approx((52.0, 53.9, 65.0))
    with pytest.raises(ValueError):
        CraigslistRecipe(cost_ratio=1.0)


def test_craigslist_validation_and_all_splits_load(shared_data: Path) -> None:
    test = load_scenarios("craigslist", "test", data_root=shared_data)
    validation = load_scenarios("craigslist", "validation", data_root=shared_data)
    everything = load_scenarios("craigslist", "all", data_root=shared_data)
    assert validation.problems == [] and 0 < len(validation.scenarios) < 597
    assert all(s.budget > 0 and s.cost > 0 and s.asking_price > 0 for s in validation.scenarios)
    all_ids = {s.scenario_id for s in everything.scenarios}
    assert all_ids == {s.scenario_id for s in test.scenarios} | {s.scenario_id for s in validation.scenarios}
    assert len(all_ids) == len(everything.scenarios)


# --- malformed records, missing data --------------------------------------------------------------------------------


_MISSING = object()  # a field left out of a record


def _amazon_record(asin: str, *, list_price: object = "$100.00", lowest: object = "$60.00", **extra: object) -> dict:
    record = {
        "title": f"Product {asin}",
        "category": "toys",
        "list_price": list_price,
        "lowest_price": lowest,
        "highest_price": "$110.00",
        "link": f"https://camelcamelcamel.com/product/{asin}?active=price_amazon",
    }
    record.update(extra)
    return {k: v for k, v in record.items() if v is not _MISSING}


def _craigslist_line(title: str, price: float = 100.0, target: float = 70.0) -> str:
    return json.dumps(
        {
            "agent_info": {"Role": ["seller", "buyer"], "Target": [price, target]},
            "items": {
                "Category": ["bike", "bike"],
                "Title": [title, title],
                "Price": [price, price],
                "Description": ["used", "used"],
            },
            "utterance": [],
        }
    )


@pytest.fixture
def malformed_root(tmp_path: Path) -> Path:
    amazon = tmp_path / "amazon_history_price"
    amazon.mkdir()
    toys = [
        _amazon_record("B000000001", features="Soft.\nWashable."),  # 0 valid, features a string
        _amazon_record("B000000002", list_price=_MISSING),  # 1 no list price
        _amazon_record("B000000003", list_price="$abc"),  # 2 unparsable
        _amazon_record("B000000004", list_price="$40.00", lowest="$120.00"),  # 3 lowest >= asking ($110)
        _amazon_record("B000000005", list_price="$0.00"),  # 4 zero price
        _amazon_record("B000000006", lowest=-5),  # 5 negative price
        "not a product",  # 6 not an object
        _amazon_record("B000000007", features=["Light.", "", "Strong."]),  # 7 valid, features a list
    ]
    (amazon / "toys.json").write_text(json.dumps(toys), encoding="utf-8")
    # Read after toys.json (files are read in name order): its second record repeats an ASIN of toys.json.
    videos = [_amazon_record("B000000008"), _amazon_record("B000000001")]
    (amazon / "video-games.json").write_text(json.dumps(videos), encoding="utf-8")

    craigslist = tmp_path / "craigslist_bargain"
    craigslist.mkdir()
    test_lines = [
        _craigslist_line("Road bike"),  # 1 valid
        '{"agent_info": {"Role": ["buyer", "seller"]',  # 2 bad JSON (torn)
        "",  # 3 blank: ignored, not a problem
        json.dumps({"items": {"Title": ["x", "x"]}}),  # 4 no agent_info
        json.dumps([1, 2, 3]),  # 5 not an object
        _craigslist_line("Road bike"),  # 6 the same listing again: deduplicated, not a problem
        _craigslist_line("Cheap bike", price=0),  # 7 zero listing price
        _craigslist_line("Kids bike", price=50.0, target=30.0),  # 8 valid
    ]
    (craigslist / "test.jsonl").write_text("\n".join(test_lines) + "\n", encoding="utf-8")
    (craigslist / "validation.jsonl").write_text(_craigslist_line("Fixie") + "\n", encoding="utf-8")
    return tmp_path


def _by_index(problems: list[RecordProblem], file_name: str) -> dict[int, str]:
    return {p.index: p.reason for p in problems if Path(p.file).name == file_name}


def test_malformed_amazon_records_are_skipped_and_reported(malformed_root: Path) -> None:
    load = load_amazon(malformed_root)
    assert sorted(p.product_id for p in load.products) == ["B000000001", "B000000007", "B000000008"]
    toys = _by_index(load.problems, "toys.json")
    assert sorted(toys) == [1, 2, 3, 4, 5, 6]
    assert "list_price is missing" in toys[1]
    assert "list_price is not a price: '$abc'" in toys[2]
    assert "not below the asking price" in toys[3]
    assert "list_price must be positive" in toys[4]
    assert "lowest_price must be positive" in toys[5]
    assert "expected an object, got str" in toys[6]
    assert _by_index(load.problems, "video-games.json") == {1: "duplicate product id B000000001"}
    assert len(load.problems) == 7
    for problem in load.problems:
        assert Path(problem.file).parent == malformed_root / "amazon_history_price"
        assert str(problem).startswith(f"{problem.file}[{problem.index}]: ")
    products = {p.product_id: p for p in load.products}
    assert products["B000000001"].features == "Soft.\nWashable."
    assert products["B000000007"].features == "Light.\nStrong."


def test_malformed_records_reach_the_scenario_set(malformed_root: Path) -> None:
    scenarios = load_scenarios("amazon", "all", data_root=malformed_root)
    assert len(scenarios.scenarios) == 3
    assert len(scenarios.problems) == 7


def test_malformed_craigslist_lines_are_skipped_and_reported(malformed_root: Path) -> None:
    load = load_craigslist(malformed_root, ["test"])
    assert [p.title for p in load.products] == ["Road bike", "Kids bike"]
    problems = _by_index(load.problems, "test.jsonl")
    assert sorted(problems) == [2, 4, 5, 7]  # 1-based line numbers
    assert problems[2].startswith("invalid JSON")
    assert "agent_info" in problems[4]
    assert "expected an object, got list" in problems[5]
    assert "items.Price must be positive" in problems[7]
    scenarios = load_scenarios("craigslist", "all", data_root=malformed_root)
    assert [s.product.title for s in scenarios.scenarios] == ["Road bike", "Kids bike", "Fixie"]
    assert len(scenarios.problems) == 4
    kids = scenarios.scenarios[1]
    assert (kids.asking_price, kids.budget, kids.cost) == (50.0, 30.0, 25.0)


def test_missing_folder_is_a_catalog_error(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="does not exist"):
        load_amazon(tmp_path / "nowhere")
    with pytest.raises(CatalogError, match="does not exist"):
        load_craigslist(tmp_path / "nowhere")
    (tmp_path / "craigslist_bargain").mkdir()
    with pytest.raises(CatalogError, match=r"test\.jsonl does not exist"):
        load_craigslist(tmp_path)
    with pytest.raises(CatalogError, match=r"no <category>\.json files"):
        load_amazon(tmp_path)


def test_catalogue_with_only_bad_records_is_a_catalog_error(tmp_path: Path) -> None:
    amazon = tmp_path / "amazon_history_price"
    amazon.mkdir()
    bad = [_amazon_record("B000000002", list_price="$abc"), 17]
    (amazon / "toys.json").write_text(json.dumps(bad), encoding="utf-8")
    with pytest.raises(CatalogError, match=r"no valid product in .*\(2 malformed records, e\.g\. .*toys\.json\[0\]"):
        load_amazon(tmp_path)
    craigslist = tmp_path / "craigslist_bargain"
    craigslist.mkdir()
    (craigslist / "test.jsonl").write_text("{oops\n[]\n", encoding="utf-8")
    with pytest.raises(CatalogError, match=r"no valid product in .*\(2 malformed records"):
        load_craigslist(tmp_path, ["test"])


def test_unreadable_amazon_file_is_a_catalog_error(tmp_path: Path) -> None:
    amazon = tmp_path / "amazon_history_price"
    amazon.mkdir()
    (amazon / "toys.json").write_text("[{", encoding="utf-8")
    with pytest.raises(CatalogError, match=r"toys\.json: cannot read JSON"):
        load_amazon(tmp_path)
    (amazon / "toys.json").write_text(json.dumps({"title": "not an array"}), encoding="utf-8")
    with pytest.raises(CatalogError, match="expected a JSON array"):
        load_amazon(tmp_path)


# --- where the data is -----------------------------------------------------------------------------------------------


def test_explicit_missing_data_root_raises(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match="does not exist"):
        resolve_data_root(tmp_path / "nope")
    with pytest.raises(DataNotFoundError):
        load_scenarios("amazon", "test", data_root=tmp_path / "nope")


def test_data_env_var_is_used(malformed_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DATA_ENV_VAR, str(malformed_root))
    assert resolve_data_root() == malformed_root
    assert len(load_scenarios("amazon", "all").scenarios) == 3  # the small catalogue, not the shared one
    # An explicit path still wins over the variable.
    assert resolve_data_root(malformed_root / "craigslist_bargain") == malformed_root / "craigslist_bargain"


def test_data_env_var_pointing_nowhere_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DATA_ENV_VAR, str(tmp_path / "typo"))
    with pytest.raises(DataNotFoundError, match=DATA_ENV_VAR):
        resolve_data_root()


def test_shared_data_is_found_without_configuration(shared_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DATA_ENV_VAR, raising=False)
    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    assert resolve_data_root().resolve() == shared_data.resolve()
