"""What diagnosis works on and produces: one cell's scored answers in, findings out."""

from __future__ import annotations

import enum
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


class FindingKind(enum.StrEnum):
    """Every kind of finding diagnosis makes (a str: JSON output and tests read the text)."""

    TRUNCATED = "truncated"
    NO_JSON = "no_json"
    WRONG_SHAPE = "wrong_shape"
    EMPTY = "empty"
    NO_CODE = "no_code"
    FAILED = "failed"
    WRONG_ANSWER = "wrong_answer"
    CONSTANT_ANSWER = "constant_answer"
    CONSTANT_ANSWER_NO_BETTER_THAN_MAJORITY = "constant_answer_no_better_than_majority"
    NO_BETTER_THAN_MAJORITY = "no_better_than_majority"
    REASONS_MISS = "reasons_miss"
    CALIBRATION = "calibration"
    FLIPS = "flips"
    ITEM_WRONG_EVERYWHERE = "item_wrong_everywhere"
    CONTEXT_LIMIT = "context_limit"
    UNDERPOWERED = "underpowered"
    INJECTED_SYSTEM_PROMPT = "injected_system_prompt"
    REPETITION_LOOP = "repetition_loop"
    BOTH_CONSTANT = "both_constant"
    TEMPERATURE_ZERO_REPEATS = "temperature_zero_repeats"


@dataclass
class Finding:
    kind: FindingKind
    subject: str
    text: str
    weight: float
    hypothesis: str | None = None
    numbers: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.kind = FindingKind(self.kind)  # an unknown kind is a bug: fail where it is made

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
    injected_system: dict[str, Any] | None = None  # what the chat template added (no system message sent)
    items: dict[str, dict[str, Any]] = field(default_factory=dict)  # item id -> dataset fields
    looped: set[tuple[str, int]] = field(default_factory=set)  # (item, repeat) of cut-off repetition loops
    # (class, items giving it, items stating a class) when the cell gives a constant answer
    # (runner.analysis.compare.constant_answer over each item's most common stated class).
    constant: tuple[Any, int, int] | None = None
    repeats: int = 1  # the experiment's repeats per item

    @property
    def schema(self) -> bool:
        """Whether the cell's requests constrain the output (response_format)."""
        return self.cell.params.get("response_format") is not None


def say_axis_value(value: Any) -> str:
    return "-" if value is None else str(value)


def say_value(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else repr(value)


def say_number(value: float) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.2f}"
