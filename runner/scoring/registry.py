"""Register a scorer once: its name, its config model and its Scorer class.

    register_scorer("length", LengthScorer, LengthCheck)   # LengthScorer: a ScorerBase, type: Literal["length"]

The table itself is `runner.config.registry`: the config stage validates experiments against it
and may not import this stage, so built-ins are listed there with their classes as "module:attr"
strings. This module is the table's typed front for Scorer classes: it checks what is registered
and turns an entry into its class when scorers are built.
"""

from __future__ import annotations

from runner.config.imports import load_object
from runner.config.registry import add_scorer, known_scorers, scorer_entry
from runner.config.scorer_configs import ScorerBase
from runner.errors import UserError
from runner.scoring.base import Scorer

__all__ = ["known_scorers", "register_scorer", "scorer_class"]


def register_scorer(name: str, config_model: type[ScorerBase], scorer_class: type[Scorer]) -> None:
    """Make `type: name` usable in experiments; replaces an earlier registration of that name."""
    if not (isinstance(scorer_class, type) and issubclass(scorer_class, Scorer)):
        raise TypeError(f"scorer {name!r} must be a runner.scoring.base.Scorer subclass, got {scorer_class!r}")
    add_scorer(name, config_model, scorer_class)


def scorer_class(name: str) -> type[Scorer]:
    """The Scorer class registered for `name` (KeyError if none; a validated experiment has none unknown)."""
    entry = scorer_entry(name)
    if entry is None:
        raise KeyError(name)
    impl = entry.implementation
    if isinstance(impl, str):
        impl = load_object(impl)
    if not (isinstance(impl, type) and issubclass(impl, Scorer)):
        raise UserError(f"{entry.origin} names {impl!r}, which is not a runner Scorer subclass",
                        fix="point it at a subclass of runner.scoring.base.Scorer")
    return impl
