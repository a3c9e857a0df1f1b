"""Small statistics helpers for the benchmark's reports."""

from __future__ import annotations


def percentile(values: list[float], p: float) -> float:
    """The p-th percentile by the nearest-rank method (p in 0..100)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * p // 100))  # ceil(n * p / 100), at least 1
    return ordered[int(rank) - 1]
