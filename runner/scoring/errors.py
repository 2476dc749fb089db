"""The scorers' own error type: the one exception from scoring that fails a job and not the run."""

from __future__ import annotations

from runner.errors import UserError


class ScorerError(UserError, ValueError):
    """A scorer could not score one answer because of the scorer's own code (a custom function raised,
    or returned something that is not a score). Only that job fails; outside a run (a report that
    scores again) it is a one-line user error.

    It is a ValueError too because the executor fails a job, rather than the run, on the error types
    it lists, ValueError among them; an executor that names ScorerError needs no such base.
    """
