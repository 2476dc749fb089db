"""The `similarity` scorer and the text measures across repeats, through real runs on the fault server.

Every expected value is the library's own, computed here on the same strings (rapidfuzz, sacrebleu,
rouge-score), and compared with what the runner stored and reported.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from rapidfuzz import fuzz
from rapidfuzz.distance import Levenshtein
from rouge_score import rouge_scorer
from sacrebleu.metrics import CHRF

import runner
from conftest import Project, base_experiment
from runner.cli import main
from runner.reporting.tables import Report
from runner.testing.fault_plan import ScriptRule
from runner.testing.fault_server import FaultPlan, ThreadedFaultServer

REPO = Path(__file__).resolve().parents[1]


REFERENCES = {
    "s1": "The cache keeps recent results in memory so repeated requests skip the database.",
    "s2": "Retries with exponential backoff spread the load after an outage.",
}
ANSWERS = {
    "s1": "The cache stores recent results in memory, so repeat requests do not hit the database.",
    "s2": "After an outage, retries back off exponentially to spread load.",
}


def _library(method: str, answer: str, reference: str) -> float:
    if method == "ratio":
        return fuzz.ratio(answer, reference) / 100
    if method == "levenshtein":
        return Levenshtein.normalized_similarity(answer, reference)
    if method == "token_sort_ratio":
        return fuzz.token_sort_ratio(answer, reference) / 100
    if method == "chrf":
        return CHRF().sentence_score(answer, [reference]).score / 100
    return rouge_scorer.RougeScorer([method]).score(reference, answer)[method].fmeasure


def _experiment(url: str, scorers: list[dict[str, Any]], **changes: Any) -> dict[str, Any]:
    exp = base_experiment(f"{url}/v1")
    exp["prompts"] = {"variants": [{"name": "p", "text": "Summarize: {{ text }}"}]}
    exp["dataset"] = {"path": "data.jsonl", "label_field": None}
    exp["sampling"] = {"temperature": 0.0, "seed": 1, "max_tokens": 64}
    exp["repeats"] = 1
    exp["scorers"] = scorers
    exp.update(changes)
    return exp


def _records(report: Any, table: int = 0) -> list[dict[str, Any]]:
    assert isinstance(report, Report)
    return [r.metrics for r in report.tables[table].records]


METHODS = ["ratio", "levenshtein", "token_sort_ratio", "chrf", "rouge1", "rougeL"]


def test_stored_similarity_is_the_librarys_value_for_every_method(project: Project) -> None:
    project.write_dataset([{"id": i, "text": f"text of {i}", "reference": r} for i, r in REFERENCES.items()])
    plan = FaultPlan(script={f"text of {i}": (a, "stop") for i, a in ANSWERS.items()})
    scorers = [{"name": m, "type": "similarity", "method": m, "min": 0.5} for m in METHODS]
    with ThreadedFaultServer(plan) as server:
        path = project.write(_experiment(server.url, scorers,
                                         report={"metrics": ["n", "accuracy", "similarity", "divergence"]}))
        assert main(["run", str(path), "--quiet"]) == 0
    results = runner.results(path)
    report = runner.report(path)
    for index, method in enumerate(METHODS):
        expected = {i: _library(method, ANSWERS[i], REFERENCES[i]) for i in REFERENCES}
        stored = {r.job.item.id: s.extras["similarity"] for r, s in
                  zip(results.cells[0].results, results.cells[0].scores[index], strict=True) if s and s.extras}
        assert stored == pytest.approx(expected, abs=1e-12), method
        metrics = _records(report, index)[0]
        mean = sum(expected.values()) / 2
        assert metrics["similarity"]["value"] == pytest.approx(mean)
        assert metrics["divergence"]["value"] == pytest.approx(1 - mean)
        assert metrics["accuracy"]["value"] == sum(v >= 0.5 for v in expected.values()) / 2


def test_normalize_makes_a_near_exact_answer_equal_and_field_reads_the_json(project: Project) -> None:
    project.write_dataset([{"id": "q1", "text": "q1", "reference": "Eiffel Tower", "note": "too low for peaks"},
                           {"id": "q2", "text": "q2", "reference": "1889", "note": "fine"}])
    plan = FaultPlan(script={"q1": ('The Eiffel tower. {"reason": "too low for the peaks"}', "stop"),
                             "q2": ('1889 {"why": 1}', "stop")})
    scorers = [{"name": "exactish", "type": "similarity", "normalize": True, "min": 0.9},
               {"name": "strict", "type": "similarity"},
               {"name": "reason", "type": "similarity", "field": "reason", "reference_field": "note"}]
    with ThreadedFaultServer(plan) as server:
        path = project.write(_experiment(server.url, scorers))
        assert main(["run", str(path), "--quiet"]) == 0
    cell = runner.results(path).cells[0]
    by_scorer = [{r.job.item.id: s for r, s in zip(cell.results, scores, strict=True)} for scores in cell.scores]
    q1_text = 'The Eiffel tower. {"reason": "too low for the peaks"}'
    assert by_scorer[0]["q1"].extras == {"similarity": fuzz.ratio("eiffel tower reason too low for peaks",
                                                                   "eiffel tower") / 100}
    assert by_scorer[1]["q1"].extras == {"similarity": fuzz.ratio(q1_text, "Eiffel Tower") / 100}
    assert by_scorer[2]["q1"].extras == {"similarity": fuzz.ratio("too low for the peaks", "too low for peaks") / 100}
    assert by_scorer[2]["q1"].correct is False  # no min: only an identical reason is right
    # No `reason` in q2's JSON: nothing of the note was said.
    assert (by_scorer[2]["q2"].outcome, by_scorer[2]["q2"].extras) == ("wrong_shape", {"similarity": 0.0})


def test_a_short_answer_equal_after_normalization_is_right(project: Project) -> None:
    project.write_dataset([{"id": "q1", "text": "q1", "reference": "the Eiffel Tower"}])
    with ThreadedFaultServer(FaultPlan(script={"q1": ("Eiffel tower.", "stop")})) as server:
        path = project.write(_experiment(server.url, [{"type": "similarity", "normalize": True}]))
        assert main(["run", str(path), "--quiet"]) == 0
    score = runner.results(path).cells[0].scores[0][0]
    assert score is not None and (score.correct, score.extras) == (True, {"similarity": 1.0})


# Planted answers: per item, per temperature, per seed (repeat r has seed 1 + r).
PLANTED = {
    ("r1", 0.0): ["alpha beta", "alpha beta", "alpha beta"],
    ("r1", 0.7): ["alpha beta", "alpha beta", "gamma delta"],
    ("r2", 0.0): ["one two three", "one two three", "one two three"],
    ("r2", 0.7): ["one two", "three", "one two four"],
}


def _planted_rules() -> list[ScriptRule]:
    return [ScriptRule((text, "stop"), {"temperature": t, "seed": 1 + r}, f"item {item}")
            for (item, t), texts in PLANTED.items() for r, text in enumerate(texts)]


def _pairwise(texts: list[str]) -> float:
    pairs = list(itertools.combinations(texts, 2))
    return sum(fuzz.ratio(a, b) / 100 for a, b in pairs) / len(pairs)


def test_repeat_text_measures_on_planted_answers(project: Project) -> None:
    project.write_dataset([{"id": i, "text": f"item {i}", "reference": "alpha beta" if i == "r1" else "one two three"}
                           for i in ("r1", "r2")])
    metrics = ["n", "items", "identical_share", "distinct_outputs", "pairwise_similarity", "divergence_t0",
               "divergence", "agreement"]
    with ThreadedFaultServer(FaultPlan(rules=_planted_rules())) as server:
        path = project.write(_experiment(server.url, [{"type": "similarity", "min": 0.9}],
                                         sampling={"temperature": [0.0, 0.7], "seed": 1, "max_tokens": 16},
                                         repeats=3, report={"rows": ["temperature"], "metrics": metrics}))
        assert main(["run", str(path), "--quiet"]) == 0
    cold, warm = _records(runner.report(path))
    assert [cold[m]["value"] for m in ("identical_share", "distinct_outputs", "pairwise_similarity",
                                       "divergence_t0", "divergence")] == [1.0, 1.0, 1.0, 0.0, 0.0]
    r1, r2 = PLANTED[("r1", 0.7)], PLANTED[("r2", 0.7)]
    assert warm["identical_share"]["value"] == pytest.approx((2 / 3 + 1 / 3) / 2)
    assert warm["distinct_outputs"]["value"] == pytest.approx((2 + 3) / 2)
    assert warm["pairwise_similarity"]["value"] == pytest.approx((_pairwise(r1) + _pairwise(r2)) / 2)
    # Each repeat against the item's temperature-0 answer, which here is also its reference.
    to_t0 = [sum(1 - fuzz.ratio(t, PLANTED[(i, 0.0)][0]) / 100 for t in texts) / 3
             for i, texts in (("r1", r1), ("r2", r2))]
    assert warm["divergence_t0"]["value"] == pytest.approx(sum(to_t0) / 2)
    assert warm["divergence"]["value"] == pytest.approx(sum(to_t0) / 2)
    # Agreement reads the class when there is one; with none (a similarity scorer) it reads the text,
    # so on these answers it equals the identical share.
    assert warm["agreement"]["value"] == pytest.approx(warm["identical_share"]["value"])
    # Two items are too few for a bootstrap interval (runner.analysis.clustered.MIN_BOOTSTRAP_ITEMS): none,
    # rather than [0.67, 0.67] from resampling two items.
    for name in ("identical_share", "distinct_outputs", "pairwise_similarity", "divergence_t0"):
        m = warm[name]
        assert (m["n_items"], m["interval"], m["low"], m["high"]) == (2, None, None, None), name
    assert warm["items"] == {"n_items": 2, "n_jobs": 6}


def test_divergence_from_temperature_zero_is_undefined_without_it_in_the_grid(project: Project) -> None:
    project.write_dataset([{"id": "r1", "text": "item r1", "reference": "x"}])
    with ThreadedFaultServer(FaultPlan()) as server:
        path = project.write(_experiment(server.url, [{"type": "similarity"}],
                                         sampling={"temperature": [0.3, 0.7], "seed": 1, "max_tokens": 16},
                                         repeats=2, report={"rows": ["temperature"],
                                                            "metrics": ["n", "divergence_t0", "identical_share"]}))
        assert main(["run", str(path), "--quiet"]) == 0
    for row in _records(runner.report(path)):
        assert row["divergence_t0"]["value"] is None
        assert row["identical_share"]["value"] is not None


@pytest.mark.parametrize(("scorer", "message"), [
    ({"type": "similarity", "method": "bleu"},
     "scorers[0].method: unknown value 'bleu'; use 'ratio', 'levenshtein', 'token_sort_ratio', 'chrf', 'rouge1' or "
     "'rougeL'"),
    ({"type": "similarity", "reference_field": "summary"},
     "scorers[0].reference_field: dataset items ['s1', 's2'] have no field 'summary'; add the reference text to "
     "every row or name the field that holds it"),
    ({"type": "similarity", "min": 1.5},
     "scorers[0].min: 1.5 is more than the maximum 1; set min to 1 or less"),
    ({"type": "similarity", "refrence_field": "reference"},
     "scorers[0].refrence_field: unknown key 'refrence_field'; allowed keys here: name, type, reference_field, "
     "method, min, normalize, field"),
])
def test_a_bad_similarity_config_is_one_line_naming_the_file_and_key(
        project: Project, capsys: pytest.CaptureFixture[str], scorer: dict[str, Any], message: str) -> None:
    project.write_dataset([{"id": i, "text": i, "reference": r} for i, r in REFERENCES.items()])
    path = project.write(_experiment("http://127.0.0.1:9", [scorer]))
    assert main(["validate", str(path), "--offline"]) == 2
    assert capsys.readouterr().err == f"runner: {path}: {message}\n"
    assert not (project.root / "results").exists()


def test_a_reference_that_is_not_text_is_refused(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    project.write_dataset([{"id": "a", "text": "a", "reference": ["x"]}, {"id": "b", "text": "b", "reference": 7}])
    path = project.write(_experiment("http://127.0.0.1:9", [{"type": "similarity"}]))
    assert main(["validate", str(path), "--offline"]) == 2
    assert capsys.readouterr().err == (f"runner: {path}: scorers[0].reference_field: field 'reference' of dataset "
                                       "items ['a'] is not a text; give every row one reference text (a string)\n")


@pytest.mark.model
def test_the_summarization_experiment_on_the_real_model_stores_rouge_scores_of_its_answers(
        project: Project, llama_server: str) -> None:
    # experiments/summarization.yaml as shipped, but on the session's llama.cpp server, with short
    # answers and its results in the test's folder.
    import yaml

    root = Path(__file__).resolve().parent.parent
    exp = yaml.safe_load((root / "experiments" / "summarization.yaml").read_text())
    exp["backend"] = {"kind": "openai", "base_url": f"{llama_server}/v1", "concurrency": 2}
    exp["models"] = [{"name": "smollm2", "id": "smollm2"}]
    exp["prompts"]["directory"] = str(root / "prompt_templates" / "summarization")
    exp["dataset"]["path"] = str(root / "datasets" / "summarization.jsonl")
    exp["sampling"]["max_tokens"] = 24
    exp["allow_outside_paths"] = True
    path = project.write(exp)
    assert main(["run", str(path), "--quiet", "--no-report", "--limit", "2"]) == 0
    cell = runner.results(path, limit=2).cells[0]
    scorer = rouge_scorer.RougeScorer(["rougeL"])
    for result, score in zip(cell.results, cell.scores[0], strict=True):
        assert result.record is not None and result.record.status == "ok"
        text = (result.record.text or "").strip()
        assert text, "the model answered"
        expected = scorer.score(result.job.item.fields["reference"], text)["rougeL"].fmeasure
        assert score is not None and score.extras == {"similarity": pytest.approx(expected, abs=1e-12)}


def test_export_carries_each_answers_similarity(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    project.write_dataset([{"id": i, "text": f"text of {i}", "reference": r} for i, r in REFERENCES.items()])
    plan = FaultPlan(script={f"text of {i}": (a, "stop") for i, a in ANSWERS.items()})
    with ThreadedFaultServer(plan) as server:
        path = project.write(_experiment(server.url, [{"name": "sim", "type": "similarity", "method": "chrf"}]))
        assert main(["run", str(path), "--quiet", "--no-report"]) == 0
    capsys.readouterr()
    assert main(["export", str(path), "--format", "jsonl"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {r["item_id"]: r["scores"]["sim"]["similarity"] for r in records} == pytest.approx(
        {i: _library("chrf", ANSWERS[i], REFERENCES[i]) for i in REFERENCES})
    assert main(["export", str(path), "--format", "csv"]) == 0
    header = capsys.readouterr().out.splitlines()[0].split(",")
    assert "sim.similarity" in header


def test_validating_imports_no_similarity_library() -> None:
    # In a fresh interpreter: validate only looks for rouge-score and sacrebleu (nltk alone costs 1.7 s);
    # a run imports them before its first answer (Scorer.warm).
    code = ("import sys; from runner.cli import main; "
            "rc = main(['validate', 'experiments/summarization.yaml', '--offline']); "
            "print(rc, sorted(m for m in ('rouge_score', 'nltk', 'sacrebleu') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, check=False)
    assert done.stdout.splitlines()[-1] == "0 []", done.stderr
