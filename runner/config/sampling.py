"""The `sampling:` block: each key fixed, or a list that becomes an axis, whose values may be named.

A named value (`{name: schema, value: {...}}`) is shown by its name in every table, label and
finding, while the request carries its value; `null` means the key is not sent.
"""

from __future__ import annotations

import json
from typing import Any, Generic, TypeVar

from pydantic import Field, TypeAdapter, ValidationError, ValidationInfo, field_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from runner.config.strict import Strict

SAMPLING_KEYS = ("temperature", "top_p", "top_k", "seed", "max_tokens", "stop", "response_format")

T = TypeVar("T")


class NamedValue(Strict, Generic[T]):
    """One value of a sampling axis with a name: reports, the plan, findings and matrix.include/exclude
    say the name; the request carries the value. A null value is not sent: the key is left out."""

    name: str = Field(min_length=1, description="What the axis shows for this value, and what the matrix matches.")
    value: T | None = Field(description="What the request carries; null: the key is not sent.")


_NAMED_FLOATS = TypeAdapter(list[NamedValue[float]])
_NAMED_INTS = TypeAdapter(list[NamedValue[int]])
# Each key's named values, checked as the field's own type would check a value.
_NAMED_ADAPTERS: dict[str, TypeAdapter[Any]] = {
    "temperature": _NAMED_FLOATS, "top_p": _NAMED_FLOATS, "top_k": _NAMED_INTS, "seed": _NAMED_INTS,
    "max_tokens": _NAMED_INTS, "stop": TypeAdapter(list[NamedValue[list[str]]]),
    "response_format": TypeAdapter(list[NamedValue[dict[str, Any]]]),
}


def _has_name(value: Any) -> bool:
    return isinstance(value, dict) and bool({"name", "value"} & value.keys())


def _named_error(index: int, values: list[Any], message: str) -> ValidationError:
    """A one-line error at `sampling.KEY[index]` (pydantic prefixes the field's location)."""
    detail = InitErrorDetails(type=PydanticCustomError("named_value", message), loc=(index,), input=values)
    return ValidationError.from_exception_data("SamplingConfig", [detail])


class SamplingConfig(Strict):
    """A list is an axis (one cell per value), a scalar is fixed. An axis's values may be named,
    `[{name: free, value: null}, {name: schema, value: {...}}]`: see `NamedValue`."""

    temperature: float | list[float] | list[NamedValue[float]] | None = Field(
        None, description="0 = greedy. A list is an axis.")
    top_p: float | list[float] | list[NamedValue[float]] | None = None
    top_k: int | list[int] | list[NamedValue[int]] | None = None
    seed: int | list[int] | list[NamedValue[int]] | None = Field(
        None, description="Seed; see `repeat_seeds` for repeats.")
    max_tokens: int | list[int] | list[NamedValue[int]] | None = Field(256, description="Generation cap per request.")
    stop: list[str] | list[list[str]] | list[NamedValue[list[str]]] | None = None
    response_format: dict[str, Any] | list[dict[str, Any]] | list[NamedValue[dict[str, Any]]] | None = Field(
        None, description="OpenAI response_format, e.g. {type: json_schema, json_schema: {...}}; a list is an "
                          "axis, best with named values: [{name: free, value: null}, {name: schema, value: {...}}].")

    @field_validator(*SAMPLING_KEYS, mode="before")
    @classmethod
    def _named_values(cls, v: Any, info: ValidationInfo) -> Any:
        """An axis is named when its values are {name, value} mappings: all of them, with distinct names
        and distinct values. (A response_format mapping is a value unless it has name or value keys.)"""
        key = str(info.field_name)
        if _has_name(v):
            raise ValueError("a named value is one value of an axis; write a list, [{name: ..., value: ...}], "
                             "or give the value alone")
        if not isinstance(v, list):
            return v
        named = [_has_name(x) or (key != "response_format" and isinstance(x, dict)) for x in v]
        if not any(named):
            return v
        for i, x in enumerate(v):
            if not named[i]:
                raise _named_error(i, v, "a value without a name on an axis of named values; name it "
                                   "({name: ..., value: ...}), or name no value of this axis")
            if set(x) != {"name", "value"}:
                raise _named_error(i, v, "a named value is a mapping of exactly name and value, got "
                                   f"{', '.join(map(str, x)) or 'no keys'}; "
                                   "write {name: ..., value: ...} with what the request carries under value "
                                   "(null: not sent)")
            if not isinstance(x["name"], str) or not x["name"].strip():
                raise _named_error(i, v, f"the name must be a non-empty string, not {x['name']!r}; write e.g. "
                                   "name: free")
        values: list[NamedValue[Any]] = _NAMED_ADAPTERS[key].validate_python(v)  # each value's type
        names: dict[str, int] = {}
        sent: dict[str, int] = {}
        for i, nv in enumerate(values):
            if nv.name in names:
                raise _named_error(i, v, f"duplicate name {nv.name!r} (sampling.{key}[{names[nv.name]}] has it); "
                                   "give each value of the axis its own name")
            same = json.dumps(nv.value, sort_keys=True)
            if same in sent:
                raise _named_error(i, v, f"the same value as sampling.{key}[{sent[same]}] "
                                   f"({values[sent[same]].name!r}): two names for one request; remove one")
            names[nv.name] = sent[same] = i
        return values

    @field_validator("temperature", "top_p", "top_k", "seed", "max_tokens", "response_format")
    @classmethod
    def _non_empty_axis(cls, v: Any) -> Any:
        if isinstance(v, list) and not v:
            raise ValueError("empty list: an axis needs at least one value")
        return v

    def axes_and_fixed(self) -> tuple[dict[str, list[Any]], dict[str, Any]]:
        """The axes with their values as shown (a named value's name), and the fixed values."""
        axes: dict[str, list[Any]] = {}
        fixed: dict[str, Any] = {}
        for key in SAMPLING_KEYS:
            value = getattr(self, key)
            if value is None:
                continue
            is_axis = isinstance(value, list) and (
                key != "stop" or (bool(value) and isinstance(value[0], list | NamedValue))
            )
            if is_axis:
                axes[key] = [v.name if isinstance(v, NamedValue) else v for v in value]
            else:
                fixed[key] = value
        return axes, fixed

    def first(self, key: str) -> Any:
        """What the first request carries for `key`: the fixed value or the axis's first (None: not sent)."""
        value = getattr(self, key)
        if key == "stop" and isinstance(value, list) and value and isinstance(value[0], str):
            return value  # a fixed stop list, not an axis
        value = value[0] if isinstance(value, list) and value else value
        return value.value if isinstance(value, NamedValue) else value

    def named(self) -> dict[str, dict[str, Any]]:
        """The axes of named values: name -> what the request carries (None: the key is not sent)."""
        out: dict[str, dict[str, Any]] = {}
        for key in SAMPLING_KEYS:
            value = getattr(self, key)
            if isinstance(value, list) and value and isinstance(value[0], NamedValue):
                out[key] = {v.name: v.value for v in value}
        return out
