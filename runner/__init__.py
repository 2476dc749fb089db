"""runner: declarative YAML experiments for local LLMs, with stored results and statistics.

The public API is what `__all__` lists; everything else may change.
"""

from runner.backends import (
    Backend,
    BackendError,
    ChatRequest,
    Completion,
    Variant,
    VariantInfo,
    create_backend,
    known_backends,
    register_backend,
)
from runner.config.loader import load_experiment
from runner.config.schema import Experiment
from runner.errors import BackendUnavailable, ConfigError, UserError
from runner.plan.planner import Cell, Job, Plan, build_plan
from runner.report.tables import Report, build_report, render
from runner.run.retry import RetryPolicy
from runner.scoring.extract import extract_json
from runner.scoring.scorers import Score, Scorer, build_scorers
from runner.store.database import Store


def _package_version() -> str:
    """The installed distribution's version (pyproject.toml's), or a marker outside any install."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("llm-runner")
    except PackageNotFoundError:  # a bare checkout on sys.path, never `pip install`ed
        return "0.0.0+unknown"


__version__ = _package_version()

__all__ = [
    "Backend",
    "BackendError",
    "BackendUnavailable",
    "Cell",
    "ChatRequest",
    "Completion",
    "ConfigError",
    "Experiment",
    "Job",
    "Plan",
    "Report",
    "RetryPolicy",
    "Score",
    "Scorer",
    "Store",
    "UserError",
    "Variant",
    "VariantInfo",
    "build_plan",
    "build_report",
    "build_scorers",
    "create_backend",
    "extract_json",
    "known_backends",
    "load_experiment",
    "register_backend",
    "render",
]
