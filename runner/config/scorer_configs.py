"""The scorers' configs: what each scorer's YAML keys are, and the registry entries of the built-ins.

Each model narrows `type` to its own name; `ScorerConfig` validates a scorer mapping against the
model registered for its `type` (built-ins here, others through `register_scorer` or plugins).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, SerializeAsAny, ValidationError, field_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from runner.config.registry import add_scorer, scorer_adapter, scorer_models, scorer_union
from runner.config.strict import JsonScalar, Strict


class ScorerBase(Strict):
    """Keys every scorer has. A scorer's own model narrows `type` to `Literal["its name"]`; its docstring
    says how it compares the answer with the label. docs/scorers.md is generated from these classes
    (`python -m runner.config.reference`)."""

    name: str | None = Field(None, description="Name in reports; defaults to the type. Needed to use one type twice.")
    type: str = Field(description="The scorer: exact, regex, json_field, binary, code_tests, similarity, python, "
                                  "or a plugin's.")

    def label(self) -> str:
        return self.name or self.type


class ExactScorer(ScorerBase):
    """The whole answer against the expected value, read by the label's type: a number label is
    compared as a number ("7.0" and "07" equal 7), a boolean label as true/false, a text label as text
    stripped of surrounding whitespace, case-insensitively unless `case_sensitive`. With `field`, that
    field of the answer's JSON is compared instead, the same way. Labels that are lists or mappings
    are refused, unless `field` is set. A cut-off answer is `truncated`, never right."""

    type: Literal["exact"]
    expected_field: str | None = Field(None, description="Dataset field to compare with; default: the label.")
    field: str | None = Field(
        None, description="Compare this field (a dotted path) of the answer's JSON instead of the whole text."
    )
    case_sensitive: bool = Field(False, description="Tell upper from lower case when the label is text.")


class RegexScorer(ScorerBase):
    """Searches the answer for `pattern`; what it finds (group 1 if the pattern has a group, else the
    whole match) is compared with the expected value by the label's type, as `exact` does (the
    capture "7" equals the label 7). An item with no expected value is right when the pattern matches
    at all. No match is wrong; a cut-off answer is `truncated`, whatever it matched. Labels that are
    lists or mappings are refused. The search runs with the `regex` engine (Python's syntax) and a
    time limit: a pattern that backtracks past `timeout_s` on an answer fails that job, not the run."""

    type: Literal["regex"]
    pattern: str = Field(description="Python regex searched in the answer; group 1, if any, is the answer.")
    timeout_s: float = Field(1.0, gt=0, description="Time limit of one search; past it that job fails.")
    expected_field: str | None = Field(
        None, description="Dataset field the match (group 1, if any) must equal; default: the label."
    )
    case_sensitive: bool = Field(
        False, description="Tell upper from lower case when comparing the match with a text label (not the search)."
    )

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, pattern: str) -> str:
        import regex  # here, not at the top: `runner validate` of a file without a regex scorer skips it

        try:
            regex.compile(pattern)
        except regex.error as exc:
            # msg and pos are set by regex.error (types-regex does not declare them).
            message, pos = getattr(exc, "msg", str(exc)), getattr(exc, "pos", None)
            where = f" at position {pos}" if pos is not None else ""
            # A ValidationError of its own, so that the loader shows neither "Value error" nor the pattern.
            detail = InitErrorDetails(type=PydanticCustomError(
                "regex_pattern", f"invalid regular expression: {message}{where}; fix the pattern"), loc=(), input=None)
            raise ValidationError.from_exception_data("RegexScorer", [detail]) from None
        return pattern


class JsonFieldScorer(ScorerBase):
    """Finds the JSON in the answer, reads `field` from it and compares that with the expected value by
    the label's type (see `exact`; a list or mapping label is compared element by element). No JSON,
    a cut-off answer and JSON without the field are wrong and counted apart."""

    type: Literal["json_field"]
    field: str = Field(description="Dotted path in the answer's JSON, e.g. result.valid.")
    expected_field: str | None = Field(None, description="Dataset field to compare with; default: the label.")


class BinaryScorer(ScorerBase):
    """A two-class answer: `field` of the answer's JSON is the predicted class, compared with the dataset
    label (mapped through `label_map` first) by the label's type. Besides accuracy it gives precision,
    recall, F1, false positives and negatives (`positive` is the positive class), kappa and MCC. A
    prediction that is null, a list, an object, a fraction, or not of the label's kind (1 or "maybe"
    for a true/false label) is the wrong shape; no JSON or a cut-off answer states no class. Labels
    that are lists or mappings are refused."""

    type: Literal["binary"]
    field: str = Field(description="Field of the answer's JSON holding the predicted class, e.g. valid.")
    label_field: str | None = Field(None, description="Dataset field with the true class; default: label.")
    positive: JsonScalar = Field(True, description="The class counted as positive.")
    dangerous: Literal["false_positive", "false_negative"] = Field(
        "false_positive", description="Which error is the dangerous one (reported first)."
    )
    label_map: dict[str, JsonScalar] | None = Field(
        None, description="Dataset label -> answer value, e.g. {sensible: true, not_sensible: false}."
    )
    confidence_field: str | None = Field(
        None, description="Answer field with a 0-1 confidence, for calibration (mean when right vs wrong, Brier)."
    )
    reasons_field: str | None = Field(None, description="Answer field listing reasons, e.g. failures.")
    reason_label_field: str | None = Field(
        None, description="Dataset field the reasons should name, e.g. rule: the failures hit rate."
    )


class CodeTestsScorer(ScorerBase):
    """Runs the answer's code against the item's unit tests in a sandboxed child process (time and
    memory limits, no network, no new processes). Python (the default): the code is the answer's first
    fenced block tagged python (or not tagged), else the whole answer; each top-level statement of the
    tests is one test. C# (`language: csharp`, needs Debian's mono-mcs and mono-runtime): the first
    block tagged csharp, cs or c#; the tests are C# statements, one test each (runner.scoring.csharp),
    compiled with mcs and run with mono. Right when every test passes; the prediction is the pass
    rate, and each test's result is kept (compile_rate, test_pass_rate). No label is used. The child
    runs inside an operating-system boundary (bubblewrap, or unshare as root): without one the
    experiment is refused, unless RUNNER_SANDBOX=weak accepts the audit hook alone (Python only)."""

    type: Literal["code_tests"]
    language: Literal["python", "csharp"] = Field("python", description="The answers' language: python or csharp.")
    tests_field: str = Field("tests", description="Dataset field with the tests: one string of assert statements "
                                                  "(Python), or a list of C# statements, one test each (C#); the "
                                                  "other language's form is refused at validation.")
    timeout_s: float = Field(5.0, gt=0, description="Wall-clock limit per item (for C#: of running the tests).")
    memory_mb: int = Field(256, ge=32, description="Address-space limit of the child process.")
    style: bool = Field(True, description="Count ruff's style violations in Python answers that compile "
                                          "(style_violations); not measured for C#.")


class SimilarityScorer(ScorerBase):
    """How alike the answer is to the item's reference text (a summary, an expected answer), by one of
    the libraries' measures (`method`): rapidfuzz's `ratio` (default: normalized Indel similarity of
    the characters), `levenshtein` or `token_sort_ratio`; sacrebleu's `chrf`; rouge-score's `rouge1` or
    `rougeL` F-measure. All from 0 to 1; the value is the score's `similarity`, shown by the
    `similarity` and `divergence` metrics. Right when it reaches `min`; without `min`, only an answer
    identical to the reference (similarity 1) is right. With `normalize`, both texts are first
    normalized as SQuAD does (lower case, no punctuation, no articles), so a near-exact short answer
    ("The Eiffel Tower.") equals its reference ("Eiffel Tower"). A cut-off answer is `truncated`
    (never right), its similarity still measured; an empty one is `empty`. With `field`, an answer
    with no JSON or without the field has similarity 0 (nothing of the reference was said)."""

    type: Literal["similarity"]
    reference_field: str = Field("reference", description="Dataset field with the reference text.")
    method: Literal["ratio", "levenshtein", "token_sort_ratio", "chrf", "rouge1", "rougeL"] = Field(
        "ratio", description="The measure: ratio, levenshtein, token_sort_ratio (rapidfuzz), chrf (sacrebleu), "
                             "rouge1, rougeL (rouge-score).")
    min: float | None = Field(None, ge=0, le=1, description="Right when the similarity is at least this; "
                                                              "default: only an identical answer.")
    normalize: bool = Field(False, description="Compare SQuAD-normalized texts (lower case, no punctuation, "
                                               "no articles, single spaces).")
    field: str | None = Field(None, description="Compare this field (a dotted path) of the answer's JSON "
                                                "instead of the whole text.")


class PythonScorer(ScorerBase):
    """Your own function scores each answer (the contract: `runner.scoring.python`)."""

    type: Literal["python"]
    function: str = Field(
        description="package.module:function, called as function(text, finish_reason, fields); returns a bool, "
                    "a dict with `correct`, or a Score. Searched next to the experiment file, then on sys.path."
    )
    version: str | int | None = Field(
        None, description="Change it after editing the function: stored scores are reused while the config is the same."
    )


# The built-in scorers, in the order error messages list them. The Scorer classes are named by
# string because the config stage may not import runner.scoring (see runner.config.registry).
add_scorer("exact", ExactScorer, "runner.scoring.scorers:ExactMatch", "built-in")
add_scorer("regex", RegexScorer, "runner.scoring.scorers:RegexMatch", "built-in")
add_scorer("json_field", JsonFieldScorer, "runner.scoring.scorers:JsonField", "built-in")
add_scorer("binary", BinaryScorer, "runner.scoring.scorers:BinaryClassification", "built-in")
add_scorer("code_tests", CodeTestsScorer, "runner.scoring.scorers:CodeTests", "built-in")
add_scorer("similarity", SimilarityScorer, "runner.scoring.similarity_scorer:Similarity", "built-in")
add_scorer("python", PythonScorer, "runner.scoring.python:PythonFunction", "built-in")


def _scorer_by_type(value: Any) -> Any:
    """Validate one scorer config against the registry's models, picked by its `type`.

    The registry can grow after this module is imported (register_scorer, plugins), so the union
    is looked up per validation rather than fixed in an annotation. pydantic-core passes a
    ValidationError raised inside a validator on with its locations, so messages name
    `scorers[0].field` exactly as a static discriminated union did (tests/test_bad_input.py pins them).
    """
    tag = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return scorer_adapter(tag).validate_python(value)


# Serialized as the concrete model (all its fields), as the discriminated union it replaces was. The
# JSON Schema shows the scorers registered by now (the built-ins): a schema is fixed when it is built.
ScorerConfig = Annotated[
    SerializeAsAny[ScorerBase],
    BeforeValidator(_scorer_by_type, json_schema_input_type=scorer_union(scorer_models())),
]
