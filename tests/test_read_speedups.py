"""The read path's faster forms give the same numbers, bit for bit, as the forms they replaced (issue 17).

The references below are the previous implementations, kept here only to compare against."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import numpy as np
import pytest

from conftest import Project
from runner.analysis.clustered import BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED, f1_of, item_bootstrap, mean_of
from runner.analysis.compare import item_predictions
from runner.analysis.metrics import ITEM_COLUMNS, CellStats, JobResult, hashable, mode_count
from runner.config.loader import load_experiment
from runner.plan.planner import build_plan
from runner.scoring.scorers import FAILED_SCORE, BinaryClassification, Score, Scorer, build_scorers
from runner.store.database import JobRecord


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


def _gathered_fractions(columns: np.ndarray, statistic: Any, resamples: int) -> tuple[float, float]:
    """item_bootstrap of fractions as it was: one gather of every column, summed over the items' axis."""
    g = len(columns)
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    sums = np.empty((resamples, columns.shape[1]))
    block = max(1, 200_000 // g)
    for start in range(0, resamples, block):
        rows = min(block, resamples - start)
        sums[start:start + rows] = columns[rng.integers(0, g, size=(rows, g))].sum(axis=1)
    values = statistic(sums)
    values = values[~np.isnan(values)]
    low, high = np.quantile(values, [0.025, 0.975])
    return (float(low), float(high))


@pytest.mark.parametrize(("items", "resamples"), [(12, BOOTSTRAP_RESAMPLES), (333, BOOTSTRAP_RESAMPLES),
                                                  (5000, BOOTSTRAP_RESAMPLES), (70_000, 30)])
def test_item_bootstrap_of_fractions_is_the_gathered_one(items: int, resamples: int) -> None:
    # Shares of repeats (agreement: k / 5) and arbitrary fractions (similarities), with a count column
    # (mean_of) and without; twice each, the second from the draws kept by the first (70,000 items: too
    # many to keep, drawn again).
    rng = np.random.default_rng(items)
    shares = np.column_stack([rng.integers(1, 6, size=items) / 5, np.ones(items)])
    similarities = np.column_stack([rng.random(items), rng.integers(1, 4, size=items), rng.random(items) / 3])
    first = shares[:, :1]
    for _ in range(2):
        for columns in (shares, similarities):
            assert item_bootstrap(columns, mean_of, resamples=resamples) == \
                _gathered_fractions(columns, mean_of, resamples)
        assert item_bootstrap(first, _first, resamples=resamples) == _gathered_fractions(first, _first, resamples)


def _first(sums: np.ndarray) -> np.ndarray:
    return np.asarray(sums[:, 0])


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


def _add_as_it_was(stats: CellStats, result: JobResult, score: Score | None, scorer: Scorer | None,
                   t0_text: str | None) -> None:
    """CellStats.add as it was (one call per job, everything worked out per job)."""
    stats.planned += 1
    rec = result.record
    if rec is None:
        return
    if rec.status != "ok":
        stats.failed += 1
        stats.outcomes[FAILED_SCORE.outcome] += 1
        return
    stats.ok += 1
    if rec.latency_s is not None:
        stats.latency_s.append(rec.latency_s)
    if rec.completion_tokens is not None:
        stats.completion_tokens.append(rec.completion_tokens)
    if rec.variant and rec.variant.get("size_bytes"):
        stats.file_sizes.add(int(rec.variant["size_bytes"]))
    speed = (rec.timings or {}).get("predicted_per_second")
    if speed:
        stats.tokens_per_s.append(float(speed))
    if score is None:
        return
    job = result.job
    cell_key, item_id, repeat = job.cell.key(), job.item.id, job.repeat
    right, valid = int(bool(score.correct)), int(score.json_valid)
    item = stats.items.setdefault(item_id, [0] * len(ITEM_COLUMNS))
    stats.outcomes[score.outcome] += 1
    stats.json_valid += valid
    stats.correct += right
    item[0] += 1
    item[1] += right
    item[2] += valid
    run = stats.runs[(cell_key, repeat)]
    run[0] += right
    run[1] += 1
    unit = (cell_key, item_id)
    stats.answers[unit].append(hashable(score.prediction) if score.prediction is not None
                               else ("text", " ".join((rec.text or "").split()).lower()))
    stats.texts[unit].append((rec.text or "").strip())
    sim = (score.extras or {}).get("similarity")
    if isinstance(sim, int | float):
        stats.reference_sims[unit].append(float(sim))
    if t0_text is not None:
        stats.t0_texts[unit] = t0_text
    if score.prediction is not None:
        stats.predictions[hashable(score.prediction)] += 1
    stats.correct_by[(cell_key, item_id, repeat)] = bool(right)
    if isinstance(scorer, BinaryClassification):
        truth = scorer.is_positive(score.expected)
        column = {"tp": 3, "fp": 4, "tn": 5, "fn": 6, "unanswered_pos": 7, "unanswered_neg": 8}
        if score.prediction is None:
            name = "unanswered_pos" if truth else "unanswered_neg"
        else:
            said = scorer.is_positive(score.prediction)
            name = ("tp" if said else "fn") if truth else ("fp" if said else "tn")
        setattr(stats, name, getattr(stats, name) + 1)
        item[column[name]] += 1


def test_cell_stats_add_all_counts_as_add_did(project: Project) -> None:
    rand = random.Random(5)
    project.write_dataset([{"id": f"i{n}", "config": {"port": n}, "valid": n % 3 == 0} for n in range(40)])
    experiment = load_experiment(project.write(repeats=4))
    scorer = build_scorers(list(experiment.scorers), "valid")[0]
    answers = [('{"valid": true}', "stop"), ('{"valid": false}', "stop"), ('{"valid": tr', "length"),
               ("I think  it is Fine.", "stop"), (" i think it is fine ", "stop"), ('{"valid": "yes"}', "stop")]
    results, scores, t0 = [], [], {}
    shared: dict[str, Score] = {}  # one Score per distinct answer, as the read path shares stored ones
    for job in build_plan(experiment).jobs():
        kind = rand.random()
        text, finish = rand.choice(answers)
        if kind < 0.1:
            results.append(JobResult(job, None))
            scores.append(None)
            continue
        status = "failed" if kind < 0.2 else "ok"
        timings = {"predicted_per_second": rand.choice([0.0, 12.5])} if kind < 0.6 else None
        record = JobRecord(job.job_id, status, 1, None, text, finish, 10, rand.choice([None, 5]),
                           rand.choice([None, 0.1]), timings, {"size_bytes": 100} if kind < 0.5 else None)
        results.append(JobResult(job, record))
        score = None
        if status == "ok":
            fresh = scorer.score(text, finish, job.item)
            score = fresh if kind < 0.4 else shared.setdefault(f"{text}|{job.item.id}", fresh)
        scores.append(score)
        if kind > 0.7:
            t0[job.item.id] = text.strip()
    for who in (scorer, None):
        mine = [s if who is not None else None for s in scores]
        before, after = CellStats(), CellStats()
        for result, score in zip(results, mine, strict=True):
            _add_as_it_was(before, result, score, who, t0.get(result.job.item.id))
        after.add_all(results, mine, who, t0)
        assert vars(after) == vars(before)
        assert [list(getattr(after, f)) for f in ("outcomes", "predictions", "answers", "items", "texts")] == \
            [list(getattr(before, f)) for f in ("outcomes", "predictions", "answers", "items", "texts")]
