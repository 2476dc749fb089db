"""Tests for runner.analysis.stats against hand-worked numbers and independent scipy computations."""

from __future__ import annotations

import dataclasses
import math
import statistics

import numpy as np
import pytest
from scipy import stats as sps

from runner.analysis.stats import (
    RunSummary,
    answer_entropy,
    balanced_accuracy,
    binomial_greater,
    bootstrap_mean_interval,
    brier_score,
    cohen_kappa,
    holm_adjust,
    matthews_corrcoef,
    mcnemar_exact,
    mcnemar_sample_size,
    paired_bootstrap_difference,
    summarize_runs,
    two_proportion_sample_size,
    wilson_interval,
)

# --- wilson_interval -----------------------------------------------------------------------------


def test_wilson_8_of_10_hand_worked() -> None:
    # p = 0.8, n = 10, z = 1.959964, z^2 = 3.841459, z^2/n = 0.3841459
    # denominator = 1 + 0.3841459 = 1.3841459
    # center = (0.8 + 0.3841459/2) / 1.3841459 = 0.9920729 / 1.3841459 = 0.7167402
    # half   = z * sqrt(0.8*0.2/10 + 3.841459/400) / 1.3841459
    #        = 1.959964 * sqrt(0.016 + 0.0096036) / 1.3841459 = 1.959964 * 0.1600114 / 1.3841459 = 0.2265777
    # interval = (0.7167402 - 0.2265777, 0.7167402 + 0.2265777) = (0.4901625, 0.9433179)
    low, high = wilson_interval(8, 10)
    assert low == pytest.approx(0.4901625, abs=1e-6)
    assert high == pytest.approx(0.9433179, abs=1e-6)


@pytest.mark.parametrize(
    ("successes", "n", "confidence"),
    [(0, 5, 0.95), (3, 7, 0.95), (5, 5, 0.95), (41, 100, 0.9), (999, 1000, 0.99), (1, 3, 0.5)],
)
def test_wilson_matches_scipy(successes: int, n: int, confidence: float) -> None:
    expected = sps.binomtest(successes, n).proportion_ci(confidence_level=confidence, method="wilson")
    low, high = wilson_interval(successes, n, confidence)
    assert low == pytest.approx(float(expected.low), abs=1e-12)
    assert high == pytest.approx(float(expected.high), abs=1e-12)


def test_wilson_edges() -> None:
    assert wilson_interval(0, 0) == (0.0, 1.0)
    low, high = wilson_interval(10, 10)
    # All correct: the upper bound is exactly 1 and the lower bound is well below it.
    assert high == 1.0
    assert low == pytest.approx(0.722467, abs=1e-6)  # = n / (n + z^2) = 10 / 13.841459
    assert wilson_interval(0, 10)[0] == 0.0
    assert type(low) is float and type(high) is float


@pytest.mark.parametrize(("successes", "n"), [(-1, 5), (6, 5), (0, -1)])
def test_wilson_rejects_bad_counts(successes: int, n: int) -> None:
    with pytest.raises(ValueError):
        wilson_interval(successes, n)


def test_wilson_rejects_bad_confidence() -> None:
    with pytest.raises(ValueError):
        wilson_interval(1, 2, confidence=1.0)


# --- bootstrap_mean_interval ---------------------------------------------------------------------


def test_bootstrap_two_points_spans_range() -> None:
    # Resampled means of [0, 1] are 0, 0.5, 1 with probabilities 1/4, 1/2, 1/4, so the 2.5% and
    # 97.5% percentiles of 2000 resamples are 0 and 1.
    assert bootstrap_mean_interval([0.0, 1.0]) == (0.0, 1.0)


def test_bootstrap_close_to_scipy_percentile_bootstrap() -> None:
    values = np.random.default_rng(42).normal(0.6, 0.2, size=200).tolist()
    expected = sps.bootstrap(
        (values,), np.mean, method="percentile", n_resamples=4000, random_state=1
    ).confidence_interval
    low, high = bootstrap_mean_interval(values)
    width = float(expected.high - expected.low)
    # Different random streams: agree within a small fraction of the width (about 0.055 here).
    assert low == pytest.approx(float(expected.low), abs=0.1 * width)
    assert high == pytest.approx(float(expected.high), abs=0.1 * width)
    assert low < statistics.fmean(values) < high


def test_bootstrap_is_seeded() -> None:
    values = [0.1, 0.5, 0.9, 0.3, 0.7, 0.2]
    assert bootstrap_mean_interval(values, seed=3) == bootstrap_mean_interval(values, seed=3)
    assert bootstrap_mean_interval(values, seed=3) != bootstrap_mean_interval(values, seed=4)


def test_bootstrap_narrower_at_lower_confidence() -> None:
    values = [0.1, 0.5, 0.9, 0.3, 0.7, 0.2, 0.4, 0.8]
    low95, high95 = bootstrap_mean_interval(values, confidence=0.95)
    low50, high50 = bootstrap_mean_interval(values, confidence=0.5)
    assert low95 < low50 < high50 < high95


def test_bootstrap_edges() -> None:
    low, high = bootstrap_mean_interval([])
    assert math.isnan(low) and math.isnan(high)
    assert bootstrap_mean_interval([0.7]) == (0.7, 0.7)
    # A resampled mean of [0.1] * 3 computes to 0.10000000000000002; the result must still be exact.
    assert bootstrap_mean_interval([0.1] * 3) == (0.1, 0.1)
    with pytest.raises(ValueError):
        bootstrap_mean_interval([1.0, 2.0], resamples=0)


# --- paired_bootstrap_difference -----------------------------------------------------------------


def test_paired_difference_hand_worked() -> None:
    # mean(a) = 2/4, mean(b) = 3/4, difference = 0.25. The per-item differences are [0, 0, 1, 0];
    # the resampled mean ranges over k/4, and with 2000 resamples the 2.5% percentile is 0
    # (P(no 1 drawn) = (3/4)^4 = 0.32) and the 97.5% is 0.75 (P(>= 3 ones) = 13/256 = 0.05,
    # P(4 ones) = 1/256 = 0.004).
    estimate, low, high = paired_bootstrap_difference([True, True, False, False], [True, True, True, False])
    assert (estimate, low, high) == (0.25, 0.0, 0.75)


def test_paired_difference_resamples_jointly() -> None:
    # Identical but varied cells: every joint resample differs by exactly 0. Independent
    # resampling of each cell would give a wide interval around 0.
    cells = [True, False, True, True, False, False, True, False]
    assert paired_bootstrap_difference(cells, cells) == (0.0, 0.0, 0.0)


def test_paired_difference_close_to_scipy_paired_bootstrap() -> None:
    rng = np.random.default_rng(7)
    a = (rng.random(150) < 0.6).tolist()
    b = [x if rng.random() < 0.8 else not x for x in a]
    expected = sps.bootstrap(
        (np.array(a, dtype=float), np.array(b, dtype=float)),
        lambda x, y, axis: np.mean(y, axis=axis) - np.mean(x, axis=axis),
        paired=True,
        method="percentile",
        n_resamples=4000,
        random_state=2,
    ).confidence_interval
    estimate, low, high = paired_bootstrap_difference(a, b)
    assert estimate == pytest.approx(sum(b) / 150 - sum(a) / 150, abs=1e-12)
    width = float(expected.high - expected.low)
    assert low == pytest.approx(float(expected.low), abs=0.1 * width)
    assert high == pytest.approx(float(expected.high), abs=0.1 * width)


def test_paired_difference_edges() -> None:
    assert all(math.isnan(x) for x in paired_bootstrap_difference([], []))
    assert paired_bootstrap_difference([False] * 3, [True] * 3) == (1.0, 1.0, 1.0)
    assert paired_bootstrap_difference([True] * 4, [True] * 4) == (0.0, 0.0, 0.0)
    with pytest.raises(ValueError):
        paired_bootstrap_difference([True, False], [True])


# --- mcnemar_exact -------------------------------------------------------------------------------


def test_mcnemar_hand_worked() -> None:
    # b=0, c=5: P(X = 0 | n=5, p=1/2) = 1/32; two-sided doubles it: 2/32 = 0.0625.
    assert mcnemar_exact(0, 5) == pytest.approx(0.0625, abs=1e-12)
    # b=1, c=9: P(X <= 1 | n=10) = (1 + 10)/1024; two-sided: 22/1024 = 0.021484375.
    assert mcnemar_exact(1, 9) == pytest.approx(0.021484375, abs=1e-12)
    assert mcnemar_exact(9, 1) == pytest.approx(0.021484375, abs=1e-12)


@pytest.mark.parametrize(("b", "c"), [(3, 8), (12, 5), (20, 20), (0, 1), (40, 61)])
def test_mcnemar_matches_binomial_tails(b: int, c: int) -> None:
    # Independent of binomtest: twice the smaller tail of Binomial(b + c, 1/2), capped at 1.
    n, k = b + c, min(b, c)
    expected = min(1.0, 2.0 * float(sps.binom.cdf(k, n, 0.5)))
    assert mcnemar_exact(b, c) == pytest.approx(expected, rel=1e-9)
    assert mcnemar_exact(b, c) == pytest.approx(float(sps.binomtest(b, n, 0.5).pvalue), rel=1e-12)


def test_mcnemar_no_discordant_pairs() -> None:
    result = mcnemar_exact(0, 0)
    assert result == 1.0 and type(result) is float
    with pytest.raises(ValueError):
        mcnemar_exact(-1, 3)


# --- holm_adjust ---------------------------------------------------------------------------------


def test_holm_hand_worked_with_ties() -> None:
    # m = 4. Sorted: 0.01 (x4 = 0.04), 0.03 (x3 = 0.09), 0.04 (x2 = 0.08), 0.04 (x1 = 0.04).
    # Running max: 0.04, 0.09, 0.09, 0.09. Back in input order: [0.04, 0.09, 0.09, 0.09].
    assert holm_adjust([0.01, 0.04, 0.04, 0.03]) == pytest.approx([0.04, 0.09, 0.09, 0.09], abs=1e-12)


def test_holm_monotone_and_capped() -> None:
    # m = 3, sorted 0.01, 0.02, 0.025 -> 0.03, 0.04, 0.025 -> running max 0.03, 0.04, 0.04.
    assert holm_adjust([0.025, 0.01, 0.02]) == pytest.approx([0.04, 0.03, 0.04], abs=1e-12)
    # m = 2: 0.6 x 2 = 1.2 capped to 1; then max(1, 0.7) = 1.
    assert holm_adjust([0.7, 0.6]) == [1.0, 1.0]
    # m = 2: 0.2 x 2 = 0.4, then 0.5 x 1 = 0.5.
    assert holm_adjust([0.5, 0.2]) == pytest.approx([0.5, 0.4], abs=1e-12)


def test_holm_edges() -> None:
    assert holm_adjust([]) == []
    assert holm_adjust([0.03]) == [0.03]
    with pytest.raises(ValueError):
        holm_adjust([0.1, math.nan])
    with pytest.raises(ValueError):
        holm_adjust([1.5])


# --- binomial_greater ----------------------------------------------------------------------------


def test_binomial_greater_hand_worked() -> None:
    # P(X >= 9 | n=10, p=1/2) = (C(10,9) + C(10,10)) / 1024 = 11/1024 = 0.0107421875.
    assert binomial_greater(9, 10, 0.5) == pytest.approx(0.0107421875, abs=1e-12)
    # P(X >= 2 | n=2, p=0.25) = 0.25^2 = 0.0625.
    assert binomial_greater(2, 2, 0.25) == pytest.approx(0.0625, abs=1e-12)


@pytest.mark.parametrize(("successes", "n", "p0"), [(30, 50, 0.5), (3, 40, 0.1), (77, 100, 0.8)])
def test_binomial_greater_matches_survival_function(successes: int, n: int, p0: float) -> None:
    # P(X >= k) = sf(k - 1), an independent route through scipy's binomial distribution.
    assert binomial_greater(successes, n, p0) == pytest.approx(float(sps.binom.sf(successes - 1, n, p0)))


def test_binomial_greater_edges() -> None:
    assert binomial_greater(0, 0, 0.5) == 1.0
    assert binomial_greater(0, 10, 0.3) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        binomial_greater(11, 10, 0.5)
    with pytest.raises(ValueError):
        binomial_greater(1, 10, 1.5)


# --- cohen_kappa ---------------------------------------------------------------------------------


def test_kappa_two_by_two_hand_worked() -> None:
    # Table (true rows, pred columns): yes/yes 20, yes/no 5, no/yes 10, no/no 15; n = 50.
    # p_o = (20 + 15)/50 = 0.7. True yes = 25, pred yes = 30.
    # p_e = (25/50)(30/50) + (25/50)(20/50) = 0.3 + 0.2 = 0.5. kappa = (0.7 - 0.5)/(1 - 0.5) = 0.4.
    y_true = ["yes"] * 25 + ["no"] * 25
    y_pred = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    assert cohen_kappa(y_true, y_pred) == pytest.approx(0.4, abs=1e-12)


def test_kappa_three_class_hand_worked() -> None:
    # Pairs: (a,a) (a,a) (a,b) (b,b) (b,c) (c,c); n = 6, agreements = 4, p_o = 4/6.
    # True counts a3 b2 c1, pred counts a2 b2 c2: p_e = (3*2 + 2*2 + 1*2)/36 = 12/36 = 1/3.
    # kappa = (2/3 - 1/3)/(1 - 1/3) = 0.5.
    assert cohen_kappa(list("aaabbc"), list("aabbcc")) == pytest.approx(0.5, abs=1e-12)


def test_kappa_edges() -> None:
    assert cohen_kappa([1, 0, 1, 0], [1, 0, 1, 0]) == 1.0
    # Systematic disagreement: p_o = 0, p_e = 0.5 -> -1.
    assert cohen_kappa([1, 0, 1, 0], [0, 1, 0, 1]) == -1.0
    # One class everywhere: p_e = 1, the documented convention gives 1.0 (not nan).
    assert cohen_kappa(["x"] * 5, ["x"] * 5) == 1.0
    # One class in the labels only: p_o = 3/4, p_e = 1 * 3/4, kappa = 0.
    assert cohen_kappa(["a"] * 4, ["a", "a", "b", "a"]) == 0.0
    assert math.isnan(cohen_kappa([], []))
    with pytest.raises(ValueError):
        cohen_kappa([1, 2], [1])


# --- matthews_corrcoef ---------------------------------------------------------------------------


def test_mcc_hand_worked() -> None:
    # tp=3, fp=1, tn=9, fn=7: numerator 3*9 - 1*7 = 20.
    # Margins 3+1=4, 3+7=10, 9+1=10, 9+7=16; sqrt(4*10*10*16) = sqrt(6400) = 80. MCC = 0.25.
    assert matthews_corrcoef(tp=3, fp=1, tn=9, fn=7) == pytest.approx(0.25, abs=1e-12)


def test_mcc_matches_pearson_on_expanded_labels() -> None:
    # MCC is the Pearson correlation of the 0/1 truth and prediction vectors.
    tp, fp, tn, fn = 17, 6, 23, 4
    truth = [1] * tp + [0] * fp + [0] * tn + [1] * fn
    pred = [1] * tp + [1] * fp + [0] * tn + [0] * fn
    expected = float(sps.pearsonr(truth, pred).statistic)
    assert matthews_corrcoef(tp, fp, tn, fn) == pytest.approx(expected, abs=1e-12)


def test_mcc_edges() -> None:
    assert matthews_corrcoef(5, 0, 5, 0) == pytest.approx(1.0)
    assert matthews_corrcoef(0, 5, 0, 5) == pytest.approx(-1.0)
    # Always predicts positive: tn + fn = 0, denominator 0 -> 0.0 by convention.
    assert matthews_corrcoef(tp=8, fp=2, tn=0, fn=0) == 0.0
    assert matthews_corrcoef(0, 0, 0, 0) == 0.0
    with pytest.raises(ValueError):
        matthews_corrcoef(1, -1, 1, 1)


# --- balanced_accuracy ---------------------------------------------------------------------------


def test_balanced_accuracy_hand_worked() -> None:
    # Recall on positives 8/(8+2) = 0.8; on negatives 3/(3+3) = 0.5; mean 0.65.
    assert balanced_accuracy(tp=8, fp=3, tn=3, fn=2) == pytest.approx(0.65, abs=1e-12)


def test_balanced_accuracy_one_class_present() -> None:
    # Positives only: recall 3/4; the absent negative class is left out of the mean.
    assert balanced_accuracy(tp=3, fp=0, tn=0, fn=1) == 0.75
    # Negatives only: specificity 2/(2+3) = 0.4.
    assert balanced_accuracy(tp=0, fp=3, tn=2, fn=0) == 0.4
    assert math.isnan(balanced_accuracy(0, 0, 0, 0))


# --- brier_score ---------------------------------------------------------------------------------


def test_brier_hand_worked() -> None:
    # (0.9 - 1)^2 + (0.2 - 0)^2 + (0.6 - 0)^2 = 0.01 + 0.04 + 0.36 = 0.41; / 3 = 0.136667.
    assert brier_score([0.9, 0.2, 0.6], [True, False, False]) == pytest.approx(0.41 / 3, abs=1e-12)


def test_brier_edges() -> None:
    assert math.isnan(brier_score([], []))
    assert brier_score([1.0, 0.0], [True, False]) == 0.0
    assert brier_score([0.0], [True]) == 1.0
    with pytest.raises(ValueError):
        brier_score([0.5], [True, False])
    with pytest.raises(ValueError):
        brier_score([1.2], [True])


# --- answer_entropy ------------------------------------------------------------------------------


def test_entropy_hand_worked() -> None:
    # p = 1/2, 1/4, 1/4: H = 0.5*1 + 0.25*2 + 0.25*2 = 1.5 bits.
    assert answer_entropy(["a", "a", "b", "c"]) == pytest.approx(1.5, abs=1e-12)
    # Four distinct answers equally often: log2(4) = 2 bits.
    assert answer_entropy(["w", "x", "y", "z"]) == pytest.approx(2.0, abs=1e-12)


def test_entropy_edges() -> None:
    same = answer_entropy(["42"] * 7)
    assert same == 0.0 and math.copysign(1.0, same) == 1.0 and type(same) is float
    assert answer_entropy([]) == 0.0


# --- sample sizes --------------------------------------------------------------------------------


def test_mcnemar_sample_size_connor_hand_worked() -> None:
    # p10 = 0.2, p01 = 0.1: pd = 0.3, delta = 0.1; z_0.975 = 1.959964, z_0.8 = 0.841621.
    # 1.959964 * sqrt(0.3) = 1.959964 * 0.547723 = 1.073516
    # 0.841621 * sqrt(0.3 - 0.01) = 0.841621 * 0.538516 = 0.453225
    # ((1.073516 + 0.453225) / 0.1)^2 = 15.26741^2 = 233.09 -> 234.
    assert mcnemar_sample_size(0.2, 0.1) == 234
    # The sign of delta does not matter.
    assert mcnemar_sample_size(0.1, 0.2) == 234


def test_mcnemar_sample_size_edges() -> None:
    assert mcnemar_sample_size(0.15, 0.15) is None
    # More power needs more items.
    assert (mcnemar_sample_size(0.2, 0.1, power=0.9) or 0) > 234
    with pytest.raises(ValueError):
        mcnemar_sample_size(0.7, 0.5)
    with pytest.raises(ValueError):
        mcnemar_sample_size(0.2, 0.1, alpha=0.0)


def test_two_proportion_sample_size_hand_worked() -> None:
    # p1 = 0.5, p2 = 0.6: p_bar = 0.55, 2 * 0.55 * 0.45 = 0.495; 0.25 + 0.24 = 0.49.
    # 1.959964 * sqrt(0.495) = 1.959964 * 0.703562 = 1.378956
    # 0.841621 * sqrt(0.49)  = 0.841621 * 0.7      = 0.589135
    # (1.378956 + 0.589135)^2 / 0.01 = 1.968091^2 / 0.01 = 387.34 -> 388 per group.
    assert two_proportion_sample_size(0.5, 0.6) == 388
    assert two_proportion_sample_size(0.6, 0.5) == 388


def test_two_proportion_sample_size_edges() -> None:
    assert two_proportion_sample_size(0.3, 0.3) is None
    # Smaller alpha needs more items.
    assert (two_proportion_sample_size(0.5, 0.6, alpha=0.01) or 0) > 388
    with pytest.raises(ValueError):
        two_proportion_sample_size(-0.1, 0.5)


# --- summarize_runs ------------------------------------------------------------------------------


def test_summarize_runs_hand_worked() -> None:
    # Mean 0.7; squared deviations 0.04, 0, 0.04; sample variance 0.08 / 2 = 0.04; std 0.2.
    summary = summarize_runs([0.5, 0.9, 0.7])
    assert summary.mean == pytest.approx(0.7, abs=1e-12)
    assert summary.std == pytest.approx(0.2, abs=1e-12)
    assert (summary.worst, summary.best, summary.n) == (0.5, 0.9, 3)


def test_summarize_runs_matches_numpy() -> None:
    values = [0.61, 0.58, 0.66, 0.60, 0.63]
    summary = summarize_runs(values)
    assert summary.std == pytest.approx(float(np.std(values, ddof=1)), abs=1e-12)
    assert summary.mean == pytest.approx(float(np.mean(values)), abs=1e-12)


def test_summarize_runs_edges() -> None:
    assert summarize_runs([0.4]) == RunSummary(mean=0.4, std=0.0, worst=0.4, best=0.4, n=1)
    empty = summarize_runs([])
    assert empty.n == 0 and math.isnan(empty.mean) and math.isnan(empty.std)
    with pytest.raises(dataclasses.FrozenInstanceError):
        empty.n = 1  # type: ignore[misc]


# --- plain Python return types -------------------------------------------------------------------


def test_results_are_plain_python_numbers() -> None:
    values: list[object] = [
        *wilson_interval(3, 9),
        *bootstrap_mean_interval([0.2, 0.4, 0.9]),
        *paired_bootstrap_difference([True, False, True], [True, True, False]),
        mcnemar_exact(2, 7),
        *holm_adjust([0.2, 0.01]),
        binomial_greater(6, 9, 0.5),
        cohen_kappa([1, 0, 1], [1, 1, 1]),
        matthews_corrcoef(3, 1, 9, 7),
        balanced_accuracy(3, 1, 9, 7),
        brier_score([0.3], [False]),
        answer_entropy(["a", "b"]),
    ]
    assert all(type(v) is float for v in values)
    assert type(mcnemar_sample_size(0.2, 0.1)) is int
    assert type(two_proportion_sample_size(0.5, 0.6)) is int
    summary = summarize_runs([0.1, 0.2])
    assert all(type(getattr(summary, f)) is float for f in ("mean", "std", "worst", "best"))


def test_exact_binomial_tests_match_scipy_over_a_grid() -> None:
    # The runner computes these without scipy (import cost); scipy is the independent reference.
    from scipy.stats import binomtest

    for n in (1, 2, 5, 12, 20, 37, 100, 400):
        for k in sorted({0, 1, n // 3, n // 2, n - 1, n}):
            for p0 in (0.05, 0.3, 0.5, 0.77, 0.95):
                want = binomtest(k, n, p0, alternative="greater").pvalue
                assert binomial_greater(k, n, p0) == pytest.approx(want, rel=1e-9, abs=1e-300)
            b, c = k, n - k
            assert mcnemar_exact(b, c) == pytest.approx(binomtest(b, n, 0.5).pvalue, rel=1e-9, abs=1e-300)
