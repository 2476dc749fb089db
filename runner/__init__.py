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
from runner.scoring.errors import ScorerError
from runner.scoring.extract import extract_json
from runner.scoring.registry import known_scorers, register_scorer
from runner.scoring.scorers import Score, Scorer, build_scorers
from runner.store.database import Store

__version__ = "0.1.0"

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
    "ScorerError",
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
    "known_scorers",
    "load_experiment",
    "register_backend",
    "register_scorer",
    "render",
]
