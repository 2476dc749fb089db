"""The scorer reference, docs/scorers.md, generated from the scorer models of `runner.config.schema`.

    python -m runner.config.reference > docs/scorers.md

Each scorer's section is its class docstring (how it compares the answer with the label) and a
table of its keys: type, default and description, all read from the pydantic fields. A test fails
when docs/scorers.md differs from what this prints, so the page cannot fall behind the schema.
"""

from __future__ import annotations

import json
import sys
import types
import typing
from inspect import cleandoc
from pathlib import Path
from typing import Any, Literal

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from runner.config import registry
from runner.config.scorer_configs import ScorerBase

COMMAND = "python -m runner.config.reference > docs/scorers.md"

# What every scorer shares, before the per-scorer sections. The outcome names are the ones a score
# records (`runner.scoring.scorers.OUTCOMES`; a test keeps the two lists equal).
OUTCOMES = {
    "answered": "an answer to judge: right or wrong",
    "no_json": "no JSON found in the answer (JSON scorers)",
    "truncated": "cut off at `max_tokens` (finish reason `length`): no answer, whatever it matched",
    "wrong_shape": "JSON, but without the field, or with a value that is no class",
    "empty": "an empty answer",
    "no_code": "the code does not compile (`code_tests`)",
    "failed": "the request failed after its retries: nothing to score",
}

INTRO = """\
An experiment's `scorers:` is a list; each entry picks a scorer with `type:` and is scored on
every answer. Every scorer records, per answer, an outcome, whether it is right, the prediction
and the expected value, so reports count cut-off answers, missing JSON and wrong shapes apart
from honest mistakes. Two scorers of one type need distinct `name`s.

**The label.** The expected value is the dataset field named by the scorer's `expected_field`
(`label_field` for `binary`), by default the experiment's `dataset.label_field`.

**Finding the JSON** (`json_field`, `binary`, `exact` with `field`). Small models wrap JSON in
fenced blocks, prose or several drafts. The candidates are the JSON in fenced blocks, else the
whole answer, else every JSON object or array in it, left to right (one cut off at the end of the
answer is none); the answer is the last object that has the field's first key (a final answer
comes last), else the first object, else the first candidate. `field` is a dotted path:
`result.valid`, `items.0.name`.

**Comparing with the label, by its type** (`runner.scoring.values`). A number label is compared as
a number: the answer `"7"`, `"7.0"`, `"07"` or `7.0` equals the label `7` (a leading zero does not
change a quantity; write an identifier such as a postcode as a string). A boolean label equals
`true`/`false` or the text `"true"`/`"false"` in any case (a number is not a boolean). A text label
is compared as text, stripped, and in any case unless the scorer has `case_sensitive: true`
(`exact`, `regex`); the label text `"true"`/`"false"` is the boolean. Scorers that compare one
value (`exact` without `field`, `regex`, `binary`) refuse, before any request, labels that are
lists or mappings.

**A cut-off answer** (finish reason `length`) is `truncated` and wrong for every scorer, whatever
it matched before it stopped.

**Outcomes** of an answer:
"""


def scorer_models() -> list[type[ScorerBase]]:
    """The built-in scorer config classes, in the order they are registered."""
    return list(registry.scorer_models())


def render() -> str:
    out = ["# Scorers", "",
           f"<!-- Generated from runner/config/scorer_configs.py by `{COMMAND}`; do not edit. -->", "",
           INTRO]
    out += [f"- `{name}`: {meaning}" for name, meaning in OUTCOMES.items()]
    out += ["", "| type | compares |", "|---|---|"]
    models = scorer_models()
    for model in models:
        out.append(f"| [`{_tag(model)}`](#{_tag(model)}) | {_cell(_summary(model))} |")
    for model in models:
        out += ["", f"## {_tag(model)}", "", _paragraph(model.__doc__ or ""), "",
                "| key | type | default | description |", "|---|---|---|---|"]
        for name, field in _ordered_fields(model):
            out.append(f"| `{name}` | {_cell(_type_text(field))} | {_cell(_default_text(field))} | "
                       f"{_cell(_description(name, field, model))} |")
    return "\n".join(out) + "\n"


def _tag(model: type[BaseModel]) -> str:
    (tag,) = typing.get_args(model.model_fields["type"].annotation)
    return str(tag)


def _summary(model: type[BaseModel]) -> str:
    first = _paragraph(model.__doc__ or "").split(". ")[0]
    return first.rstrip(".") + "."


def _paragraph(doc: str) -> str:
    return " ".join(cleandoc(doc).split())


def _ordered_fields(model: type[BaseModel]) -> list[tuple[str, FieldInfo]]:
    """`type` first, then the scorer's own keys, then the keys every scorer has."""
    shared = set(ScorerBase.model_fields)
    fields = list(model.model_fields.items())
    return ([f for f in fields if f[0] == "type"] + [f for f in fields if f[0] not in shared and f[0] != "type"]
            + [f for f in fields if f[0] in shared and f[0] != "type"])


def _description(name: str, field: FieldInfo, model: type[BaseModel]) -> str:
    if name == "type":
        return f"Picks this scorer: `type: {_tag(model)}`."
    return field.description or ""


def _type_text(field: FieldInfo) -> str:
    text = _annotation_text(field.annotation, drop_none=field.default is None)
    bounds = []
    for item in field.metadata:
        for attr, sign in (("gt", ">"), ("ge", "≥"), ("lt", "<"), ("le", "≤")):
            if isinstance(item, annotated_types.BaseMetadata) and hasattr(item, attr):
                bounds.append(f"{sign} {getattr(item, attr)}")
    return f"{text} {', '.join(bounds)}" if bounds else text


_NAMES = {str: "string", int: "integer", float: "number", bool: "boolean", type(None): "null", Path: "path"}


def _annotation_text(annotation: Any, *, drop_none: bool = False) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _annotation_text(args[0], drop_none=drop_none)
    if origin is Literal:
        return " or ".join(f"`{json.dumps(a)}`" for a in args)
    if origin in (typing.Union, types.UnionType):
        members = [a for a in args if not (drop_none and a is type(None))]
        names = [_annotation_text(a) for a in members]
        return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]
    if origin is list:
        return f"list of {_annotation_text(args[0])}"
    if origin is dict:
        return f"mapping of {_annotation_text(args[0])} to {_annotation_text(args[1])}"
    if annotation in _NAMES:
        return _NAMES[annotation]
    return getattr(annotation, "__name__", str(annotation))


def _default_text(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    if field.default_factory is not None:
        return "empty"
    if field.default is None:
        return "not set"
    return f"`{json.dumps(field.default)}`"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def main() -> int:
    sys.stdout.write(render())
    return 0


if __name__ == "__main__":
    sys.exit(main())
