"""The application layer: every verb as a Python function. The CLI is argument parsing and
rendering over these; a notebook or another tool calls them directly.

    import runner
    summary = runner.run("experiments/smollm_quant.yaml", limit=1)
    report = runner.report("experiments/smollm_quant.yaml")
    print(runner.render(report, "markdown"))
    for finding in runner.explain("experiments/smollm_quant.yaml"):
        print(finding.text)

Each function validates everything that needs no request before anything runs (a bad file raises
`UserError` and writes nothing). `run` writes the store; `score` re-scores what is stored after a
scorer changed; `report`, `explain` and `results` open the store read-only and never write.

Heavy modules (the backends, the analysis, scipy) are imported inside the functions that need
them, so `runner validate` of a broken file costs little more than importing pydantic.
"""

from runner.api._files import write_atomically
from runner.api._investigate import (
    StepRun,
    decision_exit_code,
    investigation_html,
    investigation_junit,
    is_investigation,
    render_investigation,
    render_investigation_findings,
    report_investigation,
    run_investigation,
    validate_investigation,
)
from runner.api._matrix import matrix, render_matrix
from runner.api._prepare import (
    PlanStatus,
    Prepared,
    experiment_hash,
    experiment_name,
    plan_status,
    prepare,
    schema,
    validate,
)
from runner.api._probe import VariantProbe, probe, probe_async
from runner.api._read import (
    VERDICT_NOT_MET,
    explain,
    explain_async,
    export,
    html_server,
    junit,
    progress_line,
    render,
    render_findings,
    report,
    report_async,
    report_html,
    results,
    verdict_exit_code,
)
from runner.api._run import RunSummary, ScoreSummary, run, run_async, score, score_async

__all__ = [
    "VERDICT_NOT_MET",
    "PlanStatus",
    "Prepared",
    "RunSummary",
    "ScoreSummary",
    "StepRun",
    "VariantProbe",
    "decision_exit_code",
    "experiment_hash",
    "experiment_name",
    "explain",
    "explain_async",
    "export",
    "html_server",
    "investigation_html",
    "investigation_junit",
    "is_investigation",
    "junit",
    "matrix",
    "plan_status",
    "prepare",
    "probe",
    "probe_async",
    "progress_line",
    "render",
    "render_findings",
    "render_investigation",
    "render_investigation_findings",
    "render_matrix",
    "report",
    "report_async",
    "report_html",
    "report_investigation",
    "results",
    "run",
    "run_async",
    "run_investigation",
    "schema",
    "score",
    "score_async",
    "validate",
    "validate_investigation",
    "verdict_exit_code",
    "write_atomically",
]
