"""The paper's tables: numbers checked against hand-computed values on a small fixed set of episodes, and
``counteroffer evaluate`` run end to end on a small suite (resumable, cells shared between tables)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from conftest import make_scenario, run_cli

from counteroffer.analysis.tables import build_table, category_results, suite_tables, table_markdown
from counteroffer.catalog import load_scenarios
from counteroffer.evaluate.suite import SuiteConfig, cell_records, load_suite, run_suite, table_cells
from counteroffer.game.records import EpisodeMetrics, EpisodeRecord, EpisodeStatus, Outcome, episode_key
from counteroffer.rollout.store import EpisodeStore

MI = {"budget": 160.0, "cost": 100.0}  # B > C
CI = {"budget": 90.0, "cost": 100.0}  # B < C


def episode(buyer: str, values: dict, index: int, *, reward: float, price: float | None, first_offer: float,
            overshoot: bool = False, status: EpisodeStatus = EpisodeStatus.OK, category: str = "Kitchen",
            persona: str = "neutral", seller: str = "seller",
            scenario_id: str | None = None) -> EpisodeRecord:  # fmt: skip
    """A record whose metrics are set by hand (the game is tested elsewhere; here only aggregation is)."""
    scenario = make_scenario(budget=values["budget"], cost=values["cost"])
    scenario = type(scenario)(
        scenario_id=scenario_id or f"s-{index}",
        recipe="paper",
        product=type(scenario.product)(**{**_fields(scenario.product), "category": category}),
        asking_price=scenario.asking_price,
        budget=scenario.budget,
        cost=scenario.cost,
    )
    deal = price is not None
    spread = scenario.budget - scenario.cost
    metrics = EpisodeMetrics(
        reward=reward,
        deal=deal,
        bargained_ratio=(scenario.budget - price) / spread if deal else None,
        overshoot=overshoot,
        first_offer_ratio=first_offer / scenario.budget,
        turns=3,
        format_error=False,
        protocol_error=False,
        regulator_interventions=0,
        mutual_interest=scenario.mutual_interest,
    )
    return EpisodeRecord(
        key=episode_key(buyer, seller, persona, scenario.scenario_id, 0),
        status=status,
        buyer=buyer,
        seller=seller,
        persona=persona,
        rollout_index=0,
        seed=index,
        max_turns=6,
        scenario=scenario,
        messages=[],
        outcome=Outcome.DEAL if deal else Outcome.TURN_LIMIT,
        price=price,
        reward=reward,
        metrics=None if status is EpisodeStatus.ERRORED else metrics,
    )


def _fields(product: object) -> dict:
    return {name: getattr(product, name) for name in product.__struct_fields__}


def fixed_episodes() -> list[EpisodeRecord]:
    """Buyer A: two MI deals (at 130 and 150), one MI walk-away, one CI overshoot deal at 120, one errored episode.
    Oracle: two MI deals at 101 and 102, one CI walk-away."""
    return [
        episode("A", MI, 1, reward=0.5, price=130.0, first_offer=80.0),  # (160-130)/60 = 0.5
        episode("A", MI, 2, reward=1 / 6, price=150.0, first_offer=120.0),  # (160-150)/60
        episode("A", MI, 3, reward=0.0, price=None, first_offer=40.0),
        episode("A", CI, 4, reward=-1.0, price=120.0, first_offer=99.0, overshoot=True),
        episode("A", MI, 5, reward=0.0, price=None, first_offer=1.0, status=EpisodeStatus.ERRORED),
        episode("oracle", MI, 1, reward=59 / 60, price=101.0, first_offer=16.0),
        episode("oracle", MI, 2, reward=58 / 60, price=102.0, first_offer=16.0),
        episode("oracle", CI, 4, reward=0.0, price=None, first_offer=18.0),
    ]


def test_table_numbers_match_hand_computed_values() -> None:
    table = build_table("t1", "Table 1", [("", fixed_episodes())], oracle="oracle")
    buyer, oracle = table.rows
    assert buyer.summary.buyer == "A" and oracle.summary.buyer == "oracle" and oracle.is_oracle
    assert buyer.summary.episodes == 4 and buyer.summary.errored == 1  # the errored episode is in no metric
    mi, ci = buyer.summary.mutual_interest, buyer.summary.conflicting_interest
    assert buyer.summary.overall.reward.mean == pytest.approx((0.5 + 1 / 6 + 0 - 1) / 4)
    assert mi.reward.mean == pytest.approx((0.5 + 1 / 6 + 0) / 3)
    assert mi.deal_rate.mean == pytest.approx(2 / 3)
    assert mi.bargained_ratio.mean == pytest.approx((0.5 + 1 / 6) / 2)  # over the two MI deals only
    assert mi.bargained_ratio.n == 2
    assert mi.overshoot_rate.mean == 0.0
    assert mi.first_offer_ratio.mean == pytest.approx((80 + 120 + 40) / 160 / 3)
    assert ci.reward.mean == -1.0 and ci.deal_rate.mean == 1.0 and ci.overshoot_rate.mean == 1.0
    assert ci.first_offer_ratio.mean == pytest.approx(99 / 90)
    oracle_reward = (59 / 60 + 58 / 60 + 0) / 3
    assert buyer.oracle_reward == pytest.approx(oracle_reward)
    assert buyer.oracle_share == pytest.approx(((0.5 + 1 / 6 - 1) / 4) / oracle_reward)
    assert oracle.oracle_share == pytest.approx(1.0)
    low, high = mi.reward.ci_low, mi.reward.ci_high
    assert low <= mi.reward.mean <= high and low < high


@pytest.mark.parametrize("suite", sorted((Path(__file__).resolve().parents[1] / "configs").glob("suite-*.yaml")))
def test_shipped_suites_validate(suite: Path) -> None:
    config = load_suite(suite)
    assert config.buyers and config.tables and all(table.name for table in config.tables)


def test_table_markdown_shows_the_numbers() -> None:
    table = build_table("t1", "Table 1: neutral seller", [("", fixed_episodes())], oracle="oracle")
    text = table_markdown(table)
    lines = text.splitlines()
    assert lines[0] == "### Table 1: neutral seller"
    row_a = next(line for line in lines if line.startswith("| `A`"))
    cells = [c.strip() for c in row_a.strip("|").split("|")]
    assert cells[1] == "4"  # episodes
    assert cells[2].startswith("-0.083")  # overall reward (0.5 + 1/6 - 1) / 4
    assert cells[4].startswith("66.7%")  # MI deal rate
    assert cells[5].startswith("0.333")  # MI bargained ratio
    assert cells[8].startswith("-1.000")  # CI reward
    assert cells[-2] == "0.650" and cells[-1] == "-12.8%"  # oracle reward, share


def test_conditions_become_rows_and_each_has_its_own_oracle() -> None:
    begging = [episode("A", MI, 1, reward=0.5, price=130.0, first_offer=80.0, persona="begging"),
               episode("oracle", MI, 1, reward=1.0, price=100.0, first_offer=20.0, persona="begging")]  # fmt: skip
    rude = [episode("A", MI, 1, reward=0.25, price=145.0, first_offer=80.0, persona="insulting"),
            episode("oracle", MI, 1, reward=0.5, price=130.0, first_offer=20.0, persona="insulting")]  # fmt: skip
    table = build_table("t3", "Table 3", [("begging", begging), ("insulting", rude)], condition_label="persona",
                        oracle="oracle")  # fmt: skip
    shares = {(r.condition, r.summary.buyer): r.oracle_share for r in table.rows}
    assert shares == {("begging", "A"): 0.5, ("begging", "oracle"): 1.0, ("insulting", "A"): 0.5,
                      ("insulting", "oracle"): 1.0}  # fmt: skip
    assert "| Persona |" in table_markdown(table)


def test_category_results() -> None:
    records = [episode("A", MI, 1, reward=0.5, price=130.0, first_offer=80.0, category="Toys"),
               episode("A", MI, 2, reward=0.0, price=None, first_offer=80.0, category="Toys"),
               episode("A", MI, 3, reward=1.0, price=100.0, first_offer=80.0, category="Audio"),
               episode("A", MI, 4, reward=1.0, price=100.0, first_offer=80.0, category="Audio",
                       status=EpisodeStatus.ERRORED)]  # fmt: skip
    results = {(r.category, r.buyer): (r.episodes, r.reward.mean, r.deal_rate.mean) for r in category_results(records)}
    assert results == {("Audio", "A"): (1, 1.0, 1.0), ("Toys", "A"): (2, 0.25, 0.5)}


SUITE = {
    "buyers": ["scripted:naive", "scripted:anchor"],
    "rollouts": 2,
    "limit": 6,
    "max_turns": 4,
    "tables": [
        {"name": "table1", "title": "Table 1", "seller": "scripted:linear"},
        {"name": "table3", "title": "Table 3", "seller": "scripted:linear", "personas": ["neutral", "unyielding"]},
        {"name": "cross", "title": "Catalogues", "seller": "scripted:linear", "catalogs": ["amazon", "craigslist"]},
    ],
}


def test_evaluate_runs_a_suite_and_resumes(shared_data: Path, tmp_path: Path) -> None:
    suite = tmp_path / "suite.yaml"
    suite.write_text(yaml.safe_dump({**SUITE, "out": str(tmp_path / "out"), "data_root": str(shared_data)}))
    result = run_cli("evaluate", suite)
    assert result.returncode == 0, result.stderr
    assert "Table 1" in result.stdout and "Catalogues" in result.stdout
    config = load_suite(suite)
    # Three tables, but only three distinct cells: amazon/neutral is shared by all of them.
    cells = sorted(p.relative_to(config.out) for p in config.out.glob("cells/**/episodes.jsonl"))
    assert [str(p.parent) for p in cells] == [
        "cells/amazon-test/scripted-linear/neutral",
        "cells/amazon-test/scripted-linear/unyielding",
        "cells/craigslist-test/scripted-linear/neutral",
    ]
    for path in cells:  # 3 buyers (with the oracle) × 6 scenarios × 2 rollouts, each episode once
        keys = [json.loads(line)["key"] for line in (config.out / path).read_text().splitlines()]
        assert len(keys) == len(set(keys)) == 36
    tables = json.loads((config.out / "tables.json").read_text())
    assert [t["name"] for t in tables] == ["table1", "table3", "cross"]
    assert [(r["condition"], r["summary"]["buyer"]) for r in tables[2]["rows"]] == [
        (catalog, buyer) for catalog in ("amazon", "craigslist") for buyer in (*SUITE["buyers"], "scripted:oracle")
    ]
    # Every table's number is the mean of its cell's episode rewards.
    _, cell = table_cells(config, config.tables[1])[1]
    naive = [r.reward for r in cell_records(config, cell) if r.buyer == "scripted:naive"]
    row = tables[1]["rows"][3]
    assert (row["condition"], row["summary"]["buyer"]) == ("unyielding", "scripted:naive")
    assert row["summary"]["overall"]["reward"]["mean"] == pytest.approx(sum(naive) / len(naive))
    assert row["summary"]["overall"]["reward"]["clusters"] == 6  # 6 products × 2 rollouts: products resampled
    assert "### Table 3" in (config.out / "tables.md").read_text()

    again = run_suite(config)
    assert sum(r.played for r in again.values()) == 0 and sum(r.skipped for r in again.values()) == 3 * 36

    # A smaller limit re-uses the cells and counts only its own episodes, though the folders hold more.
    smaller = config.model_copy(update={"limit": 2})
    assert sum(r.played for r in run_suite(smaller).values()) == 0
    assert {row.summary.episodes for table in suite_tables(smaller) for row in table.rows} == {2 * 2}


def test_intervals_do_not_depend_on_the_order_episodes_were_read_in() -> None:
    records = fixed_episodes()
    forward = build_table("t", "T", [("", records)], oracle="oracle")
    backward = build_table("t", "T", [("", list(reversed(records)))], oracle="oracle")
    assert {r.summary.buyer: r.summary for r in forward.rows} == {r.summary.buyer: r.summary for r in backward.rows}


def test_suite_errors_name_the_file_and_field(tmp_path: Path) -> None:
    suite = tmp_path / "bad.yaml"
    suite.write_text(yaml.safe_dump({**SUITE, "out": "x", "rollouts": 0}))
    result = run_cli("evaluate", suite)
    assert result.returncode == 2
    assert "bad.yaml: rollouts: Input should be greater than or equal to 1" in result.stderr
    with pytest.raises(ValueError, match="table names must be unique; repeated: table1"):
        SuiteConfig.model_validate({**SUITE, "out": "x", "tables": SUITE["tables"][:1] * 2})


def test_the_oracle_plays_only_against_scripted_sellers() -> None:
    """It finds its best reply by simulating its seller; a model seller (the paper's LLM-seller tables) has none."""
    config = SuiteConfig.model_validate({**SUITE, "out": "x"})
    assert config.cell_buyers("scripted:linear") == [*SUITE["buyers"], "scripted:oracle"]
    assert config.cell_buyers("hf:runs/cpu-seller/sft/final") == SUITE["buyers"]


def test_every_suite_table_from_fixed_episodes(shared_data: Path, tmp_path: Path) -> None:
    """Tables 1-3 and the cross-catalogue table of a suite, read from cells holding hand-made episodes (under the
    keys the suite plans for the first two scenarios of each split)."""
    config = SuiteConfig.model_validate(
        {
            "out": str(tmp_path),
            "data_root": str(shared_data),
            "limit": 2,
            "buyers": ["A"],
            "oracle": "oracle",
            "rollouts": 1,
            "tables": [
                {"name": "t1", "title": "Table 1", "seller": "scripted:linear"},
                {"name": "t2", "title": "Table 2", "seller": "scripted:boulware"},
                {"name": "t3", "title": "Table 3", "seller": "scripted:linear", "personas": ["begging", "insulting"]},
                {"name": "x", "title": "Catalogues", "seller": "scripted:linear", "catalogs": ["amazon", "craigslist"]},
            ],
        }
    )
    # (catalogue, seller, persona) -> A's two rewards, the oracle's two rewards
    rewards = {
        ("amazon", "scripted:linear", "neutral"): ((0.5, 0.1), (1.0, 0.8)),
        ("amazon", "scripted:boulware", "neutral"): ((0.2, -1.0), (0.6, 0.6)),
        ("amazon", "scripted:linear", "begging"): ((0.4, 0.4), (0.8, 0.8)),
        ("amazon", "scripted:linear", "insulting"): ((0.0, 0.3), (0.5, 0.5)),
        ("craigslist", "scripted:linear", "neutral"): ((0.9, 0.9), (0.05, 0.05)),  # a bound too small to share
    }
    for (catalog, seller, persona), (mine, oracle) in rewards.items():
        ids = [s.scenario_id for s in load_scenarios(catalog, "test", data_root=shared_data, limit=2).scenarios]
        folder = tmp_path / "cells" / f"{catalog}-test" / seller.replace(":", "-") / persona
        folder.mkdir(parents=True)
        with EpisodeStore(folder / "episodes.jsonl") as store:
            for buyer, values in (("A", mine), ("oracle", oracle)):
                for index, reward in enumerate(values):
                    price = None if reward == 0 else 160 - 60 * reward
                    store.append(episode(buyer, MI, index, reward=reward, price=price, first_offer=80.0,
                                         persona=persona, seller=seller, scenario_id=ids[index]))  # fmt: skip
            # An episode the suite does not plan (a third scenario, as a larger limit would leave) is left out.
            store.append(episode("A", MI, 9, reward=-1.0, price=None, first_offer=1.0, persona=persona, seller=seller))
    tables = {t.name: t for t in suite_tables(config)}

    def cells(name: str) -> list[tuple[str, str, float, float, float | None]]:
        return [
            (r.condition, r.summary.buyer, round(r.summary.overall.reward.mean, 6), round(r.oracle_reward, 6),
             None if r.oracle_share is None else round(r.oracle_share, 6))
            for r in tables[name].rows
        ]  # fmt: skip

    assert cells("t1") == [("", "A", 0.3, 0.9, 0.333333), ("", "oracle", 0.9, 0.9, 1.0)]
    assert cells("t2") == [("", "A", -0.4, 0.6, -0.666667), ("", "oracle", 0.6, 0.6, 1.0)]
    assert cells("t3") == [("begging", "A", 0.4, 0.8, 0.5), ("begging", "oracle", 0.8, 0.8, 1.0),
                           ("insulting", "A", 0.15, 0.5, 0.3), ("insulting", "oracle", 0.5, 0.5, 1.0)]  # fmt: skip
    assert cells("x") == [("amazon", "A", 0.3, 0.9, 0.333333), ("amazon", "oracle", 0.9, 0.9, 1.0),
                          ("craigslist", "A", 0.9, 0.05, None), ("craigslist", "oracle", 0.05, 0.05, None)]  # fmt: skip
    assert tables["t2"].rows[0].summary.mutual_interest.deal_rate.mean == 1.0
    assert tables["t3"].rows[2].summary.mutual_interest.deal_rate.mean == 0.5  # insulting: one walk-away (reward 0)


def test_cell_folders_never_collide() -> None:
    from counteroffer.evaluate.suite import Cell

    def folder(seller: str) -> str:
        return str(Cell("amazon", "test", seller, "neutral", None).folder)

    assert folder("scripted:linear") == "cells/amazon-test/scripted-linear/neutral"
    assert folder("hf:runs/a/b") != folder("hf:runs/a-b") and folder("hf:runs/a/b").startswith(
        "cells/amazon-test/hf-runs-a-b-"
    )


def test_a_mixture_table_pools_its_sellers_cells(shared_data: Path, tmp_path: Path) -> None:
    sellers = ["scripted:linear", "scripted:titfortat"]
    config = SuiteConfig.model_validate(
        {
            "out": str(tmp_path / "suite"),
            "buyers": ["scripted:anchor", "scripted:reader"],
            "limit": 12,
            "rollouts": 1,
            "max_turns": 4,
            "data_root": str(shared_data),
            "tables": [
                {"name": "mixture", "title": "Mixture", "sellers": sellers},
                *({"name": s.split(":")[1], "title": s, "seller": s} for s in sellers),
            ],
        }
    )
    run_suite(config)
    mixture, *singles = suite_tables(config)
    assert [c.seller for _, c in table_cells(config, config.tables[0])] == sellers  # the mixture's cells are theirs
    for row in mixture.rows:
        assert row.summary.seller == "mixture of scripted:linear, scripted:titfortat"
        per_seller = [next(r for r in table.rows if r.summary.buyer == row.summary.buyer) for table in singles]
        assert row.summary.episodes == sum(r.summary.episodes for r in per_seller) == 24
        expected = sum(r.summary.overall.reward.mean * r.summary.episodes for r in per_seller) / 24
        assert row.summary.overall.reward.mean == pytest.approx(expected)
    assert mixture.rows[-1].is_oracle and mixture.rows[0].oracle_reward == mixture.rows[-1].summary.overall.reward.mean
    with pytest.raises(ValueError, match="either seller"):
        SuiteConfig.model_validate({**config.model_dump(), "tables": [{"name": "x", "title": "x"}]})


def test_evaluate_against_a_reference_pairs_the_same_episodes(shared_data: Path, tmp_path: Path) -> None:
    """`evaluate --against`: each buyer's reward minus the reference's, episode by episode over the same products
    and sellers; the mean of the differences is the difference of the table's means."""
    out = tmp_path / "out"
    suite = tmp_path / "suite.yaml"
    buyers = ["scripted:anchor", "scripted:anchor?opening=0.3", "scripted:naive"]
    suite.write_text(yaml.safe_dump({
        "buyers": buyers, "rollouts": 1, "limit": 12, "max_turns": 4, "out": str(out), "data_root": str(shared_data),
        "tables": [{"name": "mix", "title": "Mix", "sellers": ["scripted:linear", "scripted:titfortat"]}],
    }))  # fmt: skip
    refused = run_cli("evaluate", suite, "--against", "scripted:nobody")
    assert refused.returncode == 2 and "not a buyer of this suite" in refused.stderr
    assert not (out / "cells").exists()  # refused before any episode was played

    result = run_cli("evaluate", suite, "--against", "scripted:anchor")
    assert result.returncode == 0, result.stderr
    assert "Paired differences from scripted:anchor" in result.stdout
    [table] = json.loads((out / "tables.json").read_text())
    means = {row["summary"]["buyer"]: row["summary"]["overall"]["reward"]["mean"] for row in table["rows"]}
    paired = {row["buyer"]: row for row in json.loads((out / "paired.json").read_text())}
    assert set(paired) == set(buyers[1:])
    for buyer, row in paired.items():
        difference = row["difference"]
        assert row["table"] == "mix" and row["reference"] == "scripted:anchor" and difference["n"] == 24
        assert difference["clusters"] == 12  # two sellers' pairs of a product move together: products resampled
        assert difference["mean"] == pytest.approx(means[buyer] - means["scripted:anchor"])
        assert difference["ci_low"] <= difference["mean"] <= difference["ci_high"]
        assert row["better"] + row["worse"] <= 24
    assert paired["scripted:naive"]["worse"] > paired["scripted:naive"]["better"]  # it pays the asking price
