"""The `sampling:` block: each key fixed, or a list that becomes an axis, whose values may be named.

A named value (`{name: schema, value: {...}}`) is shown by its name in every table, label and
finding, while the request carries its value; `null` means the key is not sent.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    JsonValue,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from runner.config.strict import Strict

SAMPLING_KEYS = ("temperature", "top_p", "top_k", "seed", "max_tokens", "stop", "response_format")


@dataclass(frozen=True)
class _Range:
    """The values a sampling key accepts, said the same way in the error and in the JSON Schema."""

    key: str
    low: float
    high: float | None = None
    low_open: bool = False  # low itself is not allowed
    meaning: str = ""  # what a special value means, for the fix: "0 = greedy"

    def words(self) -> str:
        low = _number(self.low)
        if self.high is None:
            return f"{low} or more"
        if self.low_open:
            return f"above {low} and at most {_number(self.high)}"
        return f"from {low} to {_number(self.high)}"

    def check(self, value: Any) -> Any:
        too_low = value <= self.low if self.low_open else value < self.low
        if math.isfinite(value) and not too_low and (self.high is None or value <= self.high):
            return value
        problem = f"is outside the allowed range ({self.words()})" if math.isfinite(value) else "is not a finite number"
        note = f" ({self.meaning})" if self.meaning else ""
        to = "to " if self.high is None else ""
        raise PydanticCustomError("sampling_range", f"{value} {problem}; set {self.key} {to}{self.words()}{note}")

    def schema(self) -> dict[str, JsonValue]:
        out: dict[str, JsonValue] = {"exclusiveMinimum" if self.low_open else "minimum": self.low}
        if self.high is not None:
            out["maximum"] = self.high
        return out


def _number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


# OpenAI accepts 0 to 2, llama.cpp and Ollama any temperature (<= 0 is greedy). Past 2 the text is
# noise for every model; 5 leaves room for such a sweep and still catches typos such as 70 for 0.7.
_TEMPERATURE = _Range("temperature", 0, 5, meaning="0 = greedy")
# top_p is a probability mass: 0 would keep no token at all (llama.cpp then keeps one, which is what
# temperature 0 says plainly), 1 keeps every token.
_TOP_P = _Range("top_p", 0, 1, low_open=True, meaning="1 = off")
# llama.cpp and Ollama: top_k <= 0 is off; a negative value means nothing more, so 0 is the way to say off.
_TOP_K = _Range("top_k", 0, meaning="0 = off")
# llama.cpp reads the seed as an unsigned 32-bit number, and 4294967295 (its -1) means "random".
_SEED = _Range("seed", 0, 2**32 - 2)
_MAX_TOKENS = _Range("max_tokens", 1)

# allow_inf_nan on the floats: NaN and inf reach the range check, whose message names the range,
# instead of pydantic's bare "finite number" (Strict refuses them everywhere else).


def _not_bool(kind: str) -> BeforeValidator:
    """YAML's true/false (and yes/no) are no numbers, though pydantic's lax mode would send them as 1 and 0."""
    fix = "write a whole number" if kind == "an integer" else "write a number"

    def check(value: Any) -> Any:
        if isinstance(value, bool):
            raise PydanticCustomError("bool_as_number", f"expected {kind}, got {str(value).lower()}; {fix}")
        return value

    return BeforeValidator(check)


Temperature = Annotated[float, Field(allow_inf_nan=True), _not_bool("a number"), AfterValidator(_TEMPERATURE.check),
                        Field(json_schema_extra=_TEMPERATURE.schema())]
TopP = Annotated[float, Field(allow_inf_nan=True), _not_bool("a number"), AfterValidator(_TOP_P.check),
                 Field(json_schema_extra=_TOP_P.schema())]
TopK = Annotated[int, _not_bool("an integer"), AfterValidator(_TOP_K.check), Field(json_schema_extra=_TOP_K.schema())]
Seed = Annotated[int, _not_bool("an integer"), AfterValidator(_SEED.check), Field(json_schema_extra=_SEED.schema())]
MaxTokens = Annotated[int, _not_bool("an integer"), AfterValidator(_MAX_TOKENS.check),
                      Field(json_schema_extra=_MAX_TOKENS.schema())]

T = TypeVar("T")


class NamedValue(Strict, Generic[T]):
    """One value of a sampling axis with a name: reports, the plan, findings and matrix.include/exclude
    say the name; the request carries the value. A null value is not sent: the key is left out."""

    name: str = Field(min_length=1, description="What the axis shows for this value, and what the matrix matches.")
    value: T | None = Field(description="What the request carries; null: the key is not sent.")


# Each key's named values, checked as the field's own type would check a value.
_NAMED_ADAPTERS: dict[str, TypeAdapter[Any]] = {
    "temperature": TypeAdapter(list[NamedValue[Temperature]]), "top_p": TypeAdapter(list[NamedValue[TopP]]),
    "top_k": TypeAdapter(list[NamedValue[TopK]]), "seed": TypeAdapter(list[NamedValue[Seed]]),
    "max_tokens": TypeAdapter(list[NamedValue[MaxTokens]]), "stop": TypeAdapter(list[NamedValue[list[str]]]),
    "response_format": TypeAdapter(list[NamedValue[dict[str, Any]]]),
}


_OVERRIDES: dict[str, TypeAdapter[Any]] = {
    "temperature": TypeAdapter(Temperature), "top_p": TypeAdapter(TopP), "top_k": TypeAdapter(TopK),
    "seed": TypeAdapter(Seed), "max_tokens": TypeAdapter(MaxTokens),
}


def _has_name(value: Any) -> bool:
    return isinstance(value, dict) and bool({"name", "value"} & value.keys())


def _named_error(index: int, values: list[Any], message: str) -> ValidationError:
    """A one-line error at `sampling.KEY[index]` (pydantic prefixes the field's location)."""
    detail = InitErrorDetails(type=PydanticCustomError("named_value", message), loc=(index,), input=values)
    return ValidationError.from_exception_data("SamplingConfig", [detail])


def raise_if_not_finite(value: Any, loc: tuple[str | int, ...], title: str) -> None:
    """A ValidationError at the first NaN or infinity inside free-form data (JSON cannot carry them)."""
    todo: list[tuple[Any, tuple[str | int, ...]]] = [(value, loc)]
    while todo:
        v, at = todo.pop()
        if isinstance(v, NamedValue):
            todo.append((v.value, (*at, "value")))
        elif isinstance(v, dict):
            todo.extend((x, (*at, str(k))) for k, x in v.items())
        elif isinstance(v, list):
            todo.extend((x, (*at, i)) for i, x in enumerate(v))
        elif isinstance(v, float) and not math.isfinite(v):
            error = PydanticCustomError("not_finite", f"{v} is not a finite number and JSON cannot carry it; "
                                        "write a number")
            raise ValidationError.from_exception_data(title, [InitErrorDetails(type=error, loc=at, input=v)])


def check_override(key: str, value: Any) -> Any:
    """A `matrix.include` value sent as given: checked like the sampling key's own values."""
    adapter = _OVERRIDES.get(key)
    return adapter.validate_python(value) if adapter is not None else value


class SamplingConfig(Strict):
    """A list is an axis (one cell per value), a scalar is fixed. An axis's values may be named,
    `[{name: free, value: null}, {name: schema, value: {...}}]`: see `NamedValue`."""

    temperature: Temperature | list[Temperature] | list[NamedValue[Temperature]] | None = Field(
        None, description="0 = greedy, at most 5. A list is an axis.")
    top_p: TopP | list[TopP] | list[NamedValue[TopP]] | None = Field(
        None, description="Nucleus sampling: above 0, at most 1 (1 = off).")
    top_k: TopK | list[TopK] | list[NamedValue[TopK]] | None = Field(None, description="0 = off.")
    seed: Seed | list[Seed] | list[NamedValue[Seed]] | None = Field(
        None, description="Seed, 0 to 4294967294; see `repeat_seeds` for repeats.")
    max_tokens: MaxTokens | list[MaxTokens] | list[NamedValue[MaxTokens]] | None = Field(
        256, description="Generation cap per request, at least 1.")
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
            raise ValueError("empty list; give the axis at least one value, or leave the key out")
        return v

    @field_validator("response_format")
    @classmethod
    def _finite(cls, v: Any) -> Any:
        """response_format is free-form, so pydantic checks nothing inside: YAML's .nan would become the
        invalid JSON `NaN` in the request."""
        raise_if_not_finite(v, (), "SamplingConfig")
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
