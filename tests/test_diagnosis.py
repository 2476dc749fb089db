"""Findings from results put straight into a store (no server): every kind, its sentence and its numbers.

Each test writes an experiment with the `project` fixture, expands its plan, stores an answer of
our choosing for every job, and runs `diagnose` as `runner explain` does. Numbers are checked
against values worked by hand in the comments (or by scipy / the standard library, not by
runner.analysis.stats), so a wrong formula in either place shows up.

Dataset used by most tests (`_rows()`): ten items i00..i09, `valid` true for the even ones (so
labels are 5 true / 5 false, true first, which makes true the majority class on the tie), and a
`rule` naming what is broken in each invalid item.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import stats as sps

from conftest import Project, base_experiment
from runner.analysis.results import load_results
from runner.analysis.stats import binomial_greater, mcnemar_sample_size, paired_bootstrap_difference
from runner.cli import main
from runner.config.loader import load_experiment
from runner.diagnosis.diagnose import diagnose, nothing_wrong_line
from runner.diagnosis.findings import Finding
from runner.plan.planner import Job, Plan, build_plan
from runner.reporting.render import render_findings
from runner.scoring.scorers import build_scorers
from runner.store import JobRow, Store

CLASS_KINDS = {"constant_answer", "no_better_than_majority", "constant_answer_no_better_than_majority"}
RULES = {1: "port_range", 3: "name_format", 5: "port_range", 7: "missing_host", 9: "name_format"}

# An answer for one job: the text alone (finish_reason "stop"), or save_job fields to override.
Answer = str | dict[str, Any]


def _rows(n: int = 10, valid: Callable[[int], bool] = lambda k: k % 2 == 0) -> list[dict[str, Any]]:
    rows = []
    for k in range(n):
        row: dict[str, Any] = {"id": f"i{k:02d}", "config": {"name": f"svc{k}", "port": 8000 + k}, "valid": valid(k)}
        if not valid(k):
            row["rule"] = RULES.get(k % 10, "port_range")
        rows.append(row)
    return rows


def _experiment(prompts: int = 1, repeats: int = 1, temperature: float = 0.7, **scorer: Any) -> dict[str, Any]:
    # Sampled (temperature 0.7) unless a test says otherwise: repeats at temperature 0 are a finding of their own.
    exp = base_experiment()
    exp["prompts"]["variants"] = exp["prompts"]["variants"][:prompts]
    exp["sampling"] = {"temperature": temperature, "seed": 1, "max_tokens": 16}
    exp["repeats"] = repeats
    exp["scorers"] = [{"type": "binary", "field": "valid", **scorer}]
    return exp


class Filled:
    def __init__(self, path: Path, plan: Plan, store: Store, scorers: list[Any]) -> None:
        self.path, self.plan, self.store, self.scorers = path, plan, store, scorers

    def diagnose(self, **kwargs: Any) -> list[Finding]:
        alpha = kwargs.pop("alpha", None)
        return diagnose(load_results(self.plan, self.store, self.scorers, **kwargs), alpha=alpha)


@pytest.fixture
def fill(project: Project) -> Any:
    """fill(answer, exp=..., rows=...): store answer(job) for every job of the plan; answer None skips it."""
    opened: list[Store] = []

    def _fill(answer: Callable[[Job], Answer | None], exp: dict[str, Any] | None = None,
              rows: list[dict[str, Any]] | None = None) -> Filled:
        project.write_dataset(rows if rows is not None else _rows())
        path = project.write(exp if exp is not None else _experiment())
        experiment = load_experiment(path)
        plan = build_plan(experiment)
        store = Store.open(experiment.store_path())
        opened.append(store)
        run_id = store.start_run(name=experiment.name, experiment_hash="h", experiment_path=path,
                                 planned=plan.count(), args={})
        for job in plan.jobs():
            got = answer(job)
            if got is None:
                continue
            fields: dict[str, Any] = {"text": got} if isinstance(got, str) else dict(got)
            if fields.get("status") == "failed":
                fields.setdefault("text", None)
            else:
                fields.setdefault("finish_reason", "stop")
                fields.setdefault("prompt_tokens", 50)
                fields.setdefault("completion_tokens", 8)
            store.save_job(JobRow(job_id=job.job_id, run_id=run_id, cell_key=job.cell.key(),
                                  model=job.cell.variant.model, quantization=job.cell.variant.quantization,
                                  item_id=job.item.id, repeat=job.repeat, status=fields.pop("status", "ok"),
                                  attempts=1, **fields))
        return Filled(path, plan, store, build_scorers(list(experiment.scorers), experiment.dataset.label_field))

    yield _fill
    for store in opened:
        store.close()


def _valid(job: Job) -> bool:
    return bool(job.item.fields["valid"])


def right(job: Job) -> str:
    return json.dumps({"valid": _valid(job)})


def wrong(job: Job) -> str:
    return json.dumps({"valid": not _valid(job)})


def _k(job: Job) -> int:
    return int(job.item.id[1:])


def _one(findings: list[Finding], kind: str) -> Finding:
    matching = [f for f in findings if f.kind == kind]
    assert len(matching) == 1, [f.kind for f in findings]
    return matching[0]


def _kinds(findings: list[Finding]) -> list[str]:
    return [f.kind for f in findings]


# --- classes: kappa, MCC, balanced accuracy and the binomial test against the majority class -------


def test_worked_confusion_tp3_fp2_tn3_fn2(fill: Any) -> None:
    # Valid items i00 i02 i04 i06 i08: answer true on i00 i02 i04 (tp=3), false on i06 i08 (fn=2).
    # Invalid items i01 i03 i05 i07 i09: answer false on i01 i03 i05 (tn=3), true on i07 i09 (fp=2).
    # accuracy = 6/10.
    # kappa: p_o = 0.6; truth 5 positive / 5 negative, answers 5 positive / 5 negative,
    #        p_e = 0.5*0.5 + 0.5*0.5 = 0.5; kappa = (0.6 - 0.5) / (1 - 0.5) = 0.2
    # MCC = (3*3 - 2*2) / sqrt(5*5*5*5) = 5 / 25 = 0.2
    # balanced accuracy = (3/5 + 3/5) / 2 = 0.6
    # majority: 5 of 10 (true, listed first); P(X >= 6 | n=10, p=0.5) = (210+120+45+10+1)/1024 = 386/1024
    filled = fill(lambda j: right(j) if _k(j) in {0, 2, 4, 1, 3, 5} else wrong(j))
    findings = filled.diagnose()
    assert _kinds(findings) == ["no_better_than_majority"]
    f = findings[0]
    assert f.numbers["kappa"] == pytest.approx(0.2)
    assert f.numbers["mcc"] == pytest.approx(0.2)
    assert f.numbers["balanced_accuracy"] == pytest.approx(0.6)
    assert f.numbers["p_vs_majority"] == pytest.approx(386 / 1024)
    assert f.numbers["p_vs_majority"] == pytest.approx(sps.binomtest(6, 10, 0.5, alternative="greater").pvalue)
    assert (f.numbers["n"], f.numbers["correct"], f.numbers["majority_count"]) == (10, 6, 5)
    assert f.numbers["majority_class"] is True
    assert f.numbers["predictions"] == {"True": 5, "False": 5}
    assert f.text == ("fake: no better than always answering valid=true (6 of 10 right; always true gets 5; "
                      "exact binomial p=0.38 over 10 items; kappa 0.20 and MCC 0.20 over 10 answers stating a class; "
                      "balanced accuracy 0.60)")
    # It falls short of the baseline by nothing (6 > 5), so it explains no wrong answer.
    assert f.weight == 0.0
    assert f.hypothesis is None


def test_constant_answer_on_balanced_set(fill: Any) -> None:
    # Always {"valid": true} on 5 true / 5 false: tp=5, fp=5, tn=0, fn=0.
    # kappa and MCC: the answers use one class only, so both are undefined (reported as "-"), not 0;
    # balanced accuracy = (5/5 + 0/5) / 2 = 0.5; P(X >= 5 | 10, 0.5) = 638/1024.
    filled = fill(lambda j: '{"valid": true}')
    findings = filled.diagnose()
    f = _one(findings, "constant_answer_no_better_than_majority")
    assert _kinds(findings) == ["constant_answer_no_better_than_majority"]
    assert math.isnan(f.numbers["kappa"]) and math.isnan(f.numbers["mcc"])
    assert f.numbers["balanced_accuracy"] == 0.5
    assert f.numbers["constant_answer"] is True
    assert f.numbers["p_vs_majority"] == pytest.approx(638 / 1024)
    assert f.weight == pytest.approx(0.5)  # the five invalid items, all wrong
    assert f.text == ("fake: gives valid=true in 10 of 10 answers that state a class: a constant answer; "
                      "no better than always answering valid=true (5 of 10 right; always true gets 5; exact "
                      "binomial p=0.62 over 10 items; kappa - and MCC - over 10 answers stating a class; "
                      "balanced accuracy 0.50)")


def _mostly_true(job: Job) -> str:
    # 100 items, 50 valid: every valid item answered true, invalid i01..i19 (odd) false, the other 40
    # invalid items true. Answers: 90 true of 100 (constant, >= 90%); right: 50 + 10 = 60.
    return right(job) if _valid(job) or _k(job) < 20 else wrong(job)


def test_constant_answer_that_beats_the_majority(fill: Any) -> None:
    # P(X >= 60 | n=100, p=0.5) = 0.028 < 0.05: better than always answering true, yet constant.
    filled = fill(_mostly_true, rows=_rows(100))
    findings = filled.diagnose()
    f = _one(findings, "constant_answer")
    assert _kinds(findings) == ["constant_answer"]
    assert f.numbers["p_vs_majority"] == pytest.approx(sps.binomtest(60, 100, 0.5, alternative="greater").pvalue)
    assert f.numbers["p_vs_majority"] < 0.05
    assert f.text == "fake: gives valid=true in 90 of 100 answers that state a class: a constant answer"


def test_constant_answer_weight_counts_only_wrong_answers(fill: Any) -> None:
    filled = fill(_mostly_true, rows=_rows(100))
    f = _one(filled.diagnose(), "constant_answer")
    # The constant answer explains the 40 invalid items answered true; it cannot explain right answers.
    assert f.weight == pytest.approx(0.4)


@pytest.mark.parametrize(("true_answers", "kind"), [
    # 9 of 10 answers true (the valid five, and i01 i03 i05 i07): 90% -> constant; 6 right, p = 386/1024.
    pytest.param(9, "constant_answer_no_better_than_majority", id="90%-is-constant"),
    # 8 of 10 true (the valid five, and i01 i03 i05): 80%, not constant; 7 right, p = 176/1024.
    pytest.param(8, "no_better_than_majority", id="80%-is-not"),
])
def test_constant_answer_threshold(fill: Any, true_answers: int, kind: str) -> None:
    # The five valid items answered true, and the first (true_answers - 5) invalid ones too; the rest false.
    extra = {1, 3, 5, 7, 9}.intersection(range(2 * (true_answers - 5)))
    findings = fill(lambda j: '{"valid": true}' if _valid(j) or _k(j) in extra else '{"valid": false}').diagnose()
    assert _kinds(findings) == [kind]
    assert findings[0].numbers["predictions"] == {"True": true_answers, "False": 10 - true_answers}


def test_better_than_majority_gives_no_class_finding(fill: Any) -> None:
    # 9 of 10 right (i01 answered true): P(X >= 9 | 10, 0.5) = 11/1024 = 0.0107 < 0.05; answers 6 true / 4 false.
    filled = fill(lambda j: wrong(j) if j.item.id == "i01" else right(j))
    assert filled.diagnose() == []
    # The same cell at a stricter alpha is not shown better than the majority any more.
    strict = filled.diagnose(alpha=0.01)
    f = _one(strict, "no_better_than_majority")
    assert f.numbers["p_vs_majority"] == pytest.approx(11 / 1024)


def test_one_class_only_in_the_labels(fill: Any) -> None:
    # All ten items valid and a perfect model: it cannot be told apart from always answering true.
    # binomial_greater(10, 10, 1.0) = P(X >= 10 | 10, 1.0) = 1.0. kappa and MCC: both labelings use one
    # class, so both are undefined (nan), not the 1.00 that would read as agreement at any accuracy;
    # balanced accuracy: only the positive class occurs, its recall 1.0.
    # A perfect cell is never called "no better"; the constant answer is still flagged, at weight 0.
    filled = fill(right, rows=_rows(valid=lambda k: True))
    findings = filled.diagnose()
    f = _one(findings, "constant_answer")
    assert _kinds(findings) == ["constant_answer"]
    assert f.numbers["p_vs_majority"] == 1.0 == binomial_greater(10, 10, 1.0)
    assert (f.numbers["correct"], f.numbers["majority_count"]) == (10, 10)
    assert math.isnan(f.numbers["kappa"]) and math.isnan(f.numbers["mcc"])
    assert f.numbers["balanced_accuracy"] == 1.0
    # Every answer is right, so the finding explains no wrong answer and sorts last.
    assert f.weight == 0.0
    assert f.text == "fake: gives valid=true in 10 of 10 answers that state a class: a constant answer"


def test_perfect_small_cell_is_not_called_no_better(fill: Any) -> None:
    # 4 items (2 valid), all right: P(X >= 4 | 4, 0.5) = 1/16 = 0.0625 >= 0.05.
    filled = fill(right, rows=_rows(4))
    findings = filled.diagnose()
    assert not any("no better than" in f.text for f in findings), [f.text for f in findings]
    assert findings == []  # 2 true / 2 false answers, all right: nothing else to say either
    # The same small cell with one wrong answer (i03 answered true) is judged, and called no better:
    # 3 of 4 right, majority true (2 of 4, first on the tie), P(X >= 3 | 4, 0.5) = 5/16.
    # kappa: p_o = 0.75, answers 3 true / 1 false, p_e = 0.5*0.75 + 0.5*0.25 = 0.5 -> 0.5;
    # MCC: tp=2 fp=1 tn=1 fn=0 -> (2 - 0) / sqrt(3*2*1*2) = 0.577; balanced accuracy (2/2 + 1/2) / 2 = 0.75.
    [f] = fill(lambda j: wrong(j) if j.item.id == "i03" else right(j), rows=_rows(4)).diagnose()
    assert f.kind == "no_better_than_majority"
    assert f.numbers["p_vs_majority"] == pytest.approx(5 / 16)
    assert (f.numbers["n"], f.numbers["correct"], f.numbers["majority_count"]) == (4, 3, 2)
    assert f.text == ("fake: no better than always answering valid=true (3 of 4 right; always true gets 2; "
                      "exact binomial p=0.31 over 4 items; kappa 0.50 and MCC 0.58 over 4 answers stating a class; "
                      "balanced accuracy 0.75)")


def test_repeats_of_the_same_answers_do_not_change_the_class_test(fill: Any) -> None:
    # 7 of 10 items right in every repeat (temperature 0, deterministic): P(X >= 7 | 10, 0.5) = 176/1024.
    exp = _experiment(repeats=3)
    filled = fill(lambda j: right(j) if _k(j) < 7 else wrong(j), exp=exp)
    f = _one(filled.diagnose(), "no_better_than_majority")
    assert f.numbers["p_vs_majority"] == pytest.approx(176 / 1024)


# --- outcomes -------------------------------------------------------------------------------------


def test_truncated(fill: Any) -> None:
    # i00..i02 cut off mid-JSON; the other seven right. Truncated answers state no class.
    def answer(job: Job) -> Answer:
        if _k(job) < 3:
            return {"text": '{"valid": tr', "finish_reason": "length", "completion_tokens": 16}
        return right(job)

    findings = fill(answer).diagnose()
    f = _one(findings, "truncated")
    assert f.text == ("fake: 3 of 10 answers cut off at max_tokens=16; raise max_tokens or constrain the output "
                      "(response_format)")
    assert f.numbers == {"count": 3, "n": 10, "max_tokens": 16}
    assert f.weight == pytest.approx(0.3)
    assert f.hypothesis == "prompt engineering"
    # 7 of 10 right against a majority of 5: P(X >= 7 | 10, 0.5) = 176/1024 = 0.17, a weight-0 summary after it.
    assert _kinds(findings) == ["truncated", "no_better_than_majority"]
    summary = findings[1].numbers
    assert summary["p_vs_majority"] == pytest.approx(176 / 1024)
    assert (summary["answered"], summary["predictions"]) == (7, {"True": 3, "False": 4})
    # The confusion counts leave out answers without a class (runner.analysis.metrics): tp=3 (i04 i06 i08), tn=4
    # (i03 i05 i07 i09), fp=fn=0, so MCC and kappa over the stated answers are 1. Balanced accuracy counts
    # the cut-off items as misses of their class: valid i00 i02 and invalid i01, so
    # (3/5 + 4/5) / 2 = 0.7 - while accuracy over all ten answers is 0.7 too.
    assert summary["balanced_accuracy"] == pytest.approx(0.7)
    assert summary["mcc"] == pytest.approx(1.0)
    assert summary["kappa"] == pytest.approx(1.0)


def test_no_json(fill: Any) -> None:
    findings = fill(lambda j: "I think this config is fine." if _k(j) < 2 else right(j)).diagnose()
    f = _one(findings, "no_json")
    assert f.text == ("fake: 2 of 10 answers contain no JSON (prose or an echo of the input); constrain the "
                      "output with response_format or show the answer format")
    assert f.numbers == {"count": 2, "n": 10}
    assert f.weight == pytest.approx(0.2)
    assert findings[0] is f


def test_wrong_shape_names_the_key(fill: Any) -> None:
    # Three answers lack the key, one gives a list for it: four wrong shapes, most often the missing key.
    def answer(job: Job) -> Answer:
        k = _k(job)
        if k < 3:
            return '{"ok": true}'
        if k == 3:
            return '{"valid": [false]}'
        return right(job)

    findings = fill(answer).diagnose()
    f = _one(findings, "wrong_shape")
    assert f.text == "fake: 4 of 10 answers are JSON of the wrong shape (most often no key 'valid': 3)"
    assert f.numbers == {"count": 4, "n": 10, "most_common": "no key 'valid'"}
    assert f.weight == pytest.approx(0.4)
    assert findings[0] is f


def test_empty(fill: Any) -> None:
    findings = fill(lambda j: "" if _k(j) == 0 else ("  \n" if _k(j) == 1 else right(j))).diagnose()
    f = _one(findings, "empty")
    assert f.text == "fake: 2 of 10 answers are empty"
    assert f.numbers == {"count": 2, "n": 10}
    assert f.weight == pytest.approx(0.2)


def test_failed_requests(fill: Any) -> None:
    # i00..i02 failed (two HTTP 500, one timeout); the seven answered are all right. Of those, 4 are
    # invalid (majority 4 of 7): P(X >= 7 | 7, 4/7) = (4/7)^7 = 0.020 < 0.05, so no class finding.
    def answer(job: Job) -> Answer:
        k = _k(job)
        if k < 2:
            return {"status": "failed", "error": "HTTP 500: boom"}
        if k == 2:
            return {"status": "failed", "error": "timeout: no answer in 2 s"}
        return right(job)

    findings = fill(answer).diagnose()
    assert _kinds(findings) == ["failed"]
    f = findings[0]
    assert f.text == ("fake: 3 of 10 requests failed after their retries (most often: HTTP 500); `runner run` "
                      "again retries them")
    assert f.numbers == {"count": 3, "n": 10, "most_common": "HTTP 500"}
    assert f.weight == pytest.approx(0.3)


def test_findings_sorted_by_weight(fill: Any) -> None:
    # 4 truncated, 2 prose, 1 empty, 3 right: weights 0.4, 0.2, 0.1, then the class summary
    # (3 right vs majority 5: (5 - 3) / 10 = 0.2, after no_json, which came first at the same weight).
    def answer(job: Job) -> Answer:
        k = _k(job)
        if k < 4:
            return {"text": '{"val', "finish_reason": "length"}
        if k < 6:
            return "valid"
        if k == 6:
            return ""
        return right(job)

    findings = fill(answer).diagnose()
    assert _kinds(findings) == ["truncated", "no_json", "no_better_than_majority", "empty"]
    assert [f.weight for f in findings] == pytest.approx([0.4, 0.2, 0.2, 0.1])
    weights = [f.weight for f in findings]
    assert weights == sorted(weights, reverse=True)


def test_the_same_finding_in_some_cells_is_said_once(fill: Any) -> None:
    # Four cells (prompt a/b x temperature 0.0/0.5); at temperature 0.0 both prompts cut off i00..i02.
    exp = _experiment(prompts=2)
    exp["sampling"]["temperature"] = [0.0, 0.5]

    def answer(job: Job) -> Answer:
        if job.cell.get("temperature") == 0.0 and _k(job) < 3:
            return {"text": '{"valid": tr', "finish_reason": "length"}
        return right(job)

    findings = fill(answer, exp=exp).diagnose()
    f = _one(findings, "truncated")
    assert f.text == ("in 2 cells (prompt=a, temperature=0.0; prompt=b, temperature=0.0): 3 of 10 answers cut off "
                      "at max_tokens=16; raise max_tokens or constrain the output (response_format)")
    assert f.numbers["cells"] == ["prompt=a, temperature=0.0", "prompt=b, temperature=0.0"]
    assert f.weight == pytest.approx(0.3)


# --- repeats and items ----------------------------------------------------------------------------


def test_flips(fill: Any) -> None:
    # Two repeats; i00 and i01 answer right then wrong: 2 of 10 items flip.
    # agreement = (8 * 1 + 2 * 0.5) / 10 = 0.9; entropy = (8 * 0 + 2 * 1 bit) / 10 = 0.2 bits.
    # The class test runs over items, and a 1-1 tie leaves the item out: 8 of 8 decided items right against
    # a majority class of 4 (i02 i04 i06 i08 valid): P(X >= 8 | 8, 0.5) = 1/256, so no class finding.
    exp = _experiment(repeats=2)
    findings = fill(lambda j: wrong(j) if _k(j) < 2 and j.repeat == 1 else right(j), exp=exp).diagnose()
    assert _kinds(findings) == ["flips"]
    f = findings[0]
    assert f.text == "fake: 2 of 10 items flip between repeats (agreement 0.90, answer entropy 0.20 bits)"
    assert f.numbers == {"flipped": 2, "items": 10}
    assert f.weight == pytest.approx(0.1)
    assert f.hypothesis == "sampling randomness"


def test_repeats_that_agree_give_no_flips(fill: Any) -> None:
    exp = _experiment(repeats=3)
    findings = fill(lambda j: wrong(j) if _k(j) == 0 else right(j), exp=exp).diagnose()
    assert "flips" not in _kinds(findings)


def test_item_wrong_everywhere(fill: Any) -> None:
    # Two prompts; i03 wrong under both, everything else right. Same right/wrong pattern in both cells,
    # so no discordant pairs: no underpowered comparison either.
    exp = _experiment(prompts=2)
    findings = fill(lambda j: wrong(j) if j.item.id == "i03" else right(j), exp=exp).diagnose()
    assert _kinds(findings) == ["item_wrong_everywhere"]
    f = findings[0]
    assert f.text == ("1 of 10 items are wrong in every cell (2 cells): i03; suspect the item or the task, "
                      "not the settings")
    assert f.numbers == {"items": ["i03"], "cells": 2, "one_class": False, "explained_by": None,
                         "by_outcome": []}
    assert f.subject == "items"
    assert f.weight == pytest.approx(0.05)


def test_every_item_wrong_everywhere_is_left_to_the_class_findings(fill: Any) -> None:
    # Every answer wrong under both prompts: a statement about the model, not about some items. The two
    # cells say the same thing, so it is said once. Answers are the labels inverted: tp = tn = 0, fp = fn = 5;
    # kappa: p_o = 0, p_e = 0.5 -> -1; MCC = (0 - 25) / 25 = -1; balanced accuracy 0; p = P(X >= 0) = 1.
    exp = _experiment(prompts=2)
    findings = fill(wrong, exp=exp).diagnose()
    assert _kinds(findings) == ["no_better_than_majority"]
    f = findings[0]
    assert f.text == ("in every cell (2): no better than always answering valid=true (0 of 10 right; always true "
                      "gets 5; exact binomial p=1 over 10 items; kappa -1.00 and MCC -1.00 over 10 answers stating a "
                      "class; balanced accuracy 0.00)")
    assert f.subject == "in every cell (2)"
    assert f.numbers["cells"] == ["prompt=a", "prompt=b"]
    assert (f.numbers["kappa"], f.numbers["mcc"], f.numbers["balanced_accuracy"]) == (-1.0, -1.0, 0.0)
    assert f.weight == pytest.approx(0.5)  # (5 - 0) / 10 short of the majority


def test_item_wrong_in_one_cell_only_is_not_wrong_everywhere(fill: Any) -> None:
    exp = _experiment(prompts=2)
    findings = fill(lambda j: wrong(j) if j.item.id == "i03" and j.cell.get("prompt") == "a" else right(j),
                    exp=exp).diagnose()
    assert "item_wrong_everywhere" not in _kinds(findings)


def test_one_cell_does_not_blame_the_item_over_the_settings(fill: Any) -> None:
    # One cell, two repeats, i03 wrong in both: 9 of 10 items right, P(X >= 9 | 10, 0.5) = 11/1024, so no
    # class finding; the repeats agree, so no flips. Nothing was varied, so nothing is said about i03.
    exp = _experiment(repeats=2)
    findings = fill(lambda j: wrong(j) if j.item.id == "i03" else right(j), exp=exp).diagnose()
    assert not any(f.kind == "item_wrong_everywhere" and "not the settings" in f.text for f in findings)
    assert findings == []
    # The same answers under two prompts do blame the item: there, settings were varied.
    two_cells = _experiment(prompts=2, repeats=2)
    [f] = fill(lambda j: wrong(j) if j.item.id == "i03" else right(j), exp=two_cells).diagnose()
    assert f.kind == "item_wrong_everywhere"
    assert f.text == ("1 of 10 items are wrong in every cell (2 cells): i03; suspect the item or the task, "
                      "not the settings")
    assert f.numbers == {"items": ["i03"], "cells": 2, "one_class": False, "explained_by": None,
                         "by_outcome": []}


# --- comparisons ----------------------------------------------------------------------------------


def _connor(p10: float, p01: float, alpha: float = 0.05, power: float = 0.8) -> int:
    """Connor (1987), worked with the standard library's normal quantiles, not scipy's."""
    z = statistics.NormalDist()
    pd, delta = p10 + p01, p10 - p01
    root = z.inv_cdf(1 - alpha / 2) * math.sqrt(pd) + z.inv_cdf(power) * math.sqrt(pd - delta**2)
    return math.ceil((root / delta) ** 2)


def test_underpowered_comparison(fill: Any) -> None:
    # 20 items. Both prompts right on i00..i09; only prompt b right on i10..i15 (6); only prompt a (the
    # baseline) right on i16 i17 (2); both wrong on i18 i19. Accuracy a 12/20 = 0.6, b 16/20 = 0.8: +0.20.
    # McNemar: 2 of 8 discordant at p=0.5, two-sided = 2 * (1 + 8 + 28) / 256 = 0.289; one comparison, Holm the same.
    # Connor: p10 = 6/20 = 0.3, p01 = 2/20 = 0.1, pd = 0.4, delta = 0.2;
    #   n = ((1.959964 * sqrt(0.4) + 0.841621 * sqrt(0.4 - 0.04)) / 0.2)^2
    #     = ((1.959964 * 0.632456 + 0.841621 * 0.6) / 0.2)^2 = ((1.239581 + 0.504973) / 0.2)^2
    #     = 8.722770^2 = 76.09 -> 77
    exp = _experiment(prompts=2)

    def answer(job: Job) -> Answer:
        k = _k(job)
        good = k <= 9 or (10 <= k <= 15 if job.cell.get("prompt") == "b" else k in (16, 17))
        return right(job) if good else wrong(job)

    findings = fill(answer, exp=exp, rows=_rows(20)).diagnose()
    f = _one(findings, "underpowered")
    assert f.numbers["n_pairs"] == 20
    assert f.numbers["discordant"] == 8
    assert f.numbers["difference"] == pytest.approx(0.2)
    assert f.numbers["p"] == pytest.approx(74 / 256)
    assert f.numbers["p"] == pytest.approx(sps.binomtest(2, 8, 0.5).pvalue)
    assert f.numbers["p_holm"] == pytest.approx(74 / 256)
    assert f.numbers["pairs_needed"] == mcnemar_sample_size(6 / 20, 2 / 20) == _connor(0.3, 0.1) == 77
    assert f.text == ("prompt b vs a: difference +0.20 in accuracy is not detectable at n=20 items (McNemar "
                      "p=0.29, Holm 0.29); about 77 items would be needed for 80% power at alpha=0.05 (Connor 1987)")
    assert f.subject == "prompt b vs a"
    assert f.hypothesis == "prompt engineering"
    assert f.weight == pytest.approx(0.05)
    assert _one(findings, "item_wrong_everywhere").numbers["items"] == ["i18", "i19"]


def test_too_few_discordant_pairs_give_no_items_needed(fill: Any) -> None:
    # Prompt a (baseline) right on i00..i05; prompt b right on i00..i04 and i06..i08.
    # Pairs: 10; only b right: i06 i07 i08 (3); only a right: i05 (1). Difference 0.8 - 0.6 = +0.20.
    # McNemar: 1 of 4 discordant at p=0.5, two-sided = 2 * (1 + 4) / 16 = 0.625. Connor would say 77 from
    # these 4 pairs (the proportions of the test above), which is a guess: 4 < 5 discordant pairs.
    exp = _experiment(prompts=2)

    def answer(job: Job) -> Answer:
        k = _k(job)
        good = k <= 5 if job.cell.get("prompt") == "a" else k <= 4 or 6 <= k <= 8
        return right(job) if good else wrong(job)

    filled = fill(answer, exp=exp)
    f = _one(filled.diagnose(), "underpowered")
    assert f.numbers == {"n_pairs": 10, "difference": pytest.approx(0.2), "p": pytest.approx(0.625),
                         "p_holm": pytest.approx(0.625), "discordant": 4, "pairs_needed": None}
    assert f.text == ("prompt b vs a: difference +0.20 in accuracy is not detectable at n=10 items (McNemar "
                      "p=0.62, Holm 0.62); too few discordant pairs to estimate the items needed (4 discordant, at "
                      "least 5 needed)")
    (cmp,) = load_results(filled.plan, filled.store, filled.scorers).comparisons(0.05)
    assert cmp.items_needed() is None and not cmp.estimable
    # With one repeat the interval is the paired bootstrap of the right/wrong pairs, as before.
    assert (cmp.difference, cmp.low, cmp.high) == pytest.approx(
        paired_bootstrap_difference([k <= 5 for k in range(10)], [k <= 4 or 6 <= k <= 8 for k in range(10)]))
    assert cmp.sentence() == ("prompt b vs a: accuracy 0.80 vs 0.60 over 10 items; difference +0.20 [-0.20, +0.50]; "
                              "McNemar p=0.625 (Holm 0.625, 3 vs 1 discordant): noise at this n; too few discordant "
                              "pairs to estimate the items needed")


@pytest.mark.parametrize("wrong_under", [
    pytest.param({"a": {3}, "b": {3}}, id="no-discordant-pairs"),
    pytest.param({"a": {3}, "b": {4}}, id="one-each-way"),
])
def test_no_difference_gives_no_underpowered(fill: Any, wrong_under: dict[str, set[int]]) -> None:
    exp = _experiment(prompts=2)
    findings = fill(lambda j: wrong(j) if _k(j) in wrong_under[j.cell.get("prompt")] else right(j),
                    exp=exp).diagnose()
    assert "underpowered" not in _kinds(findings)


def test_significant_difference_gives_no_underpowered(fill: Any) -> None:
    # 30 items; prompt b right everywhere, prompt a wrong on the first 10: 10 vs 0 discordant,
    # McNemar p = 2 / 2^10 = 0.002.
    exp = _experiment(prompts=2)
    findings = fill(lambda j: wrong(j) if j.cell.get("prompt") == "a" and _k(j) < 10 else right(j),
                    exp=exp, rows=_rows(30)).diagnose()
    assert "underpowered" not in _kinds(findings)


def test_pairs_needed_is_more_than_pairs_tested(fill: Any) -> None:
    # 5 items; prompt a wrong on all, prompt b right on all: 5 vs 0 discordant, exact McNemar p = 2/32 = 0.0625.
    # Connor: p10 = 1, p01 = 0 -> ((1.96 * 1 + 0.84 * 0) / 1)^2 = 3.84 -> 4 < 5.
    exp = _experiment(prompts=2)
    findings = fill(lambda j: wrong(j) if j.cell.get("prompt") == "a" else right(j), exp=exp,
                    rows=_rows(5)).diagnose()
    f = _one(findings, "underpowered")
    # Connor's 4 is fewer than the 5 pairs tested, so no estimate is quoted; the sentence says why instead.
    assert f.numbers == {"n_pairs": 5, "difference": 1.0, "p": pytest.approx(0.0625), "p_holm": pytest.approx(0.0625),
                         "discordant": 5, "pairs_needed": None}
    assert f.text == ("prompt b vs a: difference +1.00 in accuracy is not detectable at n=5 items (McNemar p=0.062, "
                      "Holm 0.062); the normal approximation says this n should suffice, but the exact test on so few "
                      "discordant items does not reach significance")


# --- context, reasons, calibration ----------------------------------------------------------------


def test_context_limit(fill: Any) -> None:
    # n_ctx 512, max_tokens 16. Over: prompt + 16 > 512, i.e. prompt > 496: i00 (500), i01 (497).
    # Close: over 0.9 * 512 = 460.8 and not over: i02 (470), i03 (496: 496 + 16 = 512 fits exactly).
    # i04 (460) is under 460.8. Weight: 2 over of 10 prompts.
    tokens = {0: 500, 1: 497, 2: 470, 3: 496, 4: 460}

    def answer(job: Job) -> Answer:
        return {"text": right(job), "prompt_tokens": tokens.get(_k(job), 100), "variant": {"n_ctx_per_slot": 512}}

    findings = fill(answer).diagnose()
    assert _kinds(findings) == ["context_limit"]
    f = findings[0]
    assert f.text == ("fake: 2 prompts plus max_tokens=16 exceed the 512-token context (i00, i01); "
                      "2 use over 90% of it (i02, i03); raise n_ctx")
    assert f.numbers == {"over": ["i00", "i01"], "close": ["i02", "i03"], "refused": [], "n_ctx": 512}
    assert f.weight == pytest.approx(0.2)
    assert f.hypothesis == "context-window truncation"


def test_context_refused_requests(fill: Any) -> None:
    def answer(job: Job) -> Answer:
        if _k(job) < 2:
            return {"status": "failed", "variant": {"n_ctx_per_slot": 512},
                    "error": "HTTP 400: the request exceeds the available context size, try increasing it"}
        return {"text": right(job), "prompt_tokens": 100, "variant": {"n_ctx_per_slot": 512}}

    findings = fill(answer).diagnose()
    f = _one(findings, "context_limit")
    assert f.text == "fake: 2 were refused for context length (i00, i01); raise n_ctx"
    assert f.numbers["refused"] == ["i00", "i01"]
    assert _one(findings, "failed").numbers["most_common"] == "HTTP 400"


def test_context_weight_is_a_share_when_every_request_was_refused(fill: Any) -> None:
    def answer(job: Job) -> Answer:
        return {"status": "failed", "variant": {"n_ctx_per_slot": 512},
                "error": "HTTP 400: the request exceeds the available context size, try increasing it"}

    f = _one(fill(answer).diagnose(), "context_limit")
    assert f.weight == pytest.approx(1.0)


def test_no_context_finding_without_n_ctx(fill: Any) -> None:
    findings = fill(lambda j: {"text": right(j), "prompt_tokens": 10_000}).diagnose()
    assert findings == []


def _reasons(hit: Callable[[int], bool]) -> Callable[[Job], Answer]:
    def answer(job: Job) -> Answer:
        if _valid(job):
            return json.dumps({"valid": True, "failures": []})
        rule = job.item.fields["rule"]
        return json.dumps({"valid": False, "failures": [rule if hit(_k(job)) else "something_else"]})

    return answer


def test_reasons_miss(fill: Any) -> None:
    # Five invalid items, all rightly called invalid; the failures list names the rule for i01 i03 i05,
    # not for i07 i09: hits 3 of 5 (60%). Weight (5 - 3) / 10 answers * 0.5 = 0.1.
    exp = _experiment(reasons_field="failures", reason_label_field="rule")
    findings = fill(_reasons(lambda k: k <= 5), exp=exp).diagnose()
    assert _kinds(findings) == ["reasons_miss"]
    f = findings[0]
    assert f.text == ("fake: of 5 invalid items rightly called invalid, the failures list named the broken rule "
                      "for 3 (60%): right answers for the wrong reasons")
    assert f.numbers == {"caught": 5, "hits": 3}
    assert f.weight == pytest.approx(0.1)


def test_reasons_all_hit_gives_no_finding(fill: Any) -> None:
    exp = _experiment(reasons_field="failures", reason_label_field="rule")
    assert fill(_reasons(lambda k: True), exp=exp).diagnose() == []


def test_reasons_miss_counts_items_not_answers(fill: Any) -> None:
    # As test_reasons_miss, in two repeats: the 5 invalid items give 10 answers rightly calling them invalid,
    # 6 of which (i01 i03 i05, twice) name the rule. The count is of answers, and the sentence says so.
    # Weight (10 - 6) / 20 answers * 0.5 = 0.1.
    exp = _experiment(repeats=2, reasons_field="failures", reason_label_field="rule")
    f = _one(fill(_reasons(lambda k: k <= 5), exp=exp).diagnose(), "reasons_miss")
    assert "10 invalid items" not in f.text, f.text
    assert f.text == ("fake: of 10 answers rightly calling an invalid item invalid, the failures list named the "
                      "broken rule for 6 (60%): right answers for the wrong reasons")
    assert f.numbers == {"caught": 10, "hits": 6}
    assert f.weight == pytest.approx(0.1)


def _confident(right_conf: list[float], wrong_conf: list[float]) -> Callable[[Job], Answer]:
    # Items i00..i(len(right_conf)-1) right, the next ones wrong, each with its stated confidence.
    def answer(job: Job) -> Answer:
        k = _k(job)
        if k < len(right_conf):
            return json.dumps({"valid": _valid(job), "confidence": right_conf[k]})
        return json.dumps({"valid": not _valid(job), "confidence": wrong_conf[k - len(right_conf)]})

    return answer


def test_calibration(fill: Any) -> None:
    # Right (6): 0.9 0.8 0.6 0.7 0.9 0.5, mean 4.4 / 6 = 0.733; squared errors against 1:
    #   0.01 + 0.04 + 0.16 + 0.09 + 0.01 + 0.25 = 0.56
    # Wrong (4): 0.8 0.9 0.6 0.7, mean 3.0 / 4 = 0.75; squared errors against 0:
    #   0.64 + 0.81 + 0.36 + 0.49 = 2.30
    # Brier = (0.56 + 2.30) / 10 = 0.286 > 0.25, and wrong answers are more confident than right ones.
    exp = _experiment(confidence_field="confidence")
    findings = fill(_confident([0.9, 0.8, 0.6, 0.7, 0.9, 0.5], [0.8, 0.9, 0.6, 0.7]), exp=exp).diagnose()
    f = _one(findings, "calibration")
    assert f.numbers["brier"] == pytest.approx(0.286)
    assert f.numbers["mean_right"] == pytest.approx(4.4 / 6)
    assert f.numbers["mean_wrong"] == pytest.approx(0.75)
    assert f.numbers["n"] == 10
    assert f.text == ("fake: stated confidence does not track correctness: mean 0.73 when right (n=6), 0.75 when "
                      "wrong (n=4); Brier score 0.29 (always saying 0.5 scores 0.25)")
    assert f.weight == pytest.approx(0.05)


@pytest.mark.parametrize(("right_conf", "wrong_conf", "brier"), [
    # Means 0.90 vs 0.85 do not separate (< 0.1) though Brier is fine: 8 * 0.01 + 2 * 0.7225 = 1.525 -> 0.1525.
    pytest.param([0.9] * 8, [0.85] * 2, 0.1525, id="no-separation"),
    # Means separate (0.3 vs 0.1) but Brier is worse than always 0.5: 6 * 0.49 + 4 * 0.01 = 2.98 -> 0.298.
    pytest.param([0.3] * 6, [0.1] * 4, 0.298, id="brier-over-0.25"),
])
def test_calibration_triggers(fill: Any, right_conf: list[float], wrong_conf: list[float], brier: float) -> None:
    exp = _experiment(confidence_field="confidence")
    f = _one(fill(_confident(right_conf, wrong_conf), exp=exp).diagnose(), "calibration")
    assert f.numbers["brier"] == pytest.approx(brier)


def test_calibration_sentence_says_what_is_wrong(fill: Any) -> None:
    # Means separate (0.3 right vs 0.1 wrong), so confidence does track correctness; what is wrong is the
    # Brier score: (6 * 0.49 + 4 * 0.01) / 10 = 0.298, worse than always saying 0.5.
    exp = _experiment(confidence_field="confidence")
    f = _one(fill(_confident([0.3] * 6, [0.1] * 4), exp=exp).diagnose(), "calibration")
    assert "does not track correctness" not in f.text, f.text
    assert f.text == ("fake: stated confidence is miscalibrated, worse than always saying 0.5: mean 0.30 when right "
                      "(n=6), 0.10 when wrong (n=4); Brier score 0.30 (always saying 0.5 scores 0.25)")
    assert f.numbers == pytest.approx({"mean_right": 0.3, "mean_wrong": 0.1, "brier": 0.298, "n": 10})


@pytest.mark.parametrize(("right_conf", "wrong_conf"), [
    # Separates (0.9 vs 0.2) and Brier (6 * 0.01 + 4 * 0.04) / 10 = 0.022.
    pytest.param([0.9] * 6, [0.2] * 4, id="calibrated"),
    # Only four answers state a confidence: too few to judge.
    pytest.param([0.5] * 4, [], id="fewer-than-five"),
])
def test_no_calibration_finding(fill: Any, right_conf: list[float], wrong_conf: list[float]) -> None:
    exp = _experiment(confidence_field="confidence")
    answer = _confident(right_conf, wrong_conf)
    n = len(right_conf) + len(wrong_conf)
    findings = fill(lambda j: answer(j) if _k(j) < n else right(j), exp=exp).diagnose()
    assert "calibration" not in _kinds(findings)


def test_always_right_and_confident_gives_no_calibration_finding(fill: Any) -> None:
    exp = _experiment(confidence_field="confidence")
    findings = fill(lambda j: json.dumps({"valid": _valid(j), "confidence": 0.95}), exp=exp).diagnose()
    assert findings == []


# --- nothing to say -------------------------------------------------------------------------------


def test_nothing_stored(fill: Any) -> None:
    # n = 0: a plan with no results at all (two cells, so the comparison has no pairs).
    filled = fill(lambda j: None, exp=_experiment(prompts=2, repeats=2))
    assert filled.diagnose() == []
    assert diagnose(load_results(filled.plan, None, filled.scorers)) == []
    assert diagnose(load_results(filled.plan, filled.store, [])) == []


def test_clean_results_give_no_findings(fill: Any, capsys: pytest.CaptureFixture[str]) -> None:
    # Two prompts, two repeats, every answer right and well-formed, prompts far from the context.
    exp = _experiment(prompts=2, repeats=2)
    filled = fill(lambda j: {"text": right(j), "prompt_tokens": 40, "variant": {"n_ctx_per_slot": 512}}, exp=exp)
    assert filled.diagnose() == []
    assert main(["explain", str(filled.path)]) == 0
    out = capsys.readouterr().out
    assert out == nothing_wrong_line(filled.plan.experiment.name) + "\n"
    assert out.count("\n") == 1
    assert out.startswith("t: no findings: ")
    assert main(["explain", str(filled.path), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"experiment": "t", "findings": []}


def test_explain_formats(fill: Any, capsys: pytest.CaptureFixture[str]) -> None:
    # Two prompts: prose from prompt a on i00 i01; i03 wrong under both.
    exp = _experiment(prompts=2)

    def answer(job: Job) -> Answer:
        if job.cell.get("prompt") == "a" and _k(job) < 2:
            return "Looks valid to me."
        return wrong(job) if _k(job) == 3 else right(job)

    filled = fill(answer, exp=exp)
    findings = filled.diagnose()
    assert main(["explain", str(filled.path), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["experiment"] == "t"
    assert [f["kind"] for f in data["findings"]] == _kinds(findings)
    assert {"no_json", "item_wrong_everywhere"} <= set(_kinds(findings))
    assert set(data["findings"][0]) == {"kind", "subject", "text", "weight", "hypothesis", "numbers"}

    assert main(["explain", str(filled.path), "--format", "markdown"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(findings)
    for i, (line, f) in enumerate(zip(lines, findings, strict=True), 1):
        assert line.startswith(f"{i}. {f.text}")
    no_json = _one(findings, "no_json")
    assert no_json.text.startswith("prompt=a: 2 of 10 answers contain no JSON")
    assert lines[findings.index(no_json)] == f"{findings.index(no_json) + 1}. {no_json.text} *(prompt engineering)*"

    assert main(["explain", str(filled.path)]) == 0
    assert capsys.readouterr().out == render_findings(filled.plan.experiment.name, findings, "text")


def test_items_wrong_everywhere_that_are_one_class_blame_the_cells(fill: Any) -> None:
    # Two prompts, both always answering valid=true: the five invalid items are wrong in both cells, and
    # they are exactly the items of that class, so the sentence points at the class, not at the items.
    exp = _experiment(prompts=2)
    findings = fill(lambda j: json.dumps({"valid": True}), exp=exp).diagnose()
    f = _one(findings, "item_wrong_everywhere")
    assert f.numbers["one_class"] is True
    assert f.text == ("5 of 10 items are wrong in every cell (2 cells): i01, i03, i05, i07, i09; they are exactly "
                      "the items labelled false: no cell ever gets that class right")


def test_well_formed_wrong_answers_of_a_scorer_without_classes(fill: Any) -> None:
    # An exact-match scorer on the label: items i00..i02 answered right ("True"/"False" as the label),
    # the rest with a well-formed but wrong word. No classes, so the finding is about wrong answers.
    exp = _experiment()
    exp["scorers"] = [{"type": "exact"}]
    findings = fill(lambda j: str(_valid(j)) if _k(j) < 3 else "maybe", exp=exp).diagnose()
    f = _one(findings, "wrong_answer")
    assert f.text == "fake: 7 of 10 answers have the expected form but are wrong"
    assert f.weight == pytest.approx(0.7)
    # All right: nothing to say.
    assert fill(lambda j: str(_valid(j)), exp=exp).diagnose() == []


def test_too_few_answers_for_a_constant_answer(fill: Any) -> None:
    # Four items all answered valid=true: too few answers to call that a constant answer (it needs 5).
    findings = fill(lambda j: json.dumps({"valid": True}), rows=_rows(4)).diagnose()
    assert "constant" not in " ".join(_kinds(findings))
    assert _kinds(findings) == ["no_better_than_majority"]


# --- findings checked against the settings and against each other ----------------------------------

LOOP = '{"valid": false, "failures": [' + '"port out of range", ' * 15 + '"port ou'
CUT = '{"valid": tr'
SCHEMA = {"type": "json_schema", "json_schema": {"name": "answer", "schema": {
    "type": "object", "properties": {"valid": {"type": "boolean"}}, "required": ["valid"]}}}


def _cut(text: str) -> dict[str, Any]:
    return {"text": text, "finish_reason": "length", "completion_tokens": 16}


def test_cut_off_repetition_loops_are_named(fill: Any) -> None:
    # i00..i02 cut off in a loop of the same failure; the other seven right.
    findings = fill(lambda j: _cut(LOOP) if _k(j) < 3 else right(j)).diagnose()
    assert _kinds(findings)[:2] == ["truncated", "repetition_loop"]
    truncated, loop = findings[:2]
    # Every cut-off answer is a loop: no advice to raise max_tokens, which would only lengthen the loops.
    assert truncated.text == "fake: 3 of 10 answers cut off at max_tokens=16, every one a repetition loop"
    assert truncated.numbers == {"count": 3, "n": 10, "max_tokens": 16}
    assert loop.text == ("fake: 3 of 3 answers cut off at max_tokens=16 are repetition loops (the same text over and "
                         "over): raising max_tokens will not help; a repeat penalty or a shorter field might")
    assert loop.numbers == {"count": 3, "truncated": 3, "n": 10, "max_tokens": 16}
    assert loop.weight == pytest.approx(0.3)
    assert loop.hypothesis is None


def test_cut_off_answers_some_of_them_loops(fill: Any) -> None:
    # i00 loops; i01 i02 are cut off mid-JSON, as an answer too long for max_tokens is.
    findings = fill(lambda j: _cut(LOOP) if _k(j) == 0 else _cut(CUT) if _k(j) < 3 else right(j)).diagnose()
    assert _one(findings, "truncated").text == (
        "fake: 3 of 10 answers cut off at max_tokens=16; for the 2 that are not repetition loops, raise max_tokens "
        "or constrain the output (response_format)")
    loop = _one(findings, "repetition_loop")
    assert loop.text.startswith("fake: 1 of 3 answers cut off at max_tokens=16 are repetition loops")
    assert loop.numbers == {"count": 1, "truncated": 3, "n": 10, "max_tokens": 16}
    assert loop.weight == pytest.approx(0.1)


def test_under_a_json_schema_the_advice_is_not_to_constrain_the_output(fill: Any) -> None:
    # response_format set: i00..i02 cut off mid-JSON, i03 i04 prose (the server ignored the schema).
    exp = _experiment()
    exp["sampling"]["response_format"] = SCHEMA
    findings = fill(lambda j: _cut(CUT) if _k(j) < 3 else "It is valid." if _k(j) < 5 else right(j),
                    exp=exp).diagnose()
    assert _one(findings, "truncated").text == (
        "fake: 3 of 10 answers cut off at max_tokens=16; raise max_tokens or ask for fewer or shorter fields (the "
        "output is already constrained by response_format)")
    assert _one(findings, "no_json").text == (
        "fake: 2 of 10 answers contain no JSON (prose or an echo of the input) although response_format asks for "
        "it: check that the server honours response_format (`runner probe`)")
    assert not any("constrain the output" in f.text for f in findings)


def test_repeats_at_temperature_zero_measure_only_determinism(fill: Any) -> None:
    # Three repeats at temperature 0, every answer right: the one thing to say is what the repeats measure.
    findings = fill(right, exp=_experiment(repeats=3, temperature=0.0)).diagnose()
    assert _kinds(findings) == ["temperature_zero_repeats"]
    (f,) = findings
    assert f.text == ("fake: 3 repeats at temperature 0 measure only whether the server is deterministic, not "
                      "sampling variation")
    assert f.numbers == {"repeats": 3, "temperature": 0.0}
    assert (f.weight, f.hypothesis) == (0.01, "sampling randomness")
    # Said once for every cell at temperature 0; not at all for one repeat, or when sampling.
    [both] = fill(right, exp=_experiment(prompts=2, repeats=2, temperature=0.0)).diagnose()
    assert both.text == ("in every cell (2): 2 repeats at temperature 0 measure only whether the server is "
                         "deterministic, not sampling variation")
    assert fill(right, exp=_experiment(repeats=1, temperature=0.0)).diagnose() == []
    assert fill(right, exp=_experiment(repeats=3, temperature=0.7)).diagnose() == []


def test_items_wrong_everywhere_because_they_were_cut_off_are_not_blamed(fill: Any) -> None:
    # Two prompts; i00..i02 cut off under both (the "24 of 40 answers cut off" case), the rest right.
    exp = _experiment(prompts=2)
    findings = fill(lambda j: _cut(CUT) if _k(j) < 3 else right(j), exp=exp).diagnose()
    assert _one(findings, "truncated").text.startswith("in every cell (2): 3 of 10 answers cut off at max_tokens=16")
    f = _one(findings, "item_wrong_everywhere")
    assert f.text == ("3 of 10 items are wrong in every cell (2 cells): i00, i01, i02; 6 of their 6 answers state no "
                      "answer (6 cut off at max_tokens): the findings on those outcomes explain them, not the item or "
                      "the task")
    assert f.numbers == {"items": ["i00", "i01", "i02"], "cells": 2, "one_class": False, "explained_by": "outcomes",
                         "by_outcome": ["i00", "i01", "i02"]}
    assert f.weight == pytest.approx(0.2 * 3 / 10 * 0.5)
    assert not any("suspect the item" in g.text for g in findings)


def test_items_wrong_everywhere_split_into_explained_and_suspect(fill: Any) -> None:
    # As above, and i03 answered wrong under both prompts: only i03 is suspect. i04 is cut off under prompt a
    # and wrong under b: one of its two answers is an answer, so not "mostly" cut off; it is suspect too.
    exp = _experiment(prompts=2)

    def answer(job: Job) -> Answer:
        k = _k(job)
        if k < 3 or (k == 4 and job.cell.get("prompt") == "a"):
            return _cut(CUT)
        return wrong(job) if k in (3, 4) else right(job)

    f = _one(fill(answer, exp=exp).diagnose(), "item_wrong_everywhere")
    assert f.text == ("5 of 10 items are wrong in every cell (2 cells): i00, i01, i02, i03, i04; 3 of them (i00, i01, "
                      "i02) mostly state no answer (6 of their 6 answers: 6 cut off at max_tokens), which the findings "
                      "on those outcomes explain; for the other 2 (i03, i04): suspect the item or the task, not the "
                      "settings")
    assert (f.numbers["explained_by"], f.numbers["by_outcome"]) == (None, ["i00", "i01", "i02"])
    assert f.weight == pytest.approx((2 + 0.2 * 3) / 10 * 0.5)


def test_two_constant_cells_are_not_called_underpowered(fill: Any) -> None:
    # Prompt a always answers true; prompt b answers true except on i01 (false, right). Both give a constant
    # answer (10 of 10 and 9 of 10 items); the one discordant pair (i01) is no difference more items would
    # detect. i03 i05 i07 i09 (false) are wrong in both cells, and not all the false items (i01 is right
    # under b): the constant answer explains them.
    exp = _experiment(prompts=2)
    findings = fill(lambda j: '{"valid": false}' if j.item.id == "i01" and j.cell.get("prompt") == "b"
                    else '{"valid": true}', exp=exp).diagnose()
    assert "underpowered" not in _kinds(findings)
    f = _one(findings, "both_constant")
    assert f.text == ("prompt b vs a: both cells give a constant answer (true in 9 of 10 items, true in 10 of 10): "
                      "more items will not separate them")
    assert f.numbers == {"n_pairs": 10, "difference": pytest.approx(0.1), "p": 1.0, "p_holm": 1.0, "discordant": 1,
                         "constant": [True, True]}
    assert f.weight == pytest.approx(0.025)
    assert f.hypothesis == "prompt engineering"
    wrong_everywhere = _one(findings, "item_wrong_everywhere")
    assert wrong_everywhere.text == (
        "4 of 10 items are wrong in every cell (2 cells): i03, i05, i07, i09; every cell gives a constant answer "
        "(true), which is not their label: the constant answer explains them, not the item or the task")
    assert wrong_everywhere.numbers["explained_by"] == "constant_answer"


def _every_third(job: Job, cell: str) -> bool:
    # 12 items x 3 repeats. Prompt a right on repeat 0 of i00 i01 i02 (3 of 36 answers); prompt b right on
    # repeats 0 and 1 of i00 and i03 and on repeat 0 of i01 (5 of 36).
    k, r = _k(job), job.repeat
    if cell == "a":
        return k < 3 and r == 0
    return (k in (0, 3) and r < 2) or (k == 1 and r == 0)


def test_comparison_accuracies_are_the_tables_over_items_with_their_repeats(fill: Any) -> None:
    exp = _experiment(prompts=2, repeats=3)
    filled = fill(lambda j: right(j) if _every_third(j, j.cell.get("prompt")) else wrong(j), exp=exp,
                  rows=_rows(12))
    results = load_results(filled.plan, filled.store, filled.scorers)
    (cmp,) = results.comparisons(0.05)
    table = {c.cell.get("prompt"): results.stats(c, 0).accuracy() for c in results.cells}
    assert table == {"a": pytest.approx(3 / 36), "b": pytest.approx(5 / 36)}
    # The comparison shows the table's accuracies: each item's share of right repeats, averaged over items.
    assert (cmp.baseline_accuracy, cmp.value_accuracy) == (pytest.approx(3 / 36), pytest.approx(5 / 36))
    assert (cmp.n_items, cmp.repeats) == (12, (3, 3))
    # Per-item differences b - a: i00 2/3 - 1/3, i01 0, i02 -1/3, i03 2/3, the rest 0: mean (2/3) / 12 = 2/36.
    diffs = [1 / 3, 0, -1 / 3, 2 / 3] + [0] * 8
    assert cmp.difference == pytest.approx(sum(diffs) / 12) == pytest.approx(5 / 36 - 3 / 36)
    # The interval is the bootstrap of those per-item differences (2000 resamples of 12 items, seed 0).
    rng = np.random.default_rng(0)
    means = np.asarray(diffs)[rng.integers(0, 12, size=(2000, 12))].mean(axis=1)
    assert (cmp.low, cmp.high) == pytest.approx(tuple(np.quantile(means, [0.025, 0.975])))
    # McNemar on each item's majority: right under b for i00 and i03 (2 of 3 repeats), never under a.
    assert (cmp.n_pairs, cmp.only_value, cmp.only_baseline, cmp.p_value) == (12, 2, 0, 0.5)
    assert cmp.sentence() == (
        f"prompt b vs a: accuracy 0.14 vs 0.08 over 12 items, 3 repeats each; difference +0.06 [{cmp.low:+.2f}, "
        f"{cmp.high:+.2f}]; McNemar on per-item majority p=0.5 (Holm 0.5, 2 vs 0 discordant): noise at this n; too "
        "few discordant pairs to estimate the items needed")
