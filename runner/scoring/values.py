"""How an answer's value is compared with a label: by the label's type.

A regex capture or a whole answer is text ("7"); a dataset label is whatever JSON made it (7,
7.0, true, "Paris"). Comparing the two as Python values says "7" != 7 and scores every answer
wrong. So the label's type decides how the answer is read:

- a number (not a boolean): the answer is read as a decimal number and compared by value, so
  "7", "7.0", "07", "+7" and 7e0 all equal the label 7 (and 7.0). A leading zero does not change a
  quantity; a label that is an identifier ("07", a postcode) should be written as a string. Text
  that is not one number ("7 apples", "seven") is not equal to it.
- a boolean: the answer equals it when it is that boolean, or the text "true"/"false" in any case
  (numbers are not booleans: 1 is not true).
- a string: "true"/"false" in any case are read as booleans (as above); any other string label is
  compared as text, both sides stripped, and case-insensitively unless `case_sensitive`. A number
  or boolean answer is read as its JSON text (7 -> "7", true -> "true").
- anything else (null, a list, a mapping): equal after the same per-value reading, element by
  element (mapping keys as they are).
"""

from __future__ import annotations

import json
import re
from decimal import Decimal, InvalidOperation
from typing import Any

_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_BOOLEANS = {"true": True, "false": False}


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def as_number(value: Any) -> Decimal | None:
    """The value as an exact decimal: a JSON number, or text that is one decimal number; else None."""
    if is_number(value):
        # repr, not the binary value: the label 0.1 is the decimal 0.1 its JSON said.
        return Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        try:
            return Decimal(value.strip())
        except InvalidOperation:  # pragma: no cover - the pattern only lets decimals through
            return None
    return None


def as_boolean(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return _BOOLEANS.get(value.strip().lower())
    return None


def as_text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else json.dumps(value)


def label_value(label: Any) -> Any:
    """A label as it is compared: the strings "true"/"false" (any case) are the booleans."""
    boolean = as_boolean(label) if isinstance(label, str) else None
    return label if boolean is None else boolean


def same_answer(answer: Any, label: Any, *, case_sensitive: bool = False) -> bool:
    """Whether `answer` says `label`, read by the label's type (see the module docstring)."""
    label = label_value(label)
    if is_number(label):
        number = as_number(answer)
        return number is not None and number == as_number(label)
    if isinstance(label, bool):
        return as_boolean(answer) is label
    if isinstance(label, str):
        if isinstance(answer, list | dict) or answer is None:
            return False
        got, want = as_text(answer), label.strip()
        return got == want if case_sensitive else got.lower() == want.lower()
    if isinstance(label, list):
        return (isinstance(answer, list) and len(answer) == len(label)
                and all(same_answer(a, b, case_sensitive=case_sensitive) for a, b in zip(answer, label, strict=True)))
    if isinstance(label, dict):
        return (isinstance(answer, dict) and answer.keys() == label.keys()
                and all(same_answer(answer[k], v, case_sensitive=case_sensitive) for k, v in label.items()))
    return bool(answer == label)  # null: only null says it
