"""What diagnosis works on and produces: one cell's scored answers in, findings out."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from runner.analysis.metrics import CellStats
from runner.plan.planner import Cell
from runner.scoring.scorers import Score

HYPOTHESES = {
    "prompt": "prompt engineering", "system": "system-prompt interference", "quantization": "quantization",
    "model": "model architecture", "temperature": "sampling randomness", "top_p": "sampling randomness",
    "top_k": "sampling randomness", "seed": "sampling randomness",
}


@dataclass
class Finding:
    kind: str
    subject: str
    text: str
    weight: float
    hypothesis: str | None = None
    numbers: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class CellView:
    """One cell as diagnosis sees it: its stats, and each stored answer's score (or failure)."""

    cell: Cell
    label: str
    stats: CellStats
    scores: list[tuple[str, int, Score | None, str | None]]  # item id, repeat, score, error of a failed job
    prompt_tokens: dict[str, int] = field(default_factory=dict)
    n_ctx: int | None = None
    items: dict[str, dict[str, Any]] = field(default_factory=dict)  # item id -> dataset fields


def say_axis_value(value: Any) -> str:
    return "-" if value is None else str(value)


def say_value(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else repr(value)


def say_number(value: float) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.2f}"
