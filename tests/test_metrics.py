"""Per-cell metrics: an answer that states no class is a miss for recall, never a false positive."""

from __future__ import annotations

import pytest

from conftest import Project, base_experiment
from runner.analysis.metrics import CellStats, JobResult
from runner.config.loader import load_experiment
from runner.plan.planner import build_plan
from runner.scoring.scorers import BinaryClassification, build_scorers
from runner.store.database import JobRecord
from runner.testing.fault_server import ThreadedFaultServer


def _cell_stats(project: Project, labels: dict[str, bool], answers: dict[str, tuple[str, str]]) -> CellStats:
    """One cell (one prompt, temperature 0, no repeats) whose item `i` got the answer answers[i]."""
    project.write_dataset([{"id": i, "config": {}, "valid": v} for i, v in labels.items()])
    exp = base_experiment()
    exp["prompts"]["variants"] = exp["prompts"]["variants"][:1]
    exp["sampling"] = {"temperature": 0.0}
    exp["repeats"] = 1
    experiment = load_experiment(project.write(exp))
    scorer = build_scorers(list(experiment.scorers), "valid")[0]
    assert isinstance(scorer, BinaryClassification)
    stats = CellStats()
    for job in build_plan(experiment).jobs():
        text, finish = answers[job.item.id]
        record = JobRecord(job.job_id, "ok", 1, None, text, finish, 10, 5, 0.1, None, None)
        stats.add(JobResult(job, record), scorer.score(text, finish, job.item), scorer)
    return stats


def test_unanswered_positive_items_are_misses_for_recall_and_f1(project: Project) -> None:
    # a: valid, answered valid (tp); b: valid, cut off (no class); c: invalid, answered invalid (tn);
    # d: invalid, answered valid (fp).
    stats = _cell_stats(project, {"a": True, "b": True, "c": False, "d": False},
                        {"a": ('{"valid": true}', "stop"), "b": ('{"valid": tr', "length"),
                         "c": ('{"valid": false}', "stop"), "d": ('{"valid": true}', "stop")})
    assert (stats.tp, stats.fn, stats.tn, stats.fp, stats.unanswered_pos) == (1, 0, 1, 1, 1)
    assert stats.recall() == pytest.approx(1 / 2)  # tp / (tp + fn + unanswered positives)
    assert stats.precision() == pytest.approx(1 / 2)  # tp / (tp + fp)
    assert stats.f1() == pytest.approx(2 / (2 + 1 + 0 + 1))
    assert stats.metric("balanced_accuracy") == pytest.approx((1 / 2 + 1 / 2) / 2)
    assert stats.metric("false_negatives") == 0  # the cut-off answer stated nothing: not a stated error
    assert stats.accuracy() == pytest.approx(2 / 4)


def test_answer_shares_count_only_stated_classes(project: Project) -> None:
    stats = _cell_stats(project, dict.fromkeys("abcd", True),
                        {"a": ('{"valid": true}', "stop"), "b": ('{"valid": true}', "stop"),
                         "c": ('{"valid": false}', "stop"), "d": ("I think it is fine.", "stop")})
    assert stats.metric("answers") == "true 67%, false 33%"
    assert stats.metric("outcomes") == "no_json 25%"


def test_every_report_metric_name_is_registered_and_every_registered_metric_is_allowed() -> None:
    # The config stage lists the names (it validates report.metrics); the analysis registers how to
    # compute them. One place each, kept equal here.
    from runner.analysis.columns import METRICS
    from runner.config.schema import REPORT_METRICS

    assert set(METRICS) == set(REPORT_METRICS)


def test_a_registered_metric_is_allowed_in_report_metrics_and_an_unknown_one_is_refused(
        project: Project, fault_server: ThreadedFaultServer, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    import runner.analysis.columns as metrics
    from runner.cli import main

    monkeypatch.setattr(metrics, "METRICS", dict(metrics.METRICS))  # undone after the test
    exp = base_experiment(f"{fault_server.url}/v1")
    exp["report"] = {"rows": ["prompt"], "metrics": ["n", "double_n"]}
    path = str(project.write(exp))
    assert main(["validate", path, "--offline"]) == 2
    assert capsys.readouterr().err.startswith(f"runner: {path}: report.metrics: unknown metric 'double_n'; use one "
                                              "of: n, items, failed, ")
    metrics.register_metric("double_n", lambda s: 2 * s.ok)
    assert main(["run", path, "--quiet", "--limit", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[2].split() == ["prompt", "n", "double_n"]
    assert [line.split()[1:] for line in lines[4:6]] == [["4", "8"], ["4", "8"]]


def test_a_bootstrap_verdict_wider_than_its_resamples_can_bound_is_not_judged(project: Project) -> None:
    # 12 items, 8 right: f1 has a bootstrap interval. At 98.75% (4 settings) 12 of the 2,000 draws lie
    # beyond each bound; at 99.9% (50 settings) one would: that bound is the sample's extreme.
    from runner.config.schema import Threshold
    from runner.reporting.judgement import verdicts

    labels = {f"i{n}": n % 2 == 0 for n in range(12)}
    stats = _cell_stats(project, labels, {i: (f'{{"valid": {str(v if n < 8 else not v).lower()}}}', "stop")
                                          for n, (i, v) in enumerate(labels.items())})
    rows = {(("a",), ()): stats}
    judged = verdicts(Threshold(metric="f1", min=0.6), ["prompt"], [], rows, confidence=1 - 0.05 / 4)[0]
    assert judged.status != "not judged" and judged.low is not None
    wide = verdicts(Threshold(metric="f1", min=0.6), ["prompt"], [], rows, confidence=1 - 0.05 / 50)[0]
    assert (wide.status, wide.text) == ("not judged", "prompt=a: not judged: a 99.9% bootstrap interval would rest "
                                        "on fewer than 5 of its 2,000 resamples in each tail")
