"""The Talk-swap test (:mod:`counteroffer.evaluate.talk_swap`): a seller that reads checked arguments answers the
right one, the wrong one and a false claim differently, offers held fixed; a seller that prices on offers alone
answers all four alike; an LLM seller is measured the same way, its fallback turns counted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_cli

from counteroffer.evaluate.talk_swap import RESULT_FILE, Swap, TalkSwapConfig, run_talk_swap, talks


def by_swap(result: dict) -> dict[str, dict]:
    return {row["swap"]: row for row in result["swaps"]}


@pytest.mark.parametrize("seller", ["scripted:reading-linear", "scripted:reading-titfortat?persona=neutral"])
def test_a_reading_seller_answers_the_argument_it_hinted_at(shared_data: Path, tmp_path: Path, seller: str) -> None:
    seller = seller.partition("?")[0]
    result = run_cli("talk-swap", "--seller", seller, "--limit", "12", "--data", shared_data, "--out", tmp_path)
    assert result.returncode == 0, result.stderr
    assert "minus none (paired)" in result.stdout
    saved = json.loads((tmp_path / RESULT_FILE).read_text())
    assert saved["games"] == 12 and saved["hinted"] == 12 and saved["fallback_rate"] == 0.0
    swaps = by_swap(saved)
    assert all(swaps[swap]["n"] == 12 for swap in Swap)
    assert swaps["right"]["versus_none"]["ci_low"] > 0  # the lever moves it
    assert swaps["wrong"]["versus_none"]["ci_high"] < 0  # a wasted argument halves the concession
    assert swaps["false"]["concession"]["mean"] == 0  # a false claim hardens it: no concession at all


def test_a_seller_that_prices_on_offers_alone_answers_every_talk_alike(shared_data: Path) -> None:
    result = run_talk_swap(TalkSwapConfig(seller="scripted:titfortat", limit=8, data_root=str(shared_data)))
    assert result.games == 8 and result.hinted == 0
    swaps = {row.swap: row for row in result.swaps}
    assert swaps[Swap.RIGHT].n == swaps[Swap.WRONG].n == 0  # no hint: no right or wrong argument to make
    assert swaps[Swap.FALSE].n == 8 and swaps[Swap.FALSE].versus_none.mean == 0.0
    assert swaps[Swap.NONE].concession.mean == swaps[Swap.FALSE].concession.mean > 0


@pytest.mark.timeout(600)
def test_an_llm_seller_is_measured_with_its_fallback_counted(shared_data: Path) -> None:
    """The real bundled model as the seller (untrained: most of its messages do not parse, so the scripted
    fallback writes them and the result says how many)."""
    pytest.importorskip("transformers")
    spec = "hf:smollm2-135m?max_new_tokens=24&reasks=0"
    result = run_talk_swap(TalkSwapConfig(seller=spec, limit=3, data_root=str(shared_data)))
    assert result.games == 3 and result.fallback_rate is not None and 0.0 <= result.fallback_rate <= 1.0
    assert {row.swap for row in result.swaps if row.n} >= {Swap.NONE, Swap.FALSE}


@pytest.mark.parametrize("current", [1.20, 0.90, 274.56])
def test_the_false_claim_is_false_or_not_made(current: float) -> None:
    """Cheap products: a cut of 30% of $1.20 would fall within the checker's $0.50 tolerance (a true claim), so the
    cut is at least $1; where that leaves no positive price, no false claim is made."""
    import msgspec
    from conftest import make_scenario

    from counteroffer.game import Negotiation
    from counteroffer.game.arguments import find_arguments
    from counteroffer.game.messages import Role

    scenario = make_scenario()
    product = msgspec.structs.replace(scenario.product, current_price=current)
    game = Negotiation(msgspec.structs.replace(scenario, product=product))
    claim = talks(Swap.FALSE, None, game.view(Role.BUYER).listing)
    if current <= 1.0:
        assert claim is None
    else:
        found = find_arguments(claim, game.view(Role.BUYER).listing, 1)
        assert found and all(argument.true is False for argument in found)
