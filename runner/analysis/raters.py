"""How much two raters agree with each other: the ceiling for a model judged against one of them.

A model that agrees with the first rater at kappa 0.6 is doing badly if the two raters agree at
0.95, and as well as can be asked if they agree at 0.6. `report.human_agreement.fields` names the
dataset fields holding each rater's label; Cohen's kappa between them is computed over the items the
model answered (`--limit` included), with a 95% bootstrap interval over items, and undefined where
either rater uses only one class (as the model's kappa). The report calls them raters, not humans:
who wrote the second label (for `semantic.yaml`, the team) is the dataset's to say.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from runner.analysis.clustered import MIN_BOOTSTRAP_ITEMS, item_bootstrap
from runner.analysis.stats import cohen_kappa
from runner.errors import ConfigError
from runner.plan.dataset import Item


@dataclass(frozen=True)
class RaterAgreement:
    """Two raters' labels over the same items."""

    fields: tuple[str, str]
    n_items: int
    agree: int  # items both labelled alike
    kappa: float  # nan: undefined (a rater used one class only, or no items)
    low: float | None
    high: float | None
    disagreements: tuple[str, ...]  # the ids of the items they label differently

    def sentence(self) -> str:
        a, b = self.fields
        if math.isnan(self.kappa):
            shown = "undefined (a rater uses one class only)"
        else:
            shown = f"{self.kappa:.2f} [{self.low:.2f}, {self.high:.2f}]" if self.low is not None and \
                self.high is not None else f"- (no interval under {MIN_BOOTSTRAP_ITEMS} items)"
        which = f" (differ on {', '.join(self.disagreements[:5])}{', ...' if len(self.disagreements) > 5 else ''})" \
            if self.disagreements else ""
        return (f"rater agreement (the ceiling for the model's kappa): {a} vs {b}: Cohen's kappa {shown}, "
                f"{self.agree} of {self.n_items} items the model answered alike{which}")

    def to_dict(self) -> dict[str, Any]:
        return {"fields": list(self.fields), "n_items": self.n_items, "agree": self.agree,
                "kappa": None if math.isnan(self.kappa) else self.kappa, "low": self.low, "high": self.high,
                "interval": "item bootstrap" if self.low is not None else None,
                "disagreements": list(self.disagreements)}


def check_rater_fields(fields: Sequence[str], items: Sequence[Item], file: Path) -> None:
    """Each rater's field in every dataset row, before anything runs."""
    if len(set(fields)) < len(fields):
        twice = next(f for f in fields if list(fields).count(f) > 1)
        raise ConfigError(f"field {twice!r} is named twice: a rater agrees with itself", file=file,
                          key="report.human_agreement.fields", fix="name the two raters' label fields, e.g. "
                          "[human_label, human_label_2]")
    for index, name in enumerate(fields):
        missing = [item.id for item in items if name not in item.fields]
        if missing:
            raise ConfigError(f"dataset items {missing[:3]} have no field {name!r}", file=file,
                              key=f"report.human_agreement.fields[{index}]",
                              fix="add that rater's label to every row or name the field that holds it")


def rater_agreement(fields: tuple[str, str], items: Sequence[Item]) -> RaterAgreement:
    a, b = fields
    first = [_label(item.fields[a]) for item in items]
    second = [_label(item.fields[b]) for item in items]
    agree = sum(x == y for x, y in zip(first, second, strict=True))
    differ = tuple(item.id for item, x, y in zip(items, first, second, strict=True) if x != y)
    classes = sorted(set(first) | set(second), key=repr)
    if not items or len(set(first)) < 2 or len(set(second)) < 2:
        return RaterAgreement(fields, len(items), agree, math.nan, None, None, differ)
    kappa = cohen_kappa(first, second)
    low = high = None
    if len(items) >= 2:
        # One row per item: a one-hot cell of the two raters' confusion matrix, so a resample's sum
        # is its confusion matrix (items drawn whole, as every interval of the report).
        k = len(classes)
        cells = np.zeros((len(items), k * k))
        for row, (x, y) in enumerate(zip(first, second, strict=True)):
            cells[row, classes.index(x) * k + classes.index(y)] = 1.0
        bounds = item_bootstrap(cells, _kappa_statistic(k))
        if not math.isnan(bounds[0]):
            low, high = bounds
    return RaterAgreement(fields, len(items), agree, kappa, low, high, differ)


def _kappa_statistic(k: int) -> Any:
    def kappa(sums: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        matrix = sums.reshape(-1, k, k)
        n = matrix.sum(axis=(1, 2))
        rows, cols = matrix.sum(axis=2), matrix.sum(axis=1)
        # Undefined where a rater used one class in the resample, as for the whole sample.
        one_class = ((rows > 0).sum(axis=1) < 2) | ((cols > 0).sum(axis=1) < 2)
        with np.errstate(invalid="ignore", divide="ignore"):
            po = np.trace(matrix, axis1=1, axis2=2) / n
            pe = (rows * cols).sum(axis=1) / (n * n)
            value = (po - pe) / (1 - pe)
        return np.where(one_class, np.nan, value)

    return kappa


def _label(value: Any) -> Any:
    """A label as a class: text compared without case and surrounding spaces ("Sensible" is "sensible")."""
    return value.strip().lower() if isinstance(value, str) else repr(value) if isinstance(value, list | dict) else value
