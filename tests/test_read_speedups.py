"""The read path's faster forms give the same numbers, bit for bit, as the forms they replaced (issue 17).

The references below are the previous implementations, kept here only to compare against."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import numpy as np
import pytest

from runner.analysis.clustered import BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED, f1_of, item_bootstrap, mean_of
from runner.analysis.compare import item_predictions
from runner.analysis.metrics import hashable, mode_count


def _gather_bootstrap(columns: np.ndarray, statistic: Any) -> tuple[float, float]:
    """item_bootstrap as it was: one gather and sum per column of whole numbers."""
    g = len(columns)
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    sums = np.empty((BOOTSTRAP_RESAMPLES, columns.shape[1]))
    block = max(1, 200_000 // g)
    by_column = [np.ascontiguousarray(columns[:, c]) for c in range(columns.shape[1])]
    for start in range(0, BOOTSTRAP_RESAMPLES, block):
        rows = min(block, BOOTSTRAP_RESAMPLES - start)
        picks = rng.integers(0, g, size=(rows, g))
        for c, column in enumerate(by_column):
            sums[start:start + rows, c] = column[picks].sum(axis=1)
    values = statistic(sums)
    values = values[~np.isnan(values)]
    low, high = np.quantile(values, [0.025, 0.975])
    return (float(low), float(high))


@pytest.mark.parametrize("items", [12, 333, 5000])
def test_item_bootstrap_of_counts_is_the_gathered_one(items: int) -> None:
    rng = np.random.default_rng(items)
    f1_columns = rng.integers(0, 6, size=(items, 4)).astype(np.float64)
    mean_columns = np.column_stack([rng.integers(0, 6, size=items), np.full(items, 5)]).astype(np.float64)
    assert item_bootstrap(f1_columns, f1_of) == _gather_bootstrap(f1_columns, f1_of)
    assert item_bootstrap(mean_columns, mean_of) == _gather_bootstrap(mean_columns, mean_of)


def test_item_predictions_and_mode_count_are_counters() -> None:
    rand = random.Random(3)
    answers: dict[tuple[str, int], Any] = {}
    for item in range(400):
        for repeat in range(rand.randint(1, 6)):
            answers[(f"i{item}", repeat)] = rand.choice([None, True, False, "yes", [1, 2], {"a": 1}])
    stated: dict[str, Counter[Any]] = {}
    for (item, _), answer in answers.items():
        counts = stated.setdefault(item, Counter())
        if answer is not None:
            counts[hashable(answer)] += 1
    assert item_predictions(answers) == {i: (c.most_common(1)[0][0] if c else None) for i, c in stated.items()}
    for _ in range(200):
        values = [rand.choice("abcd") for _ in range(rand.randint(1, 8))]
        assert mode_count(values) == Counter(values).most_common(1)[0][1]
