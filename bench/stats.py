"""Small statistics over benchmark samples: percentiles, medians, spreads, paired ratios.

Pure functions on plain floats, so the report and the tests read the same numbers.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass


def percentile(values: Sequence[float], pct: float) -> float:
    """The nearest-rank percentile (`pct` in 0..100) of `values`; NaN when there are none.

    Nearest rank (not interpolation) so a p99 is always a latency some query really had.
    """
    if not 0 <= pct <= 100:
        raise ValueError(f"percentile {pct} is outside 0..100")
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float:
    """The median, NaN for no values."""
    return statistics.median(values) if values else math.nan


@dataclass(frozen=True, slots=True)
class Summary:
    """Median and spread (min..max) of a few samples, e.g. one number per round."""

    median: float
    low: float
    high: float
    samples: tuple[float, ...]

    @property
    def spread_pct(self) -> float:
        """(max - min) / median in percent: how far rounds disagree."""
        if not self.samples or self.median == 0 or math.isnan(self.median):
            return math.nan
        return (self.high - self.low) / abs(self.median) * 100

    def to_dict(self) -> dict[str, object]:
        return {
            "median": self.median,
            "min": self.low,
            "max": self.high,
            "spread_pct": self.spread_pct,
            "samples": list(self.samples),
        }


def summarize(values: Sequence[float]) -> Summary:
    """Median, min and max of the samples (NaN everywhere for none)."""
    if not values:
        return Summary(math.nan, math.nan, math.nan, ())
    return Summary(median(values), min(values), max(values), tuple(values))


def paired_ratios(numerators: Sequence[float], denominators: Sequence[float]) -> list[float]:
    """Round by round `a[i] / b[i]`: the pairs ran back to back, so machine drift cancels."""
    if len(numerators) != len(denominators):
        raise ValueError(
            f"paired ratios need as many rounds on each side ({len(numerators)} vs "
            f"{len(denominators)})"
        )
    return [a / b if b else math.nan for a, b in zip(numerators, denominators, strict=True)]


def latency_summary(latencies_s: Sequence[float]) -> dict[str, float]:
    """Average, p50, p99, p99.9 and max of per-query latencies, in milliseconds."""
    if not latencies_s:
        return {k: math.nan for k in ("avg_ms", "p50_ms", "p99_ms", "p999_ms", "max_ms")}
    return {
        "avg_ms": statistics.fmean(latencies_s) * 1000,
        "p50_ms": percentile(latencies_s, 50) * 1000,
        "p99_ms": percentile(latencies_s, 99) * 1000,
        "p999_ms": percentile(latencies_s, 99.9) * 1000,
        "max_ms": max(latencies_s) * 1000,
    }
