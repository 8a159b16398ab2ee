"""Means with percentile-bootstrap confidence intervals."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel

BOOTSTRAP_RESAMPLES = 2000
CONFIDENCE = 0.95
CHUNK_DRAWS = 1_000_000


class Estimate(BaseModel):
    """A mean over ``n`` episodes with a 95% percentile-bootstrap interval; all ``None`` when ``n`` is 0."""

    mean: float | None
    ci_low: float | None
    ci_high: float | None
    n: int

    def format(self, digits: int = 3, percent: bool = False) -> str:
        if self.mean is None:
            return "–"
        scale, suffix = (100.0, "%") if percent else (1.0, "")
        text = f"{self.mean * scale:.{digits}f}{suffix}"
        if self.ci_low is not None and self.ci_high is not None and self.n > 1:
            half = (self.ci_high - self.ci_low) * scale / 2
            text += f" ±{half:.{digits}f}"
        return text


def bootstrap_mean(values: Sequence[float], *, seed: int = 0, resamples: int = BOOTSTRAP_RESAMPLES) -> Estimate:
    """The mean and its interval; a function of the values as a set (they are sorted first), so a bench, a suite
    table and a report give the same interval for the same episodes whatever order they were read in."""
    data = np.sort(np.asarray(values, dtype=float))
    n = int(data.size)
    if n == 0:
        return Estimate(mean=None, ci_low=None, ci_high=None, n=0)
    mean = float(data.mean())
    if n == 1:
        return Estimate(mean=mean, ci_low=mean, ci_high=mean, n=1)
    rng = np.random.default_rng(seed)
    # In chunks of about a million draws: one (resamples × n) index matrix would take 32 MB per 1,000 episodes
    # (and as much again for the gathered values), making a bench's memory grow with its size. The chunks draw
    # the same numbers from the generator as one call would.
    chunk = max(1, min(resamples, CHUNK_DRAWS // n))
    means = np.concatenate(
        [
            data[rng.integers(0, n, size=(min(chunk, resamples - start), n))].mean(axis=1)
            for start in range(0, resamples, chunk)
        ]
    )
    alpha = (1 - CONFIDENCE) / 2
    low, high = np.quantile(means, [alpha, 1 - alpha])
    return Estimate(mean=mean, ci_low=float(low), ci_high=float(high), n=n)
