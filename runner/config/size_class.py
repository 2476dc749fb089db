"""A model's parameter count and its size class, the columns of `runner matrix`.

The analysis groups models as up to 1B, 1-3B and 3B+ parameters. The count comes from the model
itself where the backend can read it (the embedded backend sums the GGUF's tensor elements; Ollama
says `parameter_size`; llama.cpp's server says `n_params`), else from `models[i].params` in the
YAML, else it is unknown, and the class says so rather than guessing from a name.
"""

from __future__ import annotations

import math
import re
from typing import Any

SIZE_CLASSES = ("<=1B", "1-3B", "3B+", "unknown")
UNKNOWN = "unknown"

MIN_BARE = 1_000_000  # a count without a suffix below this is refused: a forgotten B or M
_SUFFIX = {"": 1, "K": 10**3, "M": 10**6, "B": 10**9, "T": 10**12}
_COUNT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMBT]?)\s*$", re.IGNORECASE)
# For `runner schema`: a whole number, or a count with a suffix (the same pattern as _COUNT).
PARAMS_JSON_SCHEMA: dict[str, Any] = {"anyOf": [
    {"type": "integer", "minimum": 1_000_000},
    {"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*[KMBTkmbt]?\s*$"},
    {"type": "null"},
]}


def parse_params(value: Any) -> int:
    """A parameter count as written: 135000000, "135M", "1.7B", "494m". Raises ValueError otherwise,
    and for a bare number below a million (1.7, "7"), which is a forgotten suffix."""
    bad = ValueError(f"{value!r} is not a parameter count; write it as 135M, 1.7B or a whole number")
    if isinstance(value, bool):
        raise bad
    if isinstance(value, int | float):
        number, bare = float(value), True
    else:
        match = _COUNT.match(str(value))
        if match is None:
            raise bad
        number, bare = float(match.group(1)) * _SUFFIX[match.group(2).upper()], not match.group(2)
    if not math.isfinite(number) or number <= 0:
        raise bad
    if bare and number < MIN_BARE:
        # `params: 1.7` meant 1.7B, not two parameters: no model is that small, so a bare number this low
        # is a missing suffix, not a count.
        shown = match.group(1) if not isinstance(value, int | float) and match else f"{value:g}"
        raise ValueError(f"{value!r} is a bare number below {MIN_BARE:,}, a count of single parameters; write "
                         f"{shown}B (billion) or {shown}M (million)")
    if number < 1:
        raise bad
    return round(number)


def size_class(params: int | None) -> str:
    """<=1B up to and including 1e9 parameters, 1-3B up to and including 3e9, 3B+ above; else unknown."""
    if params is None:
        return UNKNOWN
    if params <= 1_000_000_000:
        return "<=1B"
    if params <= 3_000_000_000:
        return "1-3B"
    return "3B+"


def show_params(params: int | None) -> str:
    """135M, 494M, 1.7B: how model cards write it."""
    if params is None:
        return "?"
    if params >= 10**9:
        return f"{params / 1e9:.1f}B"
    if params >= 10**6:
        return f"{params / 1e6:.0f}M"
    return str(params)


def size_details(reported: int | None, source: str | None, declared: int | None) -> dict[str, Any]:
    """The variant details every job stores: the count, who said it, and the class.

    What the model or server reports wins over the YAML's `params` (that is for servers that say
    nothing); both are kept, so a declaration that disagrees with the file can be seen."""
    if reported is not None:
        params, said_by = reported, source
    elif declared is not None:
        params, said_by = declared, "declared (models[].params)"
    else:
        params, said_by = None, None
    out: dict[str, Any] = {"parameters": params, "parameters_source": said_by, "size_class": size_class(params)}
    if declared is not None:
        out["parameters_declared"] = declared
    return out
