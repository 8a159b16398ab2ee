"""Intervals that resample products, not episodes, and exact intervals for rates (evaluate/stats.py), through
the summaries, paired differences and the bench command that report them."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from conftest import run_cli

from counteroffer.evaluate.stats import bootstrap_mean, clopper_pearson, rate_estimate


def _half_width(estimate) -> float:  # noqa: ANN001
    return (estimate.ci_high - estimate.ci_low) / 2


def test_identical_rollouts_of_a_product_add_no_information() -> None:
    rng = random.Random(0)
    products = [f"p{i}" for i in range(60)]
    values = {product: rng.uniform(-1, 1) for product in products}
    one = bootstrap_mean([values[p] for p in products], clusters=products)
    for rollouts in (2, 4):
        keys = [p for p in products for _ in range(rollouts)]
        repeated = bootstrap_mean([values[p] for p in keys], clusters=keys)
        assert repeated.n == rollouts * 60 and repeated.clusters == 60
        assert repeated.mean == pytest.approx(one.mean)
        assert (repeated.ci_low, repeated.ci_high) == pytest.approx((one.ci_low, one.ci_high), abs=1e-12)
        # Resampling episodes instead would claim about sqrt(R) times the precision.
        naive = bootstrap_mean([values[p] for p in keys])
        assert _half_width(naive) < 0.8 * _half_width(one)


def test_a_cluster_interval_is_a_function_of_the_pairs_as_a_set() -> None:
    rng = random.Random(1)
    pairs = [(f"p{rng.randrange(30)}", rng.gauss(0, 1)) for _ in range(200)]
    first = bootstrap_mean([v for _, v in pairs], clusters=[k for k, _ in pairs])
    rng.shuffle(pairs)
    second = bootstrap_mean([v for _, v in pairs], clusters=[k for k, _ in pairs])
    assert first == second
    assert first.mean == pytest.approx(sum(v for _, v in pairs) / len(pairs))  # the plain episode mean
    with pytest.raises(ValueError, match="cluster keys"):
        bootstrap_mean([1.0, 2.0], clusters=["a"])


def test_unequal_clusters_weigh_by_their_episodes_and_a_single_cluster_has_no_spread() -> None:
    estimate = bootstrap_mean([1.0, 1.0, 1.0, 0.0], clusters=["a", "a", "a", "b"])
    assert estimate.mean == 0.75 and estimate.clusters == 2
    single = bootstrap_mean([0.2, 0.4], clusters=["a", "a"])
    assert (single.mean, single.ci_low, single.ci_high) == pytest.approx((0.3, 0.3, 0.3))
    empty = bootstrap_mean([])
    assert empty.mean is None and empty.n == 0


@pytest.mark.parametrize(
    ("events", "n", "low", "high"),
    [
        (0, 24, 0.0, 1 - 0.025 ** (1 / 24)),  # closed forms at the edges
        (24, 24, 0.025 ** (1 / 24), 1.0),
        (5, 20, 0.0866, 0.4910),  # the textbook table value
        (1, 100, 0.000253, 0.0545),
    ],
)
def test_clopper_pearson_matches_known_values(events: int, n: int, low: float, high: float) -> None:
    found = clopper_pearson(events, n)
    assert found == pytest.approx((low, high), abs=5e-5)


def test_clopper_pearson_is_symmetric_and_refuses_impossible_counts() -> None:
    low, high = clopper_pearson(3, 17)
    assert clopper_pearson(14, 17) == pytest.approx((1 - high, 1 - low))
    for events, n in ((3, 2), (-1, 5), (0, 0)):
        with pytest.raises(ValueError):
            clopper_pearson(events, n)


def test_a_rate_carries_its_count_and_exact_interval() -> None:
    rate = rate_estimate([False] * 24, clusters=[f"p{i // 2}" for i in range(24)])
    assert (rate.mean, rate.ci_low, rate.ci_high, rate.events) == (0.0, 0.0, 0.0, 0)  # the bootstrap sees nothing
    assert rate.exact_high == pytest.approx(0.1425, abs=1e-4)  # the exact interval does
    assert rate.format_events() == "0/24 [0–14%]"


@pytest.fixture(scope="module")
def bench_summaries(shared_data: Path, tmp_path_factory) -> dict[int, dict]:
    """`counteroffer bench` of a deterministic scripted pair with 1 and with 4 rollouts on the test split."""
    summaries = {}
    for rollouts in (1, 4):
        out = tmp_path_factory.mktemp(f"rollouts{rollouts}")
        result = run_cli(
            "bench", "--buyer", "scripted:anchor", "--seller", "scripted:linear", "--split", "test",
            "--rollouts", rollouts, "--data", shared_data, "--out", out,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert "128 products" in result.stdout
        summaries[rollouts] = json.loads((out / "summary.json").read_text())
    return summaries


def test_the_bench_interval_does_not_shrink_with_repeated_rollouts(bench_summaries: dict[int, dict]) -> None:
    one, four = (bench_summaries[r]["rows"][0]["overall"]["reward"] for r in (1, 4))
    assert four["n"] == 4 * one["n"] and four["clusters"] == one["clusters"] == one["n"]
    ratio = (four["ci_high"] - four["ci_low"]) / (one["ci_high"] - one["ci_low"])
    assert abs(ratio - 1) < 0.10, ratio
    overshoot = bench_summaries[4]["rows"][0]["conflicting_interest"]["overshoot_rate"]
    assert overshoot["events"] is not None and overshoot["exact_high"] > overshoot["ci_high"]
