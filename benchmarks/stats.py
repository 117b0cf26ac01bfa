"""The arithmetic of the comparison: percentiles, medians with their range, fairness and ratios.

Standard library only, so the runner can use it from a peer's own virtualenv (arq), and so it can be unit
tested without Redis.
"""
from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Summary:
    """The median of repetitions and their range: what the table prints as `median [min-max]`."""

    median: float
    low: float
    high: float
    count: int


def summarise(values: Sequence[float]) -> Summary | None:
    if not values:
        return None
    return Summary(statistics.median(values), min(values), max(values), len(values))


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100), linear between closest ranks, so p99 of 200 samples is not the max."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    below = math.floor(rank)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (ordered[above] - ordered[below]) * (rank - below)


def fairness(counts: Sequence[int]) -> dict[str, float]:
    """Spread of per-producer completions: min/max (1 = perfectly even) and coefficient of variation."""
    if not counts:
        raise ValueError("fairness of no producers")
    mean = statistics.fmean(counts)
    spread = statistics.pstdev(counts) / mean if mean else 0.0
    return {"min": float(min(counts)), "max": float(max(counts)),
            "min_over_max": (min(counts) / max(counts)) if max(counts) else 0.0, "cv": spread}


def ratio(ours: float | None, theirs: float | None, higher_is_better: bool) -> float | None:
    """How many times better redispool is: ours/theirs for rates, theirs/ours for latencies (>1 = ours wins)."""
    if ours is None or theirs is None or ours <= 0 or theirs <= 0:
        return None
    return ours / theirs if higher_is_better else theirs / ours
