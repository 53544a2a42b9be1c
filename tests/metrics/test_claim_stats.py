"""Claim statistics of ``medgap reproduce``: bootstrap coverage in simulation, the three verdicts on hand-made
scores, one pair per case however many subsets score it, orderings, and the MDD against a hand computation."""

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from medgap.metrics.stats import (bootstrap_ci, case_scores, compare, minimum_detectable_difference,
                                  ordering_verdict, verdict)


def scores(values, seeds=(0,)):
    """{(seed, case): value} from a (seeds, cases) array."""
    values = np.atleast_2d(values)
    return {(seed, f"c{case}"): float(values[row, case]) for row, seed in enumerate(seeds)
            for case in range(values.shape[1])}


@pytest.mark.parametrize("shared_cases", [False, True])
def test_bootstrap_ci_covers_a_known_difference_about_95_percent_of_the_time(shared_cases):
    """200 synthetic experiments, 3 seeds × 30 test cases, true mean difference 0.03: the 95 % CI must contain it
    in 95 % of them, up to a binomial tolerance (sd 1.5 points at 200 trials; we accept 90–99 %)."""
    rng = np.random.default_rng(1)
    truth, covered = 0.03, 0
    for experiment in range(200):
        baseline = rng.uniform(0.4, 0.9, size=(3, 30))
        if shared_cases:  # one test set for all seeds: a case effect shared by the seeds, plus seed noise
            difference = truth + rng.normal(0, 0.06, size=30) + rng.normal(0, 0.03, size=(3, 30))
        else:
            difference = truth + rng.normal(0, 0.07, size=(3, 30))
        keys = [(s, f"c{c}" if shared_cases else f"s{s}c{c}") for s in range(3) for c in range(30)]
        method = {k: baseline.ravel()[i] + difference.ravel()[i] for i, k in enumerate(keys)}
        reference = {k: baseline.ravel()[i] for i, k in enumerate(keys)}
        result = compare(method, reference, resamples=2000, seed=experiment)
        covered += result.ci_low <= truth <= result.ci_high
    assert 0.90 <= covered / 200 <= 0.99, covered


def test_verdicts_on_hand_made_scores():
    rng = np.random.default_rng(0)
    baseline = rng.uniform(0.5, 0.8, size=(3, 30))
    win = compare(scores(baseline + 0.10 + rng.normal(0, 0.02, baseline.shape), (0, 1, 2)),
                  scores(baseline, (0, 1, 2)))
    assert win.verdict == "reproduced" and win.ci_low > 0.08 and win.p < 1e-10
    assert win.effect == pytest.approx(0.10, abs=0.01) and win.cases == 30 and win.seeds == 3
    loss = compare(scores(baseline - 0.10 + rng.normal(0, 0.02, baseline.shape), (0, 1, 2)),
                   scores(baseline, (0, 1, 2)))
    assert loss.verdict == "contradicted" and loss.ci_high < 0
    noise = compare(scores(baseline + rng.normal(0, 0.05, baseline.shape), (0, 1, 2)), scores(baseline, (0, 1, 2)))
    assert noise.verdict == "inconclusive" and noise.ci_low < 0 < noise.ci_high and noise.p > 0.05
    # a claimed decrease (e.g. a smaller error): the same loss reproduces it
    assert compare(scores(baseline - 0.1, (0, 1, 2)), scores(baseline, (0, 1, 2)), direction=-1).verdict == \
        "reproduced"
    assert [verdict(0.01, 0.2), verdict(-0.2, -0.01), verdict(-0.1, 0.1), verdict(math.nan, math.nan)] == \
        ["reproduced", "contradicted", "inconclusive", "inconclusive"]
    assert verdict(-0.2, -0.01, direction=-1) == "reproduced"


def test_a_case_scored_on_15_subsets_counts_as_one_pair():
    rng = np.random.default_rng(2)
    subsets = [f"subset{k}" for k in range(15)]
    method, baseline = {}, {}
    for seed in range(2):
        for case in range(12):
            level, gain = rng.uniform(0.3, 0.8), rng.normal(0.02, 0.1)  # a case's gain holds on all its subsets
            for subset in subsets:
                for structure in ("ET", "TC", "WT"):
                    key = (seed, f"c{case}", subset, structure)
                    baseline[key] = level + rng.normal(0, 0.05)
                    method[key] = baseline[key] + gain + rng.normal(0, 0.01)
    averaged_method, averaged_baseline = case_scores(method), case_scores(baseline)
    assert len(averaged_method) == 24  # 2 seeds × 12 cases, not × 15 subsets × 3 structures
    result = compare(averaged_method, averaged_baseline)
    # the same CI as from cases averaged by hand beforehand
    by_hand = {key: np.mean([method[(*key, s, r)] for s in subsets for r in ("ET", "TC", "WT")])
               for key in averaged_method}
    by_hand_baseline = {key: np.mean([baseline[(*key, s, r)] for s in subsets for r in ("ET", "TC", "WT")])
                        for key in averaged_method}
    expected = compare(by_hand, by_hand_baseline)
    assert (result.ci_low, result.ci_high) == pytest.approx((expected.ci_low, expected.ci_high))
    assert result.cases == 12 and result.p == pytest.approx(expected.p)
    # pooling the 15 × 3 values of a case as if they were independent pairs would make the interval and the p-value
    # far too small (the ShaSpec page's p = 1e-13 from 12 cases)
    pooled = compare({(k[0], k[1:]): v for k, v in method.items()}, {(k[0], k[1:]): v for k, v in baseline.items()})
    assert (pooled.ci_high - pooled.ci_low) < 0.3 * (result.ci_high - result.ci_low) and pooled.p < result.p
    with pytest.raises(ValueError, match="case_scores"):
        compare(method, baseline)


def test_seeds_are_strata_and_shared_cases_are_resampled_together():
    # seed 0 gains +0.1 on every case, seed 1 gains 0: the effect is their mean, and resampling within seeds
    # never mixes them (every resample keeps the effect at exactly 0.05)
    method = {**scores(np.full(10, 0.6), (0,)), **scores(np.full(10, 0.5), (1,))}
    baseline = scores(np.full((2, 10), 0.5), (0, 1))
    result = compare(method, baseline)
    assert result.effect == pytest.approx(0.05) and result.per_seed == pytest.approx((0.1, 0.0))
    assert (result.ci_low, result.ci_high) == pytest.approx((0.05, 0.05))
    # a shared test set: the per-case differences averaged over seeds are what the t-test pairs
    a = np.array([[0.9, 0.8, 0.7, 0.6], [0.7, 0.9, 0.6, 0.7]])
    b = np.array([[0.8, 0.8, 0.6, 0.6], [0.6, 0.7, 0.7, 0.5]])
    result = compare(scores(a, (0, 1)), scores(b, (0, 1)))
    assert result.p == pytest.approx(scipy_stats.ttest_1samp((a - b).mean(axis=0), 0).pvalue)
    assert result.cases == 4 and result.seeds == 2
    assert result.as_ttest() == {"p": result.p, "significant": result.p < 0.05, "mean_diff": result.effect, "n": 4,
                                 "alpha": 0.05}
    low, high = bootstrap_ci({0: {"x": 1.0, "y": 2.0}, 1: {"x": 3.0, "y": 4.0}}, resamples=4000)
    # shared cases x, y: a resample draws case means (2.0 for x, 3.0 for y) → the effect lies in [2, 3]
    assert 2.0 <= low < high <= 3.0


def test_the_interval_does_not_depend_on_the_order_the_scores_arrive_in():
    # seeds with different test cases (the per-seed draw): a page rebuilt from finished runs, which load in plan
    # order rather than in the order parallel workers finished, must print the same interval
    rng = np.random.default_rng(1)
    by_seed = {seed: {f"c{seed}_{case}": float(rng.normal()) for case in range(12)} for seed in range(3)}
    shuffled = {seed: dict(reversed(list(values.items()))) for seed, values in by_seed.items()}
    assert bootstrap_ci(by_seed, resamples=2000) == bootstrap_ci(shuffled, resamples=2000)


def test_orderings_are_checked_pair_by_pair():
    rng = np.random.default_rng(3)
    c = rng.uniform(0.4, 0.6, size=(3, 30))
    b, a = c + 0.1, c + 0.2
    noisy_b = c + rng.normal(0, 0.05, size=c.shape)
    keys = (0, 1, 2)
    ab, bc = compare(scores(a, keys), scores(b, keys)), compare(scores(b, keys), scores(c, keys))
    assert ordering_verdict([ab, bc]) == "reproduced"
    ab_noisy, bc_noisy = compare(scores(c + 0.2, keys), scores(noisy_b, keys)), compare(scores(noisy_b, keys),
                                                                                         scores(c, keys))
    assert (ab_noisy.verdict, bc_noisy.verdict) == ("reproduced", "inconclusive")
    assert ordering_verdict([ab_noisy, bc_noisy]) == "inconclusive"
    assert ordering_verdict([ab, compare(scores(c, keys), scores(b, keys))]) == "contradicted"


def test_minimum_detectable_difference_matches_a_hand_computation():
    differences = [0.1, 0.3, 0.2, 0.4]
    # s = 0.129099..., n = 4, t_{0.975, 3} = 3.182446, t_{0.8, 3} = 0.978472
    assert minimum_detectable_difference(differences) == pytest.approx((3.182446 + 0.978472) * 0.1290994 / 2,
                                                                       rel=1e-5)
    assert math.isnan(minimum_detectable_difference([0.1]))
    result = compare(scores([[0.6, 0.8, 0.7, 0.9]]), scores([[0.5, 0.5, 0.5, 0.5]]))
    assert result.mdd == pytest.approx(minimum_detectable_difference(differences))


def test_too_few_cases_give_no_interval_and_an_inconclusive_verdict():
    result = compare({(0, "a"): 0.9}, {(0, "a"): 0.1})
    assert math.isnan(result.ci_low) and math.isnan(result.p) and result.verdict == "inconclusive"
    # 4 cases that all gain: the t-test may say so, but a bootstrap over 4 cases is no interval to trust
    four = compare(scores([[0.9, 0.8, 0.85, 0.95]]), scores([[0.5, 0.5, 0.5, 0.5]]))
    assert four.cases == 4 and four.p < 0.01 and math.isnan(four.ci_low) and four.verdict == "inconclusive"
    assert compare(scores([[0.9, 0.8, 0.85, 0.95, 0.9]]), scores([[0.5] * 5])).verdict == "reproduced"
    assert math.isnan(case_scores({(0, "a", "T1"): math.nan})[(0, "a")])
