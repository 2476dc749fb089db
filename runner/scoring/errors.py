"""A scorer's own error: the answer could not be scored (a custom scorer raised, a sandbox could
not start). It fails only that job; any other exception in a scorer is a bug and stops the run."""

from __future__ import annotations


class ScorerError(Exception):
    pass
