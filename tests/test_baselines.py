"""The baseline search (``counteroffer baselines``) and seller mixtures: scripted agents on the real train split."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_cli

from counteroffer.agents import make_agent
from counteroffer.agents.registry import SCRIPTED_BUYERS, family_grid, scripted_buyer_grid
from counteroffer.catalog import load_scenarios
from counteroffer.evaluate.baselines import BASELINES_FILE, BaselineSearch, run_baselines
from counteroffer.game import GameConfig, Role
from counteroffer.rollout.mixture import SellerChoice, SellerMixture
from counteroffer.rollout.runner import plan_jobs, run_episodes

SELLERS = ["scripted:linear", "scripted:titfortat", "scripted:conceder"]


def test_seller_choices_read_from_strings_labels_and_mappings() -> None:
    assert SellerChoice.model_validate("scripted:linear") == SellerChoice(spec="scripted:linear")
    labelled = SellerChoice.model_validate("scripted:linear (unyielding)")
    assert (labelled.spec, labelled.persona) == ("scripted:linear", "unyielding")
    assert SellerChoice.model_validate(labelled.label) == labelled  # a label reads back as itself
    endpoint = SellerChoice.model_validate("openai:m@http://127.0.0.1:8000/v1?temperature=0.7")
    assert endpoint.persona == "neutral" and endpoint.label == endpoint.spec
    assert SellerChoice.model_validate({"spec": "scripted:boulware", "persona": "begging"}).persona == "begging"


def test_a_mixture_draws_every_seller_deterministically_and_refuses_duplicates() -> None:
    mixture = SellerMixture([SellerChoice(spec=s) for s in SELLERS])
    draws = [mixture.draw(f"product-{i}", seed=0) for i in range(600)]
    assert draws == [mixture.draw(f"product-{i}", seed=0) for i in range(600)]  # the same on every run
    counts = {choice.spec: draws.count(choice) for choice in mixture.choices}
    assert all(150 < n < 250 for n in counts.values()), counts  # about uniform
    assert draws != [mixture.draw(f"product-{i}", seed=1) for i in range(600)]  # the seed matters
    assert mixture.agent(draws[0]).role is Role.SELLER
    with pytest.raises(ValueError, match="twice"):
        SellerMixture([SellerChoice(spec="scripted:linear")] * 2)
    with pytest.raises(ValueError, match="at least one"):
        SellerMixture([])


def test_a_weighted_mixture_draws_in_proportion_and_keeps_the_uniform_draw_of_equal_weights() -> None:
    uniform = SellerMixture([SellerChoice(spec=s) for s in SELLERS])
    doubled = SellerMixture([SellerChoice(spec=s, weight=2.0) for s in SELLERS])
    keys = [f"product-{i}" for i in range(3000)]
    assert [doubled.draw(k, seed=0).spec for k in keys] == [uniform.draw(k, seed=0).spec for k in keys]
    leaning = SellerMixture(
        [SellerChoice(spec=SELLERS[0]), SellerChoice(spec=SELLERS[1], weight=2.0), SellerChoice(spec=SELLERS[2])]
    )
    draws = [leaning.draw(k, seed=0) for k in keys]
    assert draws == [leaning.draw(k, seed=0) for k in keys]
    shares = {choice.spec: draws.count(choice) / len(keys) for choice in leaning.choices}
    assert shares[SELLERS[1]] == pytest.approx(0.5, abs=0.04), shares
    assert shares[SELLERS[0]] == pytest.approx(0.25, abs=0.04) and shares[SELLERS[2]] == pytest.approx(0.25, abs=0.04)
    assert leaning.agent(SellerChoice(spec=SELLERS[1])) is leaning.agent(leaning.choices[1])  # found by spec, persona
    assert SellerChoice.model_validate({"spec": SELLERS[1], "weight": 2}) == leaning.choices[1]
    with pytest.raises(ValueError, match="weight instead"):
        SellerMixture([SellerChoice(spec="scripted:linear"), SellerChoice(spec="scripted:linear", weight=3.0)])
    with pytest.raises(ValueError, match="greater than 0"):
        SellerChoice(spec="scripted:linear", weight=0)
    with pytest.raises(ValueError, match="drop the weights"):
        BaselineSearch(sellers=[SellerChoice(spec=SELLERS[0], weight=2.0), SELLERS[1]])


def test_a_seller_dump_leaves_out_the_default_weight_so_older_dumps_still_match() -> None:
    """A baseline search saved before weights existed is reused by the experiment only if the dumps compare equal."""
    older = {"spec": SELLERS[0], "persona": "neutral"}
    assert SellerChoice(spec=SELLERS[0]).model_dump() == older
    assert BaselineSearch(sellers=SELLERS).model_dump(mode="json")["sellers"][0] == older
    weighted = SellerChoice(spec=SELLERS[0], weight=2.0)
    assert weighted.model_dump(mode="json") == {**older, "weight": 2.0}
    assert SellerChoice.model_validate(weighted.model_dump()) == weighted
    assert SellerChoice.model_validate_json(weighted.model_dump_json()) == weighted


@pytest.fixture(scope="module")
def search_result(shared_data: Path, tmp_path_factory):
    search = BaselineSearch(
        sellers=SELLERS,
        buyers=[*scripted_buyer_grid()[::9], "scripted:patient?opening=0.1"],
        limit=60,
        data_root=str(shared_data),
    )
    out = tmp_path_factory.mktemp("baselines")
    return search, run_baselines(search, out), out


def test_the_search_ranks_every_buyer_by_its_mean_over_the_whole_mixture(search_result, shared_data: Path) -> None:
    search, result, out = search_result
    assert [row.buyer for row in result.rows] != search.buyers  # ranked, not listed
    assert [row.reward for row in result.rows] == sorted((row.reward for row in result.rows), reverse=True)
    assert len(result.rows) == len(search.buyers) and result.best is result.rows[0]
    # Each row's numbers are what the same buyer earns when played independently against each seller.
    scenarios = load_scenarios("amazon", "train", data_root=shared_data, limit=60).scenarios
    row = result.rows[3]
    for seller in SELLERS:
        records = []
        pair = (make_agent(row.buyer, Role.BUYER), make_agent(seller, Role.SELLER))
        run_episodes(
            plan_jobs(scenarios, [row.buyer], seller, "neutral", 1),
            lambda _, pair=pair: pair,
            records.append,
            config=GameConfig(max_turns=4),
        )
        assert row.by_seller[seller] == pytest.approx(sum(r.reward for r in records) / len(records))
    assert row.reward == pytest.approx(sum(row.by_seller.values()) / len(SELLERS))
    leader = result.rows[0].interval
    assert leader is not None and leader.n == 60 * len(SELLERS) and leader.clusters == 60  # products resampled
    assert set(result.family_best()) == {"anchor", "arguer", "patient", "reader"}
    assert all(row.interval is not None for row in result.family_best().values())
    saved = json.loads((out / BASELINES_FILE).read_text())
    assert saved["best"] == result.best.buyer and len(saved["rows"]) == len(result.rows)
    assert saved["family_best"] == {name: row.buyer for name, row in result.family_best().items()}
    assert saved["search"]["split"] == "train"


def test_the_search_only_ranks_scripted_buyers(shared_data: Path) -> None:
    for buyer in ("scripted:oracle", "hf:smollm2-135m"):
        with pytest.raises(ValueError, match="ranks scripted buyers"):
            run_baselines(BaselineSearch(sellers=SELLERS, buyers=[buyer], limit=2, data_root=str(shared_data)))


def test_baselines_command_prints_the_table_and_the_winner(shared_data: Path, tmp_path: Path) -> None:
    result = run_cli(
        "baselines", "--seller", "scripted:linear", "--seller", "scripted:linear (unyielding)", "--limit", "20",
        "--data", shared_data, "--out", tmp_path, "--top", "3",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    saved = json.loads((tmp_path / BASELINES_FILE).read_text())
    assert f"best scripted buyer: {saved['best']}" in result.stdout.replace("\n", " ")
    assert "scripted:linear (unyielding)" in result.stdout
    assert len(saved["rows"]) == len(scripted_buyer_grid())
    assert {row["buyer"].partition("?")[0] for row in saved["rows"]} == {
        "scripted:anchor", "scripted:arguer", "scripted:patient", "scripted:reader"
    }  # fmt: skip
    bad = run_cli("baselines", "--buyer", "scripted:oracle", "--limit", "2", "--data", shared_data)
    assert bad.returncode == 2 and "ranks scripted buyers" in bad.stderr


def test_every_family_with_a_grid_is_searched_and_a_family_added_later_joins_the_search(monkeypatch) -> None:
    families = {name for name, family in SCRIPTED_BUYERS.items() if family.grid}
    assert families == {"anchor", "arguer", "patient", "reader"}
    grid = scripted_buyer_grid()
    assert len(grid) == sum(len(family_grid(name)) for name in families) == len(set(grid))
    assert "scripted:reader?opening=0.01&split=0.5&digits=2" in grid  # the recorded run's SFT teacher
    for spec in grid:
        make_agent(spec, Role.BUYER)  # every grid point is a valid spec
    later = SCRIPTED_BUYERS["patient"].__class__(SCRIPTED_BUYERS["patient"].make, {"opening": (0.07,)})
    monkeypatch.setitem(SCRIPTED_BUYERS, "stubborn", later)
    assert scripted_buyer_grid()[-1] == "scripted:stubborn?opening=0.07"
    assert BaselineSearch(sellers=SELLERS).buyers[-1] == "scripted:stubborn?opening=0.07"


def test_against_sellers_that_read_the_best_talk_blind_buyer_is_reported_beside_the_winner(shared_data: Path) -> None:
    buyers = ["scripted:arguer?policy=hint", "scripted:reader", "scripted:anchor"]
    search = BaselineSearch(sellers=["scripted:reading-linear"], buyers=buyers, limit=12, data_root=str(shared_data))
    result = run_baselines(search)
    assert result.best.buyer == "scripted:arguer?policy=hint"  # arguing the hinted lever pays
    assert result.best_talk_blind is not None and result.best_talk_blind.buyer in buyers[1:]
    assert result.best_talk_blind.reward < result.best.reward
    assert result.to_json()["best_talk_blind"] == result.best_talk_blind.buyer
    plain = run_baselines(
        BaselineSearch(sellers=["scripted:linear"], buyers=buyers[1:], limit=12, data_root=str(shared_data))
    )
    assert plain.best_talk_blind is plain.best  # without an arguing family the two bars are one
