"""runner: declarative YAML experiments for local LLMs, with stored results and statistics.

The public API is what `__all__` lists; everything else may change. Names are imported when
first used (PEP 562), so `import runner` and a one-line error from `runner validate` do not pay
for the backends, the analysis or scipy.

    import runner
    runner.run("experiments/smollm_quant.yaml", limit=1)
    print(runner.render(runner.report("experiments/smollm_quant.yaml"), "markdown"))
"""

import importlib as _importlib
import typing as _typing


def _package_version() -> str:
    """The installed distribution's version (pyproject.toml's), or a marker outside any install."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("llm-runner")
    except PackageNotFoundError:  # a bare checkout on sys.path, never `pip install`ed
        return "0.0.0+unknown"


# `__version__` is looked up when first asked for (module __getattr__ below): importlib.metadata and
# the search of the installed distributions cost ~40 ms that every command paid at start-up.

# name -> module that defines it
_EXPORTS: dict[str, str] = {
    "Backend": "runner.backends.base",
    "BackendError": "runner.backends.base",
    "BackendUnavailable": "runner.errors",
    "Cell": "runner.plan.planner",
    "ChatRequest": "runner.backends.base",
    "Completion": "runner.backends.base",
    "ConfigError": "runner.errors",
    "Event": "runner.execution.events",
    "Experiment": "runner.config.schema",
    "Finding": "runner.diagnosis.findings",
    "Job": "runner.plan.planner",
    "Plan": "runner.plan.planner",
    "Report": "runner.reporting.tables",
    "ResultSet": "runner.analysis.results",
    "RetryPolicy": "runner.execution.retry",
    "RunSummary": "runner.api",
    "Score": "runner.scoring.scorers",
    "ScoreSummary": "runner.api",
    "Scorer": "runner.scoring.scorers",
    "ScorerError": "runner.scoring.errors",
    "Store": "runner.store",
    "UserError": "runner.errors",
    "Variant": "runner.plan.variant",
    "VariantInfo": "runner.backends.base",
    "build_plan": "runner.plan.planner",
    "build_report": "runner.reporting.tables",
    "build_scorers": "runner.scoring.scorers",
    "create_backend": "runner.backends",
    "explain": "runner.api",
    "explain_async": "runner.api",
    "export": "runner.api",
    "extract_json": "runner.scoring.extract",
    "known_backends": "runner.backends",
    "known_scorers": "runner.scoring.registry",
    "load_experiment": "runner.config.loader",
    "load_results": "runner.analysis.results",
    "prepare": "runner.api",
    "probe": "runner.api",
    "probe_async": "runner.api",
    "register_backend": "runner.backends",
    "register_scorer": "runner.scoring.registry",
    "render": "runner.api",
    "render_findings": "runner.api",
    "report": "runner.api",
    "report_async": "runner.api",
    "report_html": "runner.api",
    "results": "runner.api",
    "run": "runner.api",
    "run_async": "runner.api",
    "score": "runner.api",
    "score_async": "runner.api",
    "validate": "runner.api",
}

__all__ = [
    "Backend",
    "BackendError",
    "BackendUnavailable",
    "Cell",
    "ChatRequest",
    "Completion",
    "ConfigError",
    "Event",
    "Experiment",
    "Finding",
    "Job",
    "Plan",
    "Report",
    "ResultSet",
    "RetryPolicy",
    "RunSummary",
    "Score",
    "ScoreSummary",
    "Scorer",
    "ScorerError",
    "Store",
    "UserError",
    "Variant",
    "VariantInfo",
    "build_plan",
    "build_report",
    "build_scorers",
    "create_backend",
    "explain",
    "explain_async",
    "export",
    "extract_json",
    "known_backends",
    "known_scorers",
    "load_experiment",
    "load_results",
    "prepare",
    "probe",
    "probe_async",
    "register_backend",
    "register_scorer",
    "render",
    "render_findings",
    "report",
    "report_async",
    "report_html",
    "results",
    "run",
    "run_async",
    "score",
    "score_async",
    "validate",
]


def __getattr__(name: str) -> _typing.Any:
    if name == "__version__":
        globals()[name] = version = _package_version()
        return version
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'runner' has no attribute {name!r}")
    value = getattr(_importlib.import_module(module), name)
    globals()[name] = value  # the next access is a plain attribute lookup
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


if _typing.TYPE_CHECKING:
    __version__: str
    from runner.analysis.results import ResultSet, load_results
    from runner.api import (
        RunSummary,
        ScoreSummary,
        explain,
        explain_async,
        export,
        prepare,
        probe,
        probe_async,
        render,
        render_findings,
        report,
        report_async,
        report_html,
        results,
        run,
        run_async,
        score,
        score_async,
        validate,
    )
    from runner.backends import create_backend, known_backends, register_backend
    from runner.backends.base import Backend, BackendError, ChatRequest, Completion, VariantInfo
    from runner.config.loader import load_experiment
    from runner.config.schema import Experiment
    from runner.diagnosis.findings import Finding
    from runner.errors import BackendUnavailable, ConfigError, UserError
    from runner.execution.events import Event
    from runner.execution.retry import RetryPolicy
    from runner.plan.planner import Cell, Job, Plan, build_plan
    from runner.plan.variant import Variant
    from runner.reporting.tables import Report, build_report
    from runner.scoring.errors import ScorerError
    from runner.scoring.extract import extract_json
    from runner.scoring.registry import known_scorers, register_scorer
    from runner.scoring.scorers import Score, Scorer, build_scorers
    from runner.store import Store
