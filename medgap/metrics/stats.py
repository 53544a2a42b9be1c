"""Summaries over cases: mean ± std per group with NaN counted apart, and the paired t-test between two runs.

Standard deviations are sample standard deviations (``ddof=1``) over the non-NaN values of a group when there
are at least two of them, 0.0 for a single value and NaN for none.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from scipy import stats as scipy_stats

from medgap.metrics.overlap import MetricInputError

DEFAULT_METRICS = ("dice", "jaccard", "hd95", "asd")


def aggregate(
    records: Iterable[Mapping[str, Any]],
    group_by: Sequence[str] = ("structure",),
    metrics: Sequence[str] = DEFAULT_METRICS,
) -> list[dict[str, Any]]:
    """Mean and std of each metric over the records of each group.

    Args:
        records: one mapping per (case, structure), e.g. ``SegmentationMetrics.records``.
        group_by: the record keys that define a group, e.g. ``("structure",)`` or ``("subset", "structure")``;
            ``()`` pools all records into one group.
        metrics: the record keys to summarise.

    Returns:
        One dict per group, in order of first appearance: ``{**group keys, "n": records in the group,
        metric: mean, metric + "_std": std, metric + "_nan": NaN values excluded}``. The mean and the std
        (``ddof=1`` when at least two values remain, 0.0 for one, NaN for none) are over the non-NaN values.
    """
    groups: dict[tuple, list[Mapping[str, Any]]] = {}
    for record in records:
        missing = [key for key in (*group_by, *metrics) if key not in record]
        if missing:
            raise MetricInputError(f"record {dict(record)!r} lacks {missing}")
        groups.setdefault(tuple(record[key] for key in group_by), []).append(record)

    summary = []
    for key, members in groups.items():
        row: dict[str, Any] = dict(zip(group_by, key))
        row["n"] = len(members)
        for metric in metrics:
            values = np.asarray([float(member[metric]) for member in members], dtype=np.float64)
            kept = values[~np.isnan(values)]
            row[metric] = float(kept.mean()) if kept.size else math.nan
            row[f"{metric}_std"] = float(kept.std(ddof=1)) if kept.size > 1 else (0.0 if kept.size else math.nan)
            row[f"{metric}_nan"] = int(values.size - kept.size)
        summary.append(row)
    return summary


def _paired_values(a: Sequence[float] | Mapping[Any, float], b: Sequence[float] | Mapping[Any, float]):
    if isinstance(a, Mapping) != isinstance(b, Mapping):
        raise MetricInputError("paired_ttest needs two sequences or two case -> score mappings, not one of each")
    if isinstance(a, Mapping):
        if set(a) != set(b):
            only_a, only_b = sorted(map(str, set(a) - set(b))), sorted(map(str, set(b) - set(a)))
            raise MetricInputError(f"paired_ttest cases differ: only in a {only_a}, only in b {only_b}")
        keys = list(a)
        a, b = [a[k] for k in keys], [b[k] for k in keys]
    a_np, b_np = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a_np.shape != b_np.shape or a_np.ndim != 1:
        raise MetricInputError(
            f"paired_ttest needs two 1-D score lists of equal length, got {a_np.shape} and {b_np.shape}"
        )
    return a_np, b_np


def paired_ttest(
    a: Sequence[float] | Mapping[Any, float], b: Sequence[float] | Mapping[Any, float], alpha: float = 0.05
) -> dict[str, Any]:
    """Paired two-sided t-test between two runs' per-case scores (``scipy.stats.ttest_rel``).

    Args:
        a, b: per-case scores of two runs, as equal-length sequences in the same case order, or as
            ``{case_id: score}`` mappings with the same cases.
        alpha: significance level for the ``significant`` flag.

    Returns:
        ``{"t", "p", "n", "mean_diff", "alpha", "significant"}``: only pairs where both scores are finite
        are used (``n`` of them); ``mean_diff`` = mean of ``a - b``; fewer than 2 pairs → ``t`` and ``p`` NaN.
        ``significant`` is ``p < alpha`` (False when p is NaN).
    """
    a_np, b_np = _paired_values(a, b)
    finite = np.isfinite(a_np) & np.isfinite(b_np)
    a_np, b_np = a_np[finite], b_np[finite]
    n = int(a_np.size)
    mean_diff = float(np.mean(a_np - b_np)) if n else math.nan
    if n < 2:
        t, p = math.nan, math.nan
    else:
        result = scipy_stats.ttest_rel(a_np, b_np)
        t, p = float(result.statistic), float(result.pvalue)
    return {"t": t, "p": p, "n": n, "mean_diff": mean_diff, "alpha": alpha, "significant": bool(p < alpha)}
