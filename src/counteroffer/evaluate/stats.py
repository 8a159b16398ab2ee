"""Means with 95% intervals that resample products, not episodes, and exact intervals for rates.

Episodes of one product are not independent draws: two rollouts of a deterministic scripted buyer against a
deterministic seller are the same episode twice, and even a sampling model meets the same product's budget, cost
and listing in every rollout. Resampling episodes would shrink the interval by about 1/sqrt(R) for R rollouts
without any new information. :func:`bootstrap_mean` therefore takes each episode's *cluster* (its product) and
draws whole clusters with replacement; the statistic is the pooled mean of the drawn clusters' episodes (a ratio
of sums, so clusters with more episodes weigh more, as in the plain mean). With identical rollouts per product,
the interval of R rollouts equals that of one rollout exactly.

Rates of rare events (an overshoot on a handful of conflicting-interest products, format errors) also get an
exact binomial interval (Clopper-Pearson) over the episodes: :func:`clopper_pearson`. A bootstrap of 0 events in
24 says [0, 0]; the exact interval says the rate may still be as high as 14%.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence

import numpy as np
from pydantic import BaseModel

BOOTSTRAP_RESAMPLES = 2000
CONFIDENCE = 0.95
CHUNK_DRAWS = 1_000_000


class Estimate(BaseModel):
    """A mean over ``n`` episodes of ``clusters`` products, with a 95% cluster-bootstrap interval; all ``None``
    when ``n`` is 0. A rate (a mean of 0/1 values) also carries ``events`` and its exact binomial interval."""

    mean: float | None
    ci_low: float | None
    ci_high: float | None
    n: int
    clusters: int | None = None  # products resampled; None for intervals written before clustering
    events: int | None = None  # for a rate: how many of the n episodes had the event
    exact_low: float | None = None  # for a rate: the Clopper-Pearson interval
    exact_high: float | None = None

    def format(self, digits: int = 3, percent: bool = False) -> str:
        if self.mean is None:
            return "–"
        scale, suffix = (100.0, "%") if percent else (1.0, "")
        text = f"{self.mean * scale:.{digits}f}{suffix}"
        if self.ci_low is not None and self.ci_high is not None and self.n > 1:
            half = (self.ci_high - self.ci_low) * scale / 2
            text += f" ±{half:.{digits}f}"
        return text

    def format_events(self, with_n: bool = True) -> str:
        """A rate as ``events/n`` (or ``events`` alone) with its exact interval in percent, e.g. ``0/24 [0–14%]``."""
        if self.events is None or self.exact_low is None or self.exact_high is None:
            return self.format(1, percent=True)
        count = f"{self.events}/{self.n}" if with_n else str(self.events)
        return f"{count} [{self.exact_low * 100:.2g}–{self.exact_high * 100:.2g}%]"


def _cluster_totals(values: np.ndarray, clusters: Sequence[Hashable] | None) -> tuple[np.ndarray, np.ndarray]:
    """Each cluster's sum and count, clusters in a canonical order (sorted by key; exact sums within), so the
    result is a function of the (cluster, value) pairs as a set, whatever order they were read in."""
    if clusters is None:
        data = np.sort(values)
        return data, np.ones_like(data)
    if len(clusters) != len(values):
        raise ValueError(f"{len(values)} values but {len(clusters)} cluster keys")
    groups: dict[str, list[float]] = {}
    for key, value in zip(clusters, values.tolist(), strict=True):
        groups.setdefault(repr(key), []).append(value)
    keys = sorted(groups)
    sums = np.array([math.fsum(groups[key]) for key in keys])  # exact: the order of the values is irrelevant
    counts = np.array([len(groups[key]) for key in keys], dtype=float)
    return sums, counts


def bootstrap_mean(
    values: Sequence[float],
    *,
    clusters: Sequence[Hashable] | None = None,
    seed: int = 0,
    resamples: int = BOOTSTRAP_RESAMPLES,
) -> Estimate:
    """The mean and its 95% percentile-bootstrap interval, resampling whole ``clusters`` (one key per value: the
    episode's product) with replacement; without ``clusters`` every value is its own cluster.

    A function of the (cluster, value) pairs as a set, so a bench, a suite table and a report give the same
    interval for the same episodes whatever order they were read in."""
    data = np.asarray(values, dtype=float)
    n = int(data.size)
    if n == 0:
        return Estimate(mean=None, ci_low=None, ci_high=None, n=0, clusters=0)
    sums, counts = _cluster_totals(data, clusters)
    k = int(sums.size)
    mean = float(sums.sum() / counts.sum())
    if k == 1:
        return Estimate(mean=mean, ci_low=mean, ci_high=mean, n=n, clusters=1)
    rng = np.random.default_rng(seed)
    # In chunks of about a million draws: one (resamples × k) index matrix would take 32 MB per 1,000 clusters
    # (and as much again for the gathered values), making a bench's memory grow with its size. The chunks draw
    # the same numbers from the generator as one call would.
    chunk = max(1, min(resamples, CHUNK_DRAWS // k))
    means = []
    for start in range(0, resamples, chunk):
        drawn = rng.integers(0, k, size=(min(chunk, resamples - start), k))
        means.append(sums[drawn].sum(axis=1) / counts[drawn].sum(axis=1))
    alpha = (1 - CONFIDENCE) / 2
    low, high = np.quantile(np.concatenate(means), [alpha, 1 - alpha])
    return Estimate(mean=mean, ci_low=float(low), ci_high=float(high), n=n, clusters=k)


def _binomial_tail(events: int, n: int, rate: float, upper: bool) -> float:
    """P(X >= events) (``upper``) or P(X <= events) for X ~ Binomial(n, rate), summed in log space."""
    if rate <= 0.0:
        return 1.0 if (events == 0 or not upper) else 0.0
    if rate >= 1.0:
        return 1.0 if (events == n or upper) else 0.0
    log_p, log_q = math.log(rate), math.log1p(-rate)
    terms = range(events, n + 1) if upper else range(0, events + 1)
    logs = [
        math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * log_p + (n - i) * log_q for i in terms
    ]
    top = max(logs)
    return min(1.0, math.exp(top) * math.fsum(math.exp(x - top) for x in logs))


def _solve(tail, target: float) -> float:  # noqa: ANN001 - a monotone increasing function of the rate
    low, high = 0.0, 1.0
    for _ in range(60):  # 2^-60: far below any printed digit
        middle = (low + high) / 2
        if tail(middle) < target:
            low = middle
        else:
            high = middle
    return (low + high) / 2


def clopper_pearson(events: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The exact (Clopper-Pearson) interval of a binomial rate: ``events`` of ``n``."""
    if n <= 0 or not 0 <= events <= n:
        raise ValueError(f"need 0 <= events <= n and n > 0, got {events} of {n}")
    alpha = (1 - confidence) / 2
    low = 0.0 if events == 0 else _solve(lambda p: _binomial_tail(events, n, p, upper=True), alpha)
    # P(X <= events) falls as the rate rises: solve on its complement, which rises.
    high = 1.0 if events == n else _solve(lambda p: 1 - _binomial_tail(events, n, p, upper=False), 1 - alpha)
    return low, high


def rate_estimate(
    flags: Sequence[bool | float], *, clusters: Sequence[Hashable] | None = None, seed: int = 0
) -> Estimate:
    """A rate: the cluster-bootstrap estimate of the 0/1 ``flags`` plus their count and exact interval."""
    estimate = bootstrap_mean([float(flag) for flag in flags], clusters=clusters, seed=seed)
    if estimate.n == 0:
        return estimate
    events = round(sum(float(flag) for flag in flags))
    low, high = clopper_pearson(events, estimate.n)
    return estimate.model_copy(update={"events": events, "exact_low": low, "exact_high": high})
