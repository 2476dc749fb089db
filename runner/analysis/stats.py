"""Statistics for comparing experiment cells: intervals, paired tests, agreement, power.

Pure functions with no I/O. Every function returns plain Python numbers (never numpy scalars) so
results can go straight into JSON, YAML or tabulate without surprises.

Conventions for degenerate inputs are chosen so that a report never crashes on an empty or
one-class cell; each is stated in the function's docstring.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import numpy.typing as npt

# Bootstrap resamples are drawn in blocks so memory stays bounded for large item counts.
_BOOTSTRAP_BLOCK_CELLS = 4_000_000
_GATHER_ROWS = 64


# --- validation helpers --------------------------------------------------------------------------


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be strictly between 0 and 1, got {confidence}")


def _check_probability(name: str, value: float) -> None:
    # `not (0 <= x <= 1)` also rejects NaN, which a plain range check would let through.
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be between 0 and 1, got {value}")


def _check_counts(**counts: int) -> None:
    for name, value in counts.items():
        if value < 0:
            raise ValueError(f"{name} must be non-negative, got {value}")


def _check_same_length(a: Sequence[object], b: Sequence[object], what: str) -> None:
    if len(a) != len(b):
        raise ValueError(f"{what} must have the same length, got {len(a)} and {len(b)}")


def _z(quantile: float) -> float:
    # The standard library's inverse normal (Wichura's AS241, as scipy's ndtri): importing scipy.stats
    # costs the read verbs 0.6 s; tests check these functions against scipy.
    return NormalDist().inv_cdf(quantile)


# --- intervals -----------------------------------------------------------------------------------


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion.

    Preferred over the Wald interval because it stays inside [0, 1] and keeps close to nominal
    coverage for small n and for rates near 0 or 1, which is where LLM accuracies often sit.
    With n == 0 nothing is known, so the whole range (0.0, 1.0) is returned.
    """
    _check_counts(successes=successes, n=n)
    if successes > n:
        raise ValueError(f"successes ({successes}) cannot exceed n ({n})")
    _check_confidence(confidence)
    if n == 0:
        return (0.0, 1.0)
    z = _z(1.0 - (1.0 - confidence) / 2.0)
    p = successes / n
    z2_n = z * z / n
    denominator = 1.0 + z2_n
    center = (p + z2_n / 2.0) / denominator
    half_width = z * math.sqrt(p * (1.0 - p) / n + z2_n / (4.0 * n)) / denominator
    # At successes == 0 (or n) the lower (upper) bound is exactly 0 (1) in exact arithmetic, but
    # floating point lands an ulp off, which would print as 0.9999999999999999.
    low = 0.0 if successes == 0 else center - half_width
    high = 1.0 if successes == n else center + half_width
    return (low, high)


# A bootstrap's draws depend only on (n, resamples, seed, block): every interval of a report over the
# same number of items draws the same indices (a report of 5,000 items asks for a dozen), so they are
# drawn once and kept, as 16-bit indices (20 MB at 5,000 items), for the last such key. The same indices
# in the same order give the same sums, bit for bit.
_DRAWS_MAX_BYTES = 24_000_000
_kept_draws: dict[tuple[int, int, int, int], list[npt.NDArray[np.uint16]]] = {}


def bootstrap_draws(n: int, resamples: int, seed: int, block: int) -> Iterable[npt.NDArray[np.integer]]:
    """`resamples` rows of n indices below n, in blocks of `block` rows: what `rng.integers(0, n, (rows,
    n))` gives block after block from `default_rng(seed)`, kept for the next caller with the same key,
    or (too many to keep) drawn block by block as they are asked for."""
    key = (n, resamples, seed, block)
    kept = _kept_draws.get(key)
    if kept is not None:
        return kept
    rng = np.random.default_rng(seed)
    starts = range(0, resamples, block)
    if n > np.iinfo(np.uint16).max or resamples * n * 2 > _DRAWS_MAX_BYTES:
        return (rng.integers(0, n, size=(min(block, resamples - start), n)) for start in starts)
    _kept_draws.clear()
    # Each block converted as soon as it is drawn: one block of 64-bit indices alive at a time.
    _kept_draws[key] = kept = [rng.integers(0, n, size=(min(block, resamples - start), n)).astype(np.uint16)
                               for start in starts]
    return kept


# The kept draws as counts: block by block, how many times each index is drawn in each row (uint16, as
# large as the draws), for the same key as the draws kept.
_kept_counts: dict[tuple[int, int, int, int], list[npt.NDArray[np.uint16]]] = {}


def bootstrap_counts(n: int, resamples: int, seed: int, block: int) -> list[npt.NDArray[np.uint16]] | None:
    """`bootstrap_draws(n, resamples, seed, block)` block by block as counts: row r of a block, how many
    times that row draws each index below n (a sum over the row's draws is `counts @ values`); None
    where the draws are too many to keep. Counted once for every interval over the same items: a
    report's intervals over 1,250 items each counted the same 2,000 x 1,250 draws again."""
    key = (n, resamples, seed, block)
    kept = _kept_counts.get(key)
    if kept is not None:
        return kept
    draws = bootstrap_draws(n, resamples, seed, block)
    if not isinstance(draws, list):
        return None  # drawn block by block, not kept: counting them would keep as much
    offsets = (np.arange(block, dtype=np.int64) * n)[:, None]
    kept = [np.bincount((picks + offsets[:len(picks)]).ravel(), minlength=len(picks) * n)
            .reshape(len(picks), n).astype(np.uint16) for picks in draws]  # a count is at most n <= 65,535
    _kept_counts.clear()
    _kept_counts[key] = kept
    return kept


def _bootstrap_means(values: npt.NDArray[np.float64], resamples: int, seed: int) -> npt.NDArray[np.float64]:
    n = len(values)
    block = max(1, _BOOTSTRAP_BLOCK_CELLS // n)
    means: list[npt.NDArray[np.float64]] = []
    for indices in bootstrap_draws(n, resamples, seed, block):
        # Gathered a few rows at a time (each row's mean is its own): the whole block's gather was as
        # large again as its indices, 32 MB at 5,000 items. The block itself is not made smaller, since
        # its size decides how the generator's stream is cut into draws.
        for first in range(0, len(indices), _GATHER_ROWS):
            # np.take: the same gather as indexing, without converting the 16-bit draws (1.7x faster).
            means.append(np.take(values, indices[first:first + _GATHER_ROWS]).mean(axis=1))
        del indices  # before the next block's are drawn: two blocks at once were 64 MB at 5,000 items
    return np.concatenate(means)


def _percentile_interval(samples: npt.NDArray[np.float64], confidence: float) -> tuple[float, float]:
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(samples, [tail, 1.0 - tail])
    return (float(low), float(high))


def _check_resamples(resamples: int) -> None:
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples}")


def bootstrap_mean_interval(
    values: Sequence[float], confidence: float = 0.95, resamples: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval for the mean, reproducible through `seed`.

    Empty input has no mean, so (nan, nan). Constant input (including a single value) returns
    (v, v) directly: resampling cannot vary it, and summing floats could otherwise drift by an ulp.
    """
    _check_confidence(confidence)
    _check_resamples(resamples)
    if len(values) == 0:
        return (math.nan, math.nan)
    if all(v == values[0] for v in values):
        only = float(values[0])
        return (only, only)
    samples = _bootstrap_means(np.asarray(values, dtype=np.float64), resamples, seed)
    return _percentile_interval(samples, confidence)


def paired_bootstrap_difference(
    a: Sequence[bool], b: Sequence[bool], confidence: float = 0.95, resamples: int = 2000, seed: int = 0
) -> tuple[float, float, float]:
    """Difference in accuracy `mean(b) - mean(a)` with a paired percentile bootstrap interval.

    Items are resampled jointly (the same indices for a and b), so the interval reflects that both
    cells answered the same questions; resampling each cell independently would overstate the
    uncertainty. Resampling item indices jointly is the same as bootstrapping the mean of the
    per-item differences b_i - a_i, which is how it is computed. Empty input -> (nan, nan, nan).
    """
    _check_same_length(a, b, "a and b")
    _check_confidence(confidence)
    _check_resamples(resamples)
    n = len(a)
    if n == 0:
        return (math.nan, math.nan, math.nan)
    differences = [int(bool(y)) - int(bool(x)) for x, y in zip(a, b, strict=True)]
    # Differences are small integers, so sums are exact and a constant difference gives a
    # zero-width interval equal to the estimate without special-casing.
    estimate = sum(differences) / n
    samples = _bootstrap_means(np.asarray(differences, dtype=np.float64), resamples, seed)
    low, high = _percentile_interval(samples, confidence)
    return (estimate, low, high)


# --- hypothesis tests ----------------------------------------------------------------------------


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts b and c.

    Under the null each discordant pair is equally likely to go either way, so the p-value is the
    two-sided binomial test of b successes in b + c trials at p = 0.5. With no discordant pairs
    there is no evidence of a difference: 1.0.
    """
    _check_counts(b=b, c=c)
    if b + c == 0:
        return 1.0
    # Symmetric at p = 0.5: the two-sided p is twice the smaller tail, summed in exact integers (each
    # binomial coefficient from the previous one, so the sum is linear in k).
    n, k = b + c, min(b, c)
    term = total = 1
    for i in range(k):
        term = term * (n - i) // (i + 1)
        total += term
    return min(1.0, float(2 * total / 2**n))


def binomial_greater(successes: int, n: int, p0: float) -> float:
    """Exact one-sided p-value for "the success rate is greater than p0".

    n == 0 gives 1.0: no trials are no evidence against the null.
    """
    _check_counts(successes=successes, n=n)
    if successes > n:
        raise ValueError(f"successes ({successes}) cannot exceed n ({n})")
    _check_probability("p0", p0)
    if n == 0 or successes == 0:
        return 1.0
    if p0 == 0.0:
        return 0.0
    if p0 == 1.0:
        return 1.0 if successes <= n else 0.0
    # P(X >= successes) summed in log space, so large n neither underflows nor overflows.
    log_p, log_q = math.log(p0), math.log1p(-p0)
    terms = [math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1) + k * log_p + (n - k) * log_q
             for k in range(successes, n + 1)]
    top = max(terms)
    return min(1.0, math.exp(top) * math.fsum(math.exp(t - top) for t in terms))


def holm_adjust(pvalues: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, returned in the input order.

    Sorted ascending, the i-th smallest (0-based) is multiplied by (m - i); a running maximum keeps
    the adjusted values monotone in the raw ones, and they are capped at 1. Tied raw p-values
    always get the same adjusted value. Rejecting adjusted p <= alpha controls the family-wise
    error rate at alpha.
    """
    for p in pvalues:
        _check_probability("p-value", p)
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted = [0.0] * m
    running_max = 0.0
    for rank, index in enumerate(order):
        running_max = max(running_max, min(1.0, (m - rank) * pvalues[index]))
        adjusted[index] = running_max
    return adjusted


# --- classification and agreement ----------------------------------------------------------------


def cohen_kappa(y_true: Sequence[Hashable], y_pred: Sequence[Hashable]) -> float:
    """Cohen's kappa: agreement between two labelings, corrected for chance agreement.

    kappa = (p_o - p_e) / (1 - p_e), computed from integer counts so it is exact.

    Convention: when the expected agreement p_e is 1 (both labelings use one and the same label
    everywhere) kappa is 0/0; we return 1.0 if the observed agreement is 1 (a judge that agrees
    perfectly should not score nan) and 0.0 otherwise. scikit-learn returns nan here instead.
    Empty input -> nan.
    """
    _check_same_length(y_true, y_pred, "y_true and y_pred")
    n = len(y_true)
    if n == 0:
        return math.nan
    agree = sum(1 for t, p in zip(y_true, y_pred, strict=True) if t == p)
    true_counts = Counter(y_true)
    pred_counts = Counter(y_pred)
    # Scaled by n^2: p_o = agree / n and p_e = chance / n^2.
    chance = sum(count * pred_counts[label] for label, count in true_counts.items())
    denominator = n * n - chance
    if denominator == 0:
        return 1.0 if agree == n else 0.0
    return (n * agree - chance) / denominator


def matthews_corrcoef(tp: int, fp: int, tn: int, fn: int) -> float:
    """Matthews correlation coefficient of a binary confusion matrix.

    MCC = (tp*tn - fp*fn) / sqrt((tp+fp)(tp+fn)(tn+fp)(tn+fn)).

    Convention: when any margin is empty the denominator is 0 and MCC is undefined; we return 0.0,
    as scikit-learn does (a classifier that predicts one class only carries no correlation).
    """
    _check_counts(tp=tp, fp=fp, tn=tn, fn=fn)
    # Square roots of pairs rather than of the four-way product, which can be very large.
    denominator = math.sqrt((tp + fp) * (tp + fn)) * math.sqrt((tn + fp) * (tn + fn))
    if denominator == 0.0:
        return 0.0
    return (tp * tn - fp * fn) / denominator


def balanced_accuracy(tp: int, fp: int, tn: int, fn: int) -> float:
    """Mean of the recalls of the classes that occur in the labels.

    Positives in the labels are tp + fn, negatives tn + fp. A class absent from the labels has no
    recall, so it is left out of the mean rather than counted as 0 or 1: with one class present
    the result is that class's recall. With no labels at all -> nan.
    """
    _check_counts(tp=tp, fp=fp, tn=tn, fn=fn)
    recalls = [hits / total for hits, total in ((tp, tp + fn), (tn, tn + fp)) if total > 0]
    if not recalls:
        return math.nan
    return sum(recalls) / len(recalls)


def brier_score(probabilities: Sequence[float], outcomes: Sequence[bool]) -> float:
    """Mean squared error between predicted probabilities and 0/1 outcomes; empty -> nan."""
    _check_same_length(probabilities, outcomes, "probabilities and outcomes")
    for p in probabilities:
        _check_probability("probability", p)
    if len(probabilities) == 0:
        return math.nan
    squared = [(p - float(bool(o))) ** 2 for p, o in zip(probabilities, outcomes, strict=True)]
    return math.fsum(squared) / len(squared)


def answer_entropy(answers: Sequence[Hashable]) -> float:
    """Shannon entropy, in bits, of the distribution of distinct answers.

    0.0 means every answer was the same (fully consistent); log2(k) means k answers equally often.
    An empty list has no spread, so 0.0.
    """
    if len(answers) == 0:
        return 0.0
    # In plain Python, the way scipy.stats.entropy computes it (-sum p ln p, over ln 2): this runs
    # once per item per cell, and scipy's per-call overhead made it most of a report's time.
    counts = Counter(answers).values()
    total = sum(counts)
    return -sum((c / total) * math.log(c / total) for c in counts) / math.log(2) + 0.0


# --- sample size ---------------------------------------------------------------------------------


def _check_alpha_power(alpha: float, power: float) -> None:
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be strictly between 0 and 1, got {alpha}")
    if not 0.0 < power < 1.0:
        raise ValueError(f"power must be strictly between 0 and 1, got {power}")


def mcnemar_sample_size(p10: float, p01: float, alpha: float = 0.05, power: float = 0.8) -> int | None:
    """Paired items needed to detect a difference with a two-sided McNemar test.

    Connor's normal-approximation formula (R. J. Connor, "Sample size for testing differences in
    proportions for the paired-sample design", Biometrics 43(1):207-211, 1987):

        pd    = p10 + p01          (probability an item is discordant)
        delta = p10 - p01          (difference in accuracy between the two cells)
        n     = ((z_{1-alpha/2} * sqrt(pd) + z_{power} * sqrt(pd - delta^2)) / delta)^2

    rounded up. p10 and p01 are the expected proportions of items where only the first, or only
    the second, cell is right. delta == 0 -> None: there is no difference to detect.
    """
    _check_probability("p10", p10)
    _check_probability("p01", p01)
    _check_probability("p10 + p01", p10 + p01)
    _check_alpha_power(alpha, power)
    discordant = p10 + p01
    delta = p10 - p01
    if delta == 0.0:
        return None
    z_alpha = _z(1.0 - alpha / 2.0)
    z_power = _z(power)
    root = z_alpha * math.sqrt(discordant) + z_power * math.sqrt(discordant - delta * delta)
    return math.ceil((root / delta) ** 2)


def two_proportion_sample_size(p1: float, p2: float, alpha: float = 0.05, power: float = 0.8) -> int | None:
    """Items per group needed to detect p1 != p2 with two independent groups (two-sided test).

    The standard normal-approximation formula without continuity correction (Fleiss, Levin & Paik,
    "Statistical Methods for Rates and Proportions", 3rd ed., 2003, ch. 4; the same expression
    R's power.prop.test solves):

        p_bar = (p1 + p2) / 2
        n     = (z_{1-alpha/2} * sqrt(2 p_bar (1 - p_bar)) + z_{power} * sqrt(p1 (1-p1) + p2 (1-p2)))^2
                / (p1 - p2)^2

    rounded up. p1 == p2 -> None: there is no difference to detect.
    """
    _check_probability("p1", p1)
    _check_probability("p2", p2)
    _check_alpha_power(alpha, power)
    if p1 == p2:
        return None
    p_bar = (p1 + p2) / 2.0
    z_alpha = _z(1.0 - alpha / 2.0)
    z_power = _z(power)
    root = z_alpha * math.sqrt(2.0 * p_bar * (1.0 - p_bar)) + z_power * math.sqrt(
        p1 * (1.0 - p1) + p2 * (1.0 - p2)
    )
    return math.ceil((root / (p1 - p2)) ** 2)


# --- run summaries -------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunSummary:
    """Spread of one cell's accuracy over repeated runs (e.g. different seeds)."""

    mean: float
    std: float
    worst: float
    best: float
    n: int


def summarize_runs(accuracies: Sequence[float]) -> RunSummary:
    """Mean, sample standard deviation (ddof=1), worst and best of repeated-run accuracies.

    One run has no spread to estimate, so std is 0.0; no runs give nan everywhere and n == 0.
    """
    n = len(accuracies)
    if n == 0:
        return RunSummary(mean=math.nan, std=math.nan, worst=math.nan, best=math.nan, n=0)
    values = [float(a) for a in accuracies]
    std = statistics.stdev(values) if n > 1 else 0.0
    return RunSummary(mean=statistics.fmean(values), std=std, worst=min(values), best=max(values), n=n)
