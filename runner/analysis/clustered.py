"""Statistics whose unit is the item: repeats of one item are not independent trials.

A rate over jobs with repeats is a ratio estimator, sum(a_i) / sum(b_i) over items i (a_i: the
item's successes, b_i: its trials). Its variance is estimated with the cluster-robust (CR1)
formula, clusters being items, as statsmodels' `cov_type="cluster"` and inspect_ai's
`stderr(cluster=...)` do:

    V = G / (G - 1) * sum_i (a_i - r * b_i)^2 / (sum_i b_i)^2,   r = sum a_i / sum b_i

The interval is then Wilson's at the effective sample size n_eff = r (1 - r) / V (the design
effect, as in Korn and Graubard 1998 for survey proportions), so it stays inside [0, 1] and
comes to about the number of items (G - 1, from CR1's G/(G - 1)) when every repeat of an item gives
the same answer. Where each item was
asked once the plain Wilson interval over the jobs is used. Where the variance cannot be
estimated, or rests on fewer than 5 items showing the rarer outcome (one item right once in 20
repeats, all others never), n_eff is the number of items: the repeats are taken to add nothing.

Metrics that are not ratios of counts (F1, kappa, MCC, balanced accuracy, agreement) get a
percentile bootstrap over items: whole items are resampled with all their repeats, with a fixed
seed so a report is the same every time it is printed. Below MIN_BOOTSTRAP_ITEMS items there is no
bootstrap interval at all (and so no value shown in a report, nor a verdict): over n items a
resample has few distinct outcomes (two items at 0.5 and 0.6 give exactly [0.50, 0.60]), so the
percentile interval is far narrower than the uncertainty, and F1, kappa, MCC and balanced accuracy
have no per-item values a small-sample (t) interval could be taken over instead.

`items_to_decide` answers "how many items would settle this verdict": the smallest n for which an
exact one-sided binomial test against the threshold, at the observed rate, has 80% power.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import numpy.typing as npt

from runner.analysis.stats import bootstrap_counts, bootstrap_draws, wilson_interval

MIN_ITEMS_WITH = 5  # items showing the rarer outcome needed before repeats may narrow an interval
MIN_BOOTSTRAP_ITEMS = 10  # items below which a percentile bootstrap interval is not given (see above)
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 20261201


@dataclass(frozen=True)
class ClusteredRate:
    value: float  # sum(a) / sum(b); nan when there are no trials
    low: float
    high: float
    n_items: int  # items with at least one trial
    n_jobs: int  # trials (sum of b)
    n_eff: float  # independent trials the interval is worth
    method: str  # "wilson" (each item once), "cluster" (CR1 design effect), "items" (no variance estimate)

    @property
    def repeats(self) -> float:
        return self.n_jobs / self.n_items if self.n_items else 0.0


def _wilson_at(p: float, n: float, confidence: float) -> tuple[float, float]:
    """Wilson's interval for a proportion p observed over n (possibly fractional) trials."""
    z = NormalDist().inv_cdf(1.0 - (1.0 - confidence) / 2.0)
    z2_n = z * z / n
    denominator = 1.0 + z2_n
    center = (p + z2_n / 2.0) / denominator
    half = z * math.sqrt(p * (1.0 - p) / n + z2_n / (4.0 * n)) / denominator
    return (0.0 if p == 0 else max(0.0, center - half), 1.0 if p == 1 else min(1.0, center + half))


def cluster_variance(a: Sequence[float], b: Sequence[float]) -> float:
    """CR1 cluster-robust variance of the ratio sum(a) / sum(b); nan with fewer than two clusters."""
    pairs = [(x, y) for x, y in zip(a, b, strict=True) if y > 0]
    g = len(pairs)
    total = sum(y for _, y in pairs)
    if g < 2 or total == 0:
        return math.nan
    r = sum(x for x, _ in pairs) / total
    return g / (g - 1) * math.fsum((x - r * y) ** 2 for x, y in pairs) / total**2


def clustered_rate(a: Sequence[int], b: Sequence[int], confidence: float = 0.95) -> ClusteredRate:
    """The rate sum(a) / sum(b) over items, with an interval that treats the item as the unit."""
    pairs = [(x, y) for x, y in zip(a, b, strict=True) if y > 0]
    g = len(pairs)
    n = sum(y for _, y in pairs)
    k = sum(x for x, _ in pairs)
    if n == 0:
        return ClusteredRate(math.nan, 0.0, 1.0, 0, 0, 0.0, "wilson")
    r = k / n
    if all(y == 1 for _, y in pairs):
        low, high = wilson_interval(k, n, confidence)
        return ClusteredRate(r, low, high, g, n, float(n), "wilson")
    variance = cluster_variance([x for x, _ in pairs], [y for _, y in pairs])
    # The items that carry the rarer outcome: a variance estimated from fewer than MIN_ITEMS_WITH of
    # them is not to be trusted (one item with one success in twenty would make 400 answers worth
    # 399 independent ones), so the repeats are then taken to add nothing.
    carriers = sum(1 for x, y in pairs if (x > 0 if r <= 0.5 else x < y))
    if math.isnan(variance) or variance == 0:
        n_eff, method = float(g), "items"
    elif carriers < MIN_ITEMS_WITH:
        # Never more than the items; less where the variance, unreliable as it is, says so (items
        # with very different numbers of trials, as precision's denominators are).
        n_eff, method = min(float(g), r * (1 - r) / variance), "items"
    else:
        # More independent information than there are jobs is not believable; cap there.
        n_eff, method = min(float(n), r * (1 - r) / variance), "cluster"
    low, high = _wilson_at(r, n_eff, confidence)
    return ClusteredRate(r, low, high, g, n, n_eff, method)


# --- bootstrap over items ----------------------------------------------------------------------


ItemStat = Callable[[npt.NDArray[np.float64]], npt.NDArray[np.float64]]


def item_bootstrap(columns: npt.NDArray[np.float64], statistic: ItemStat, confidence: float = 0.95,
                   resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED) -> tuple[float, float]:
    """Percentile interval of `statistic` over resampled items.

    `columns` has one row per item (e.g. its tp, fp, tn, fn counts over all its repeats);
    `statistic` maps an array of shape (resamples, k) of summed columns to (resamples,) values.
    Resamples whose statistic is undefined (nan) are dropped; none defined, or fewer than
    MIN_BOOTSTRAP_ITEMS items, gives (nan, nan)."""
    g = len(columns)
    if g < MIN_BOOTSTRAP_ITEMS:
        return (math.nan, math.nan)
    sums = np.empty((resamples, columns.shape[1]))
    block = max(1, 200_000 // g)
    # Counts (the usual case) are summed a column at a time: a contiguous sum, 3x faster than reducing
    # the middle axis of the (rows, items, columns) gather, and the same numbers, since sums of whole
    # numbers are exact in any order. Fractions keep the one order they were always summed in.
    whole = bool(np.all(columns == np.round(columns)))
    # Whole numbers are summed as (times each item was drawn) @ columns: one bincount of the draws and a
    # matrix product instead of one gather per column (2-3x faster on 5,000 items). Every partial sum is
    # a whole number below 2**53, so exact in any order: the same sums as before, bit for bit.
    exact = whole and g > 0 and float(np.abs(columns).max()) * g * g < 2.0 ** 53
    offsets = (np.arange(block, dtype=np.int64) * g)[:, None]
    # The gathers below are np.take, not indexing: the same values in the same order, without fancy
    # indexing's conversion of the 16-bit draws (1.4-1.8x faster a gather).
    # Fractions are summed item after item: that is the order numpy's reduction over the middle axis of
    # the (rows, items, columns) gather adds them in, for two or more columns, and the order of a running
    # sum (np.cumsum), whose last column is then the same number, bit for bit, at a third of the cost.
    running = not whole and columns.shape[1] >= 2
    by_column = [np.ascontiguousarray(columns[:, c]) for c in range(columns.shape[1])] \
        if (whole and not exact) or running else []
    column_whole = [bool(np.all(column == np.round(column))) and float(np.abs(column).max()) * g < 2.0 ** 53
                    for column in by_column]
    # The draws' counts, where they are kept, are counted once for all of a report's intervals over these
    # items (`bootstrap_counts`): the same counts, so the same products, as counting them here.
    counted = bootstrap_counts(g, resamples, seed, block) if exact else None
    if counted is not None:
        for start, times in zip(range(0, resamples, block), counted, strict=True):
            sums[start:start + len(times)] = times.astype(np.float64) @ columns
    else:
        for start, picks in zip(range(0, resamples, block), bootstrap_draws(g, resamples, seed, block),
                                strict=True):
            rows = len(picks)
            if exact:
                drawn = np.bincount((picks + offsets[:rows]).ravel(), minlength=rows * g).reshape(rows, g)
                sums[start:start + rows] = drawn.astype(np.float64) @ columns
            elif whole:
                for c, column in enumerate(by_column):
                    sums[start:start + rows, c] = np.take(column, picks).sum(axis=1)
            elif running:
                for c, column in enumerate(by_column):
                    gathered = np.take(column, picks)
                    # A column of whole numbers (mean_of's counts) sums exactly in any order: the faster sum.
                    sums[start:start + rows, c] = gathered.sum(axis=1) if column_whole[c] \
                        else np.cumsum(gathered, axis=1)[:, -1]
            else:
                sums[start:start + rows] = np.take(columns, picks, axis=0).sum(axis=1)
    values = statistic(sums)
    values = values[~np.isnan(values)]
    if len(values) == 0:
        return (math.nan, math.nan)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(values, [tail, 1.0 - tail])
    return (float(low), float(high))


def f1_of(s: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Columns tp, fp, fn, unanswered positives (a positive item not answered is a miss)."""
    tp, fp, fn, un = s[:, 0], s[:, 1], s[:, 2], s[:, 3]
    denom = 2 * tp + fp + fn + un
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, 2 * tp / denom, np.nan)


def balanced_accuracy_of(s: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Columns tp, fp, tn, fn, unanswered positives, unanswered negatives."""
    tp, fp, tn, fn, up, un = (s[:, i] for i in range(6))
    pos, neg = tp + fn + up, tn + fp + un
    with np.errstate(invalid="ignore", divide="ignore"):
        rp = np.where(pos > 0, tp / pos, np.nan)
        rn = np.where(neg > 0, tn / neg, np.nan)
    both = np.stack([rp, rn])
    with np.errstate(invalid="ignore"):
        counts = (~np.isnan(both)).sum(axis=0)
        return np.where(counts > 0, np.nansum(both, axis=0) / np.maximum(counts, 1), np.nan)


def kappa_of(s: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Columns tp, fp, tn, fn; undefined (nan) where either side uses only one class."""
    tp, fp, tn, fn = (s[:, i] for i in range(4))
    n = tp + fp + tn + fn
    with np.errstate(invalid="ignore", divide="ignore"):
        po = (tp + tn) / n
        pe = ((tp + fp) * (tp + fn) + (tn + fn) * (tn + fp)) / (n * n)
        kappa = (po - pe) / (1 - pe)
    return np.where(_both_classes(tp, fp, tn, fn), kappa, np.nan)


def mcc_of(s: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    tp, fp, tn, fn = (s[:, i] for i in range(4))
    denom = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    with np.errstate(invalid="ignore", divide="ignore"):
        mcc = (tp * tn - fp * fn) / denom
    return np.where(_both_classes(tp, fp, tn, fn), mcc, np.nan)


def _both_classes(tp: npt.NDArray[np.float64], fp: npt.NDArray[np.float64], tn: npt.NDArray[np.float64],
                  fn: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
    """Both labels and both answers occur: otherwise kappa and MCC say nothing (0/0, or 1.00 for
    two constant labelings that happen to agree)."""
    result: npt.NDArray[np.bool_] = (tp + fn > 0) & (tn + fp > 0) & (tp + fp > 0) & (tn + fn > 0)
    return result


def mean_of(s: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Columns: the item's value, 1 (so the sum of column 1 counts the items resampled)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(s[:, 1] > 0, s[:, 0] / s[:, 1], np.nan)


# --- how many items would decide a verdict ------------------------------------------------------


def _log_pmf(k: int, n: int, log_p: float, log_q: float) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1) + k * log_p + (n - k) * log_q


def _power(n: int, threshold: float, observed: float, alpha: float) -> float:
    """Power of the exact one-sided binomial test of `threshold` at n trials, if the rate is `observed`."""
    above = observed > threshold
    lt, lq = math.log(threshold), math.log1p(-threshold)
    # The critical count: the most extreme k whose tail under the threshold stays within alpha.
    ks = range(n, -1, -1) if above else range(0, n + 1)
    tail, critical = 0.0, None
    for k in ks:
        tail += math.exp(_log_pmf(k, n, lt, lq))
        if tail > alpha * (1 + 1e-9):  # a tail of exactly alpha still rejects, whatever the rounding
            break
        critical = k
    if critical is None:
        return 0.0
    lo, lq2 = math.log(observed), math.log1p(-observed)
    region = range(critical, n + 1) if above else range(0, critical + 1)
    return math.fsum(math.exp(_log_pmf(k, n, lo, lq2)) for k in region)


def items_to_decide(observed: float, threshold: float, *, alpha: float = 0.05, power: float = 0.8,
                    limit: int = 10_000) -> int | None:
    """The smallest n at which an exact one-sided binomial test separates `observed` from `threshold`
    with the given power; None when they are equal or it would take more than `limit`."""
    if not 0 < threshold < 1 or observed == threshold or math.isnan(observed):
        return None
    observed = min(max(observed, 1e-9), 1 - 1e-9)
    z_a, z_b = NormalDist().inv_cdf(1 - alpha), NormalDist().inv_cdf(power)
    guess = ((z_a * math.sqrt(threshold * (1 - threshold)) + z_b * math.sqrt(observed * (1 - observed)))
             / (observed - threshold)) ** 2
    if guess > limit:
        return None
    # Exact power saw-tooths in n: scan up from below the normal approximation to the first n that has it.
    n = max(1, int(guess * 0.6))
    while n <= limit:
        if _power(n, threshold, observed, alpha) >= power:
            break
        n += 1 if n < 200 else max(1, n // 200)
    else:
        return None
    # The coarse steps above 200 may overshoot: walk back to the first n of this run that has the power.
    while n > 1 and _power(n - 1, threshold, observed, alpha) >= power:
        n -= 1
    return n
