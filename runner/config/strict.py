"""The base of every config model: unknown keys refused, values frozen."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

JsonScalar = str | int | float | bool | None


class Strict(BaseModel):
    # allow_inf_nan=False: YAML's .nan and .inf are floats, and JSON (every request, the store) has neither.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
