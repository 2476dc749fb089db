"""The scorers' own error type: the one exception from scoring that fails a job and not the run
(a custom function raised or returned something that is not a score; a sandbox could not start).
Any other exception in a scorer is a bug and stops the run."""

from __future__ import annotations

from runner.errors import ConfigError, UserError


class ScorerError(UserError):
    """A scorer could not score one answer because of the scorer's own code. In a run only that job
    fails; outside one (a report that scores again) it is a one-line user error."""


class ScoringUnavailable(ConfigError):
    """This machine lacks what scoring an answer needs (a compiler, a sandbox), found when a read verb
    had to score a stored answer in memory: `runner matrix` leaves that experiment out, the others say
    it in one line."""
