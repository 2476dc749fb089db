"""From stored results to per-cell metrics, and the registry of report columns.

`CellStats` accumulates one cell's raw counts, per item as well as in total (the item is the unit
of every interval: `runner.analysis.clustered`), and can merge with another, which is how a report
pools cells that differ only on axes it does not show. `runner.analysis.results` feeds it.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from runner.analysis.clustered import (
    MIN_BOOTSTRAP_ITEMS,
    ClusteredRate,
    ItemStat,
    balanced_accuracy_of,
    clustered_rate,
    f1_of,
    item_bootstrap,
    kappa_of,
    mcc_of,
    mean_of,
)
from runner.analysis.stats import (
    answer_entropy,
    cohen_kappa,
    matthews_corrcoef,
    wilson_interval,
)
from runner.analysis.text_measures import TEXT_METRICS, Unit, unit_values
from runner.plan.planner import Job
from runner.scoring.scorers import FAILED_SCORE, BinaryClassification, CodeTests, Score, Scorer, normalize
from runner.scoring.time_limit import score_within
from runner.store import JobRecord


@dataclass(slots=True)  # one per planned job
class JobResult:
    job: Job
    record: JobRecord | None  # None: not run yet

    @property
    def status(self) -> str:
        return self.record.status if self.record else "missing"


@dataclass
class CellStats:
    planned: int = 0
    ok: int = 0
    failed: int = 0
    correct: int = 0
    json_valid: int = 0
    # Confusion counts over answers that state a class; answers that state none, by their label.
    unanswered_pos: int = 0
    unanswered_neg: int = 0
    tp: int = 0
    fp: int = 0
    tn: int = 0
    fn: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    predictions: Counter[Any] = field(default_factory=Counter)  # the class each answer stated
    # (cell key, repeat) -> [correct, answered]: one "run" is one repeat of one cell over the items.
    runs: dict[tuple[str, int], list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0]))
    # (cell key, item id) -> predictions across repeats, for agreement and flips.
    answers: dict[tuple[str, str], list[Any]] = field(default_factory=lambda: defaultdict(list))
    tokens_per_s: list[float] = field(default_factory=list)
    latency_s: list[float] = field(default_factory=list)
    completion_tokens: list[int] = field(default_factory=list)
    file_sizes: set[int] = field(default_factory=set)
    # (cell key, item id, repeat) -> correct: the pairs of paired comparisons.
    correct_by: dict[tuple[str, str, int], bool] = field(default_factory=dict)
    # item id -> its counts over every answer to it in these cells (see ITEM_COLUMNS): the item is the
    # unit of every interval, so each rate is a ratio of per-item sums.
    items: dict[str, list[int]] = field(default_factory=dict)
    # (cell key, item id) -> the answers' texts across repeats, their similarity to the item's reference
    # (a similarity scorer's) and to the item's temperature-0 answer: runner.analysis.text_measures.
    texts: dict[Unit, list[str]] = field(default_factory=lambda: defaultdict(list))
    reference_sims: dict[Unit, list[float]] = field(default_factory=lambda: defaultdict(list))
    t0_texts: dict[Unit, str] = field(default_factory=dict)
    _text_values: dict[str, dict[Unit, float]] = field(default_factory=dict, repr=False)
    # item id -> [sum of its answers' shares of tests passed, answers with tests, style violations, lines
    # checked for style] over the answers a code scorer scored (test_pass_rate, style_violations).
    code_items: dict[str, list[float]] = field(default_factory=dict)
    _intervals: dict[tuple[str, float], tuple[float, float] | None] = field(default_factory=dict, repr=False)
    # (item id, share of its repeats giving the unit's most common answer) per repeated (cell, item) unit,
    # in `answers` order: agreement, its interval and the table all ask (cached, as the intervals are).
    _shares: list[tuple[str, float]] | None = field(default=None, repr=False)
    _rates: dict[tuple[str, float], ClusteredRate | None] = field(default_factory=dict, repr=False)

    def add(self, result: JobResult, score: Score | None, scorer: Scorer | None,
            t0_text: str | None = None) -> None:
        """Count one job; `t0_text` is its item's answer at temperature 0 in the cell that differs only
        in temperature, where the experiment has one (for `divergence_t0`)."""
        self.add_all([result], [score], scorer, {} if t0_text is None else {result.job.item.id: t0_text})

    def add_all(self, results: Sequence[JobResult], scores: Sequence[Score | None], scorer: Scorer | None,
                t0_texts: Mapping[str, str]) -> None:
        """`add` of each job in turn (`t0_texts`: item id -> its temperature-0 answer). What depends only
        on the score is worked out once per Score object (the read path shares one per distinct stored
        score), counts are summed in locals: this runs for every job (100,000 in a large report)."""
        binary = scorer if isinstance(scorer, BinaryClassification) else None
        code = isinstance(scorer, CodeTests)
        derived: dict[int, tuple[int, int, str, bool, Any, float | None, int]] = {}
        planned = ok = failed = correct = json_valid = 0
        confusion = [0] * len(ITEM_COLUMNS)  # tp, fp, tn, fn and the unanswered, by their item column
        outcomes, predictions, runs, answers = self.outcomes, self.predictions, self.runs, self.answers
        texts, sims, t0_units, correct_by, items = (self.texts, self.reference_sims, self.t0_texts,
                                                    self.correct_by, self.items)
        width = len(ITEM_COLUMNS)
        for result, score in zip(results, scores, strict=True):
            planned += 1
            rec = result.record
            if rec is None:
                continue
            if rec.status != "ok":
                failed += 1
                outcomes[FAILED_SCORE.outcome] += 1
                continue
            ok += 1
            if rec.latency_s is not None:
                self.latency_s.append(rec.latency_s)
            if rec.completion_tokens is not None:
                self.completion_tokens.append(rec.completion_tokens)
            if rec.variant and rec.variant.get("size_bytes"):
                self.file_sizes.add(int(rec.variant["size_bytes"]))
            speed = (rec.timings or {}).get("predicted_per_second")
            if speed:
                self.tokens_per_s.append(float(speed))
            if score is None:
                continue
            known = derived.get(id(score))
            if known is None:
                known = derived[id(score)] = _derived(score, binary)
            right, valid, outcome, stated, said, sim, kind = known
            job = result.job
            cell_key, item_id, repeat = job.cell.key(), job.item.id, job.repeat
            item = items.get(item_id)
            if item is None:
                item = items[item_id] = [0] * width
            outcomes[outcome] += 1
            json_valid += valid
            correct += right
            item[_OK] += 1
            item[_CORRECT] += right
            item[_JSON] += valid
            run = runs[(cell_key, repeat)]
            run[0] += right
            run[1] += 1
            unit = (cell_key, item_id)
            answers[unit].append(said if stated else ("text", " ".join((rec.text or "").split()).lower()))
            texts[unit].append((rec.text or "").strip())
            if sim is not None:
                sims[unit].append(sim)
            t0_text = t0_texts.get(item_id)
            if t0_text is not None:
                t0_units[unit] = t0_text
            if stated:
                predictions[said] += 1
            correct_by[(cell_key, item_id, repeat)] = bool(right)
            if kind >= 0:
                confusion[kind] += 1
                item[kind] += 1
            if code:
                self._count_code(score, item, item_id)
        self.planned += planned
        self.ok += ok
        self.failed += failed
        self.correct += correct
        self.json_valid += json_valid
        self.tp += confusion[_TP]
        self.fp += confusion[_FP]
        self.tn += confusion[_TN]
        self.fn += confusion[_FN]
        self.unanswered_pos += confusion[_UP]
        self.unanswered_neg += confusion[_UN]

    def _count_code(self, score: Score, item: list[int], item_id: str) -> None:
        extras = score.extras or {}
        if "compiled" not in extras:
            return  # scored before the scorer kept these (an older stored score)
        item[_CODE] += 1
        item[_COMPILED] += int(bool(extras["compiled"]))
        code = self.code_items.setdefault(item_id, [0.0] * 4)
        tests = extras.get("tests") or []
        if tests:
            code[0] += sum(1 for t in tests if t) / len(tests)
            code[1] += 1
        style = extras.get("style")
        if isinstance(style, dict):
            code[2] += float(style.get("violations", 0))
            code[3] += float(style.get("lines", 0))

    def merge(self, other: CellStats) -> CellStats:
        out = CellStats()
        for name in ("planned", "ok", "failed", "correct", "json_valid", "tp", "fp", "tn", "fn", "unanswered_pos",
                     "unanswered_neg"):
            setattr(out, name, getattr(self, name) + getattr(other, name))
        out.outcomes = self.outcomes + other.outcomes
        out.predictions = self.predictions + other.predictions
        out.runs.update(self.runs)
        out.runs.update(other.runs)
        out.answers.update(self.answers)
        out.answers.update(other.answers)
        for name in ("texts", "reference_sims", "t0_texts"):
            getattr(out, name).update(getattr(self, name))
            getattr(out, name).update(getattr(other, name))
        out.tokens_per_s = self.tokens_per_s + other.tokens_per_s
        out.latency_s = self.latency_s + other.latency_s
        out.completion_tokens = self.completion_tokens + other.completion_tokens
        out.file_sizes = self.file_sizes | other.file_sizes
        out.correct_by = {**self.correct_by, **other.correct_by}
        # The same item in two cells (two prompts pooled into one row) is one cluster: its answers
        # are not independent of each other either.
        out.items = {k: list(v) for k, v in self.items.items()}
        for k, v in other.items.items():
            mine = out.items.setdefault(k, [0] * len(ITEM_COLUMNS))
            for i, x in enumerate(v):
                mine[i] += x
        out.code_items = {k: list(v) for k, v in self.code_items.items()}
        for k, w in other.code_items.items():
            code = out.code_items.setdefault(k, [0.0] * 4)
            for i, y in enumerate(w):
                code[i] += y
        return out

    def compile_rate(self) -> float:
        """The share of the answers a code scorer scored whose code compiles (empty answers do not)."""
        code = sum(r[_CODE] for r in self.items.values())
        return sum(r[_COMPILED] for r in self.items.values()) / code if code else math.nan

    def test_pass_rate(self) -> float:
        """The mean share of an answer's tests that pass, over the answers a code scorer ran tests for."""
        answers = sum(c[1] for c in self.code_items.values())
        return sum(c[0] for c in self.code_items.values()) / answers if answers else math.nan

    def style_violations(self) -> float:
        """ruff's style violations per 100 non-blank lines of the code that compiled (Python)."""
        lines = sum(c[3] for c in self.code_items.values())
        return 100 * sum(c[2] for c in self.code_items.values()) / lines if lines else math.nan

    # metrics

    def accuracy(self) -> float:
        return self.correct / self.ok if self.ok else math.nan

    def accuracy_interval(self) -> tuple[float, float]:
        return wilson_interval(self.correct, self.ok)

    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else math.nan

    def recall(self) -> float:
        """Of the positive items, the share answered positive: an unanswered one is a miss."""
        positives = self.tp + self.fn + self.unanswered_pos
        return self.tp / positives if positives else math.nan

    def f1(self) -> float:
        denom = 2 * self.tp + self.fp + self.fn + self.unanswered_pos
        return 2 * self.tp / denom if denom else math.nan

    def balanced_accuracy(self) -> float:
        """Mean recall of the two classes, unanswered items counted as misses of their class."""
        recalls = [k / n for k, n in ((self.tp, self.tp + self.fn + self.unanswered_pos),
                                      (self.tn, self.tn + self.fp + self.unanswered_neg)) if n]
        return sum(recalls) / len(recalls) if recalls else math.nan

    def json_valid_rate(self) -> float:
        return self.json_valid / self.ok if self.ok else math.nan

    def agreement(self) -> float:
        """Mean over items of the share of repeats that give the item's most common answer (the class it
        stated, or where it stated none the answer's text)."""
        shares = self._agreement_by_item()
        return sum(shares) / len(shares) if shares else math.nan

    def _agreement_by_item(self) -> list[float]:
        return [share for _, share in self._unit_shares()]

    def _unit_shares(self) -> list[tuple[str, float]]:
        if self._shares is None:
            self._shares = [(item, mode_count(a) / len(a)) for (_, item), a in self.answers.items() if len(a) > 1]
        return self._shares

    @property
    def binary_n(self) -> int:
        return self.tp + self.fp + self.tn + self.fn

    def both_classes(self) -> bool:
        """Both labels and both answers occur among the answers that state a class."""
        return bool(self.tp + self.fn and self.tn + self.fp and self.tp + self.fp and self.tn + self.fn)

    def mcc(self) -> float:
        return matthews_corrcoef(self.tp, self.fp, self.tn, self.fn) if self.binary_n and self.both_classes() \
            else math.nan

    def clustered(self, name: str, confidence: float = 0.95) -> ClusteredRate | None:
        """A rate metric with its interval over items (`runner.analysis.clustered`); None if not a rate.
        Computed once per metric and confidence (the table's value, its interval and the JSON record
        all ask; a decision among several candidates asks for a wider one)."""
        key = (name, confidence)
        if key not in self._rates:
            self._rates[key] = self._clustered(name, confidence)
        return self._rates[key]

    def _clustered(self, name: str, confidence: float) -> ClusteredRate | None:
        parts = _RATE_PARTS.get(name)
        if parts is None:
            return None
        if name == "flip_rate":
            # Per item: its (cell, item) units that flipped, over those repeated; a row pooling cells
            # clusters them by item, as every other rate.
            by_item: dict[str, list[int]] = defaultdict(lambda: [0, 0])
            for (_, item), answers in self.answers.items():
                if len(answers) > 1:
                    by_item[item][0] += int(len(set(answers)) > 1)
                    by_item[item][1] += 1
            return clustered_rate([a for a, _ in by_item.values()], [b for _, b in by_item.values()], confidence)
        if name == "run_mean" and len({n for _, n in self.runs.values()}) > 1:
            return None  # runs of different sizes: their mean is not the accuracy, and has no interval here
        num, den = parts
        rows = list(self.items.values())
        return clustered_rate(_item_sums(rows, num), _item_sums(rows, den), confidence)

    def bootstrap_interval(self, name: str, confidence: float = 0.95) -> tuple[float, float] | None:
        """A bootstrap interval over items for a metric that is not a ratio of counts; None if none
        (fewer than MIN_BOOTSTRAP_ITEMS items: `runner.analysis.clustered`). Computed once per metric
        and confidence: the table and the JSON records both ask."""
        key = (name, confidence)
        if key not in self._intervals:
            self._intervals[key] = self._bootstrap_interval(name, confidence)
        return self._intervals[key]

    def text_measure(self, name: str) -> float:
        """A measure of the answers' texts (runner.analysis.text_measures): the mean over (cell, item)
        units; nan where no unit has it (one repeat, or no reference similarity)."""
        values = self._text_unit_values(name)
        return sum(values.values()) / len(values) if values else math.nan

    def _text_unit_values(self, name: str) -> dict[Unit, float]:
        if name not in self._text_values:  # pairwise similarity over 20 repeats is 190 pairs per item
            self._text_values[name] = unit_values(name, self.texts, self.reference_sims, self.t0_texts)
        return self._text_values[name]

    def _bootstrap_interval(self, name: str, confidence: float) -> tuple[float, float] | None:
        if name in TEXT_METRICS:
            # Per item: the sum of its units' values and their count, resampled as agreement's are.
            sums: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
            for (_, item), value in self._text_unit_values(name).items():
                sums[item][0] += value
                sums[item][1] += 1
            if len(sums) < MIN_BOOTSTRAP_ITEMS:
                return None
            return item_bootstrap(np.array(list(sums.values()), dtype=np.float64), mean_of, confidence)
        if name == "agreement":
            # Per item: the sum of its (cell, item) units' shares and their count, so a row pooling
            # cells resamples items (with all their cells), and the mean of the draws is the point value.
            by_item: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
            for item, share in self._unit_shares():
                by_item[item][0] += share
                by_item[item][1] += 1
            if len(by_item) < MIN_BOOTSTRAP_ITEMS:
                return None
            return item_bootstrap(np.array(list(by_item.values()), dtype=np.float64), mean_of, confidence)
        if name in ("test_pass_rate", "style_violations"):
            # Per item: (its sum, its count), so the mean of a draw is the point value's ratio of sums.
            pairs = [(c[0], c[1]) if name == "test_pass_rate" else (100 * c[2], c[3]) for c in self.code_items.values()]
            pairs = [p for p in pairs if p[1] > 0]
            if len(pairs) < MIN_BOOTSTRAP_ITEMS:
                return None
            return item_bootstrap(np.array(pairs, dtype=np.float64), mean_of, confidence)
        columns = _BOOTSTRAP_COLUMNS.get(name)
        # F1 and balanced accuracy are defined over unanswered items too; kappa and MCC only over
        # answers that state a class.
        defined = self.binary_n if name in ("kappa", "mcc") else \
            self.binary_n + self.unanswered_pos + self.unanswered_neg
        if columns is None or len(self.items) < MIN_BOOTSTRAP_ITEMS or not defined:
            return None
        cols, statistic = columns
        data = np.array([[r[i] for i in cols] for r in self.items.values()], dtype=np.float64)
        return item_bootstrap(data, statistic, confidence)

    def kappa(self) -> float:
        """Cohen's kappa of the answers against the labels, from the confusion counts; undefined (nan)
        where the labels or the answers use only one class, since kappa then says nothing (two constant
        labelings that agree would read 1.00 at any accuracy)."""
        if not self.binary_n or not self.both_classes():
            return math.nan
        truth = [1] * (self.tp + self.fn) + [0] * (self.fp + self.tn)
        said = [1] * self.tp + [0] * self.fn + [1] * self.fp + [0] * self.tn
        return cohen_kappa(truth, said)

    def flips(self) -> tuple[int, int]:
        """(items whose answer changed between repeats, items answered at least twice)."""
        repeated = [a for a in self.answers.values() if len(a) > 1]
        return sum(1 for a in repeated if len(set(a)) > 1), len(repeated)

    def entropy(self) -> float:
        """Mean over items of the entropy (bits) of the answers across repeats; 0 = always the same."""
        repeated = [a for a in self.answers.values() if len(a) > 1]
        return sum(answer_entropy(a) for a in repeated) / len(repeated) if repeated else math.nan

    def rate_counts(self, name: str) -> tuple[int, int] | None:
        """(successes, trials) behind a rate metric, for its Wilson interval; None if not a rate."""
        counts = {
            "accuracy": (self.correct, self.ok), "json_valid": (self.json_valid, self.ok),
            "precision": (self.tp, self.tp + self.fp), "recall": (self.tp, self.tp + self.fn + self.unanswered_pos),
            "flip_rate": self.flips(),
        }
        return counts.get(name)

    def answer_shares(self) -> str:
        """The share of each stated class among the answers that state one: "true 95%, false 5%"."""
        total = sum(self.predictions.values())
        if not total:
            return "-"
        return ", ".join(f"{str(k).lower() if isinstance(k, bool) else k} {v / total:.0%}"
                         for k, v in self.predictions.most_common())

    def outcome_shares(self) -> str:
        """What the answers were, other than answered: "truncated 40%, no_json 10%" (or "all answered")."""
        total = sum(self.outcomes.values())
        others = [(k, v) for k, v in self.outcomes.most_common() if k != "answered" and v]
        if not total:
            return "-"
        return ", ".join(f"{k} {v / total:.0%}" for k, v in others) if others else "all answered"

    def n_items(self) -> int:
        """Distinct dataset items with a scored answer: the independent units behind the rates."""
        return len({item for _, item in self.answers})

    def run_accuracies(self) -> list[float]:
        return [c / n for c, n in self.runs.values() if n]

    def metric(self, name: str) -> Any:
        """One metric, computed alone (a report asks for a few of the registered ones)."""
        from runner.analysis.columns import METRICS  # the registry is built on this class

        return METRICS[name].compute(self)


# The per-item counts every rate is a ratio of.
ITEM_COLUMNS = ("ok", "correct", "json_valid", "tp", "fp", "tn", "fn", "unanswered_pos", "unanswered_neg", "code",
                "compiled")
_OK, _CORRECT, _JSON, _TP, _FP, _TN, _FN, _UP, _UN, _CODE, _COMPILED = range(len(ITEM_COLUMNS))
# rate -> (numerator columns, denominator columns), summed per item
_RATE_PARTS: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    "accuracy": ((_CORRECT,), (_OK,)), "json_valid": ((_JSON,), (_OK,)),
    "precision": ((_TP,), (_TP, _FP)), "recall": ((_TP,), (_TP, _FN, _UP)),
    "run_mean": ((_CORRECT,), (_OK,)),  # the mean of the repeats' accuracies is the accuracy: same unit
    "flip_rate": ((), ()),
    "compile_rate": ((_COMPILED,), (_CODE,)),  # over the answers a code scorer scored
}
_BOOTSTRAP_COLUMNS: dict[str, tuple[tuple[int, ...], ItemStat]] = {
    "f1": ((_TP, _FP, _FN, _UP), f1_of),
    "kappa": ((_TP, _FP, _TN, _FN), kappa_of),
    "mcc": ((_TP, _FP, _TN, _FN), mcc_of),
    "balanced_accuracy": ((_TP, _FP, _TN, _FN, _UP, _UN), balanced_accuracy_of),
}


def _derived(score: Score, binary: BinaryClassification | None) -> tuple[int, int, str, bool, Any, float | None, int]:
    """What `CellStats.add_all` counts of a score: right, JSON-valid, its outcome, whether it states a class
    and the class as a key, its similarity to the reference (a similarity scorer's), and the item column
    of its confusion count (-1: not a two-class scorer)."""
    stated = score.prediction is not None
    sim = (score.extras or {}).get("similarity")
    kind = -1
    if binary is not None:
        truth = binary.is_positive(score.expected)
        if not stated:
            # No class stated (no JSON, cut off, wrong shape): neither a true nor a false negative (nor a
            # dangerous false positive), but a positive item it missed still lowers recall.
            kind = _UP if truth else _UN
        else:
            said = binary.is_positive(score.prediction)
            kind = (_TP if said else _FN) if truth else (_FP if said else _TN)
    return (int(bool(score.correct)), int(score.json_valid), score.outcome, stated,
            hashable(score.prediction) if stated else None, float(sim) if isinstance(sim, int | float) else None,
            kind)


def _item_sums(rows: list[list[int]], columns: tuple[int, ...]) -> list[int]:
    """Each item's sum of these count columns (one column: the count itself, the same whole number)."""
    if len(columns) == 1:
        (c,) = columns
        return [r[c] for r in rows]
    return [sum(r[i] for i in columns) for r in rows]


def _ratio(k: int, n: int) -> float:
    return k / n if n else math.nan


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def mode_count(values: list[Any]) -> int:
    """How often the most common value occurs: Counter(values).most_common(1)[0][1] without building a
    Counter (a report of 100,000 answers asked 40,000 times, each for a handful of repeats)."""
    counts: dict[Any, int] = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    return max(counts.values())


def hashable(value: Any) -> Any:
    """An answer as a dict key or set member: lists and mappings by their repr."""
    # The tuple form: 30% faster than `list | dict`, and it runs 780,000 times in a report of 100,000 jobs.
    if isinstance(value, (list, dict)):
        return repr(value)
    return value


def scores_for(results: list[JobResult], scorer: Scorer, cached: dict[tuple[str, str], dict[str, Any]],
               fresh: list[tuple[str, str, dict[str, Any]]],
               expected: dict[str, Any] | None = None, limit_s: float | None = None) -> list[Score | None]:
    """Scores from the store's cache where the scorer config matches; computed where not (each within
    `limit_s`: ScorerTimedOut past it), and the computed ones appended to `fresh` (for `runner score`
    and `runner run` to store; readers don't). `expected`: item id -> its expected value in normal form,
    kept across calls for this scorer."""
    out: list[Score | None] = []
    # The store shares one dict per distinct stored score (`Store.scores_for`): one Score each, too.
    made: dict[int, Score] = {}
    labels = {} if expected is None else expected
    code = isinstance(scorer, CodeTests)
    for r in results:
        if r.record is None or r.record.status != "ok":
            out.append(None)
            continue
        hit = cached.get((r.job.job_id, scorer.key))
        if hit is not None and not code:
            item = r.job.item
            label = labels.get(item.id, labels)
            if label is labels:
                label = labels[item.id] = normalize(scorer.expected(item))
            if hit.get("expected") != label:
                hit = None  # the dataset's label changed since this was scored: score again
        if hit is None:
            scorer.ensure_tools()  # a compiler, a sandbox: needed only now, not to read cached scores
            score = score_within(scorer, r.record.text or "", r.record.finish_reason, r.job.item, limit_s)
            fresh.append((r.job.job_id, scorer.key, score.to_dict()))
        else:
            known = made.get(id(hit))
            score = made[id(hit)] = known if known is not None else Score.from_dict(hit)
        out.append(score)
    return out
