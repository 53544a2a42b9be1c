"""Aggregation over cases and the paired t-test, against hand-computed numbers and scipy."""

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from medgap.metrics import aggregate, paired_ttest


def records():
    return [
        {"case": "a", "structure": "WT", "subset": "all", "dice": 0.8, "hd95": 2.0},
        {"case": "b", "structure": "WT", "subset": "all", "dice": 0.6, "hd95": math.nan},
        {"case": "c", "structure": "WT", "subset": "T1", "dice": 0.7, "hd95": 4.0},
        {"case": "a", "structure": "ET", "subset": "all", "dice": 0.5, "hd95": math.nan},
    ]


def test_aggregate_by_structure_hand_computed():
    rows = aggregate(records(), group_by=("structure",), metrics=("dice", "hd95"))
    assert [row["structure"] for row in rows] == ["WT", "ET"]
    wt, et = rows
    assert wt["n"] == 3
    assert wt["dice"] == pytest.approx(0.7)
    assert wt["dice_std"] == pytest.approx(0.1)  # sample std (ddof=1) of 0.8, 0.6, 0.7
    assert wt["dice_nan"] == 0
    assert wt["hd95"] == pytest.approx(3.0)  # NaN excluded
    assert wt["hd95_std"] == pytest.approx(math.sqrt(2.0))  # ddof=1 of 2, 4
    assert wt["hd95_nan"] == 1
    assert et["n"] == 1 and et["dice"] == 0.5 and et["dice_std"] == 0.0
    assert math.isnan(et["hd95"]) and math.isnan(et["hd95_std"]) and et["hd95_nan"] == 1


def test_aggregate_by_two_keys_and_pooled():
    rows = aggregate(records(), group_by=("subset", "structure"), metrics=("dice",))
    assert [(row["subset"], row["structure"], row["n"]) for row in rows] == [
        ("all", "WT", 2), ("T1", "WT", 1), ("all", "ET", 1)
    ]
    pooled = aggregate(records(), group_by=(), metrics=("dice",))
    assert len(pooled) == 1 and pooled[0]["n"] == 4
    assert pooled[0]["dice"] == pytest.approx(np.mean([0.8, 0.6, 0.7, 0.5]))
    assert pooled[0]["dice_std"] == pytest.approx(np.std([0.8, 0.6, 0.7, 0.5], ddof=1))


def test_aggregate_rejects_missing_keys():
    with pytest.raises(ValueError, match="jaccard"):
        aggregate(records(), metrics=("jaccard",))


def test_paired_ttest_matches_scipy():
    rng = np.random.default_rng(0)
    a = rng.normal(0.8, 0.05, size=20)
    b = a - rng.normal(0.02, 0.03, size=20)
    result = paired_ttest(a, b)
    expected = scipy_stats.ttest_rel(a, b)
    assert result["t"] == pytest.approx(expected.statistic)
    assert result["p"] == pytest.approx(expected.pvalue)
    assert result["n"] == 20
    assert result["mean_diff"] == pytest.approx(np.mean(a - b))
    assert result["significant"] == (expected.pvalue < 0.05)


def test_paired_ttest_drops_non_finite_pairs():
    a = [0.9, 0.8, math.nan, 0.7, 0.85, 0.6]
    b = [0.8, 0.75, 0.7, math.inf, 0.8, 0.65]
    result = paired_ttest(a, b)
    kept_a, kept_b = [0.9, 0.8, 0.85, 0.6], [0.8, 0.75, 0.8, 0.65]
    expected = scipy_stats.ttest_rel(kept_a, kept_b)
    assert result["n"] == 4
    assert result["p"] == pytest.approx(expected.pvalue)
    assert result["mean_diff"] == pytest.approx(np.mean(np.subtract(kept_a, kept_b)))


def test_paired_ttest_with_too_few_pairs_gives_nan():
    result = paired_ttest([0.9, math.nan], [0.8, 0.7])
    assert result["n"] == 1 and math.isnan(result["p"]) and math.isnan(result["t"])
    assert result["mean_diff"] == pytest.approx(0.1) and result["significant"] is False


def test_paired_ttest_pairs_mappings_by_case():
    a = {"c1": 0.9, "c2": 0.7, "c3": 0.8}
    b = {"c3": 0.6, "c1": 0.85, "c2": 0.72}
    expected = scipy_stats.ttest_rel([0.9, 0.7, 0.8], [0.85, 0.72, 0.6])
    assert paired_ttest(a, b)["p"] == pytest.approx(expected.pvalue)
    with pytest.raises(ValueError, match="c4"):
        paired_ttest(a, {**b, "c4": 0.5})
    with pytest.raises(ValueError, match="equal length"):
        paired_ttest([0.1, 0.2], [0.1, 0.2, 0.3])
