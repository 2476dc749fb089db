"""The built-in scorers, and building an experiment's scorers from the registry.

Each scorer is registered by name with its config model (`runner.config.schema`, where the
built-ins are listed); `Score`, `Scorer` and the outcomes are in `runner.scoring.base` and are
re-exported here for the modules that read scores.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from runner.config.scorer_configs import (
    BinaryScorer,
    CodeTestsScorer,
    ExactScorer,
    JsonFieldScorer,
    RegexScorer,
    ScorerBase,
)
from runner.errors import ConfigError
from runner.plan.dataset import Item
from runner.scoring.base import (
    ANSWERED,
    EMPTY,
    FAILED,
    FAILED_SCORE,
    NO_CODE,
    NO_JSON,
    OUTCOMES,
    SCORING_VERSION,
    TRUNCATED,
    WRONG_SHAPE,
    Score,
    Scorer,
    json_read_is_cheap,
    normalize,
)
from runner.scoring.errors import ScorerError
from runner.scoring.extract import extract_json, get_path, is_missing
from runner.scoring.registry import scorer_class
from runner.scoring.values import as_boolean, as_number, is_number, label_value, same_answer

__all__ = [
    "ANSWERED",
    "EMPTY",
    "FAILED",
    "FAILED_SCORE",
    "NO_CODE",
    "NO_JSON",
    "OUTCOMES",
    "SCORING_VERSION",
    "TRUNCATED",
    "WRONG_SHAPE",
    "BinaryClassification",
    "CodeTests",
    "ExactMatch",
    "JsonField",
    "RegexMatch",
    "Score",
    "Scorer",
    "build_scorers",
    "check_scorers",
    "normalize",
]

def _cut_off(expected: Any, json_valid: bool, said: Any = None) -> Score:
    """A response cut off at max_tokens: not an answer, whatever it matched before it stopped."""
    detail = "cut off at max_tokens" + (f" after giving {said!r}" if said is not None else "")
    return Score(TRUNCATED, False, None, expected, json_valid, detail)


def _json_outcome(text: str, finish_reason: str | None, field: str) -> tuple[Score | None, Any, Any]:
    """Shared by the JSON scorers: (the outcome when no usable value was found, the value, the JSON)."""
    if not text.strip():
        return Score(outcome=EMPTY, correct=False), None, None
    data = extract_json(text, prefer_key=field)
    if data is None:
        outcome = TRUNCATED if finish_reason == "length" else NO_JSON
        return Score(outcome=outcome, correct=False), None, None
    value = get_path(data, field)
    if is_missing(value) and finish_reason == "length":
        # A fragment parsed, but the answer was cut off before it got to the field.
        return Score(outcome=TRUNCATED, correct=False, json_valid=False), None, data
    if is_missing(value):
        shape = f"no key {field!r}" if isinstance(data, dict) else f"a JSON {type(data).__name__}"
        return Score(outcome=WRONG_SHAPE, correct=False, json_valid=True, detail=shape), None, data
    if finish_reason == "length":
        # The field is there, but the response did not finish: a draft's value is no answer.
        return _cut_off(None, True, value), None, data
    return None, value, data


class ExactMatch(Scorer):
    config: ExactScorer

    def __init__(self, config: ScorerBase, default_label: str | None) -> None:
        super().__init__(config, default_label)
        self.compares_as = None if self.config.field else "the answer's text"

    def cheap_on(self, text: str) -> bool:
        return json_read_is_cheap(text)

    def score(self, text: str, finish_reason: str | None, item: Item) -> Score:
        expected = self.expected(item)
        case_sensitive = self.config.case_sensitive
        if self.config.field:
            early, value, _ = _json_outcome(text, finish_reason, self.config.field)
            if early is not None:
                return Score(**{**early.to_dict(), "expected": expected})
            return Score(ANSWERED, same_answer(value, expected, case_sensitive=case_sensitive), value, expected, True)
        got = text.strip()
        json_valid = extract_json(text) is not None
        if not got:
            return Score(EMPTY, False, got, expected, json_valid)
        if finish_reason == "length":
            return _cut_off(expected, json_valid)
        return Score(ANSWERED, same_answer(got, expected, case_sensitive=case_sensitive), got, expected, json_valid)


class RegexMatch(Scorer):
    config: RegexScorer
    compares_as = "the text it matches"
    not_in_key = ("timeout_s",)

    def __init__(self, config: ScorerBase, default_label: str | None) -> None:
        super().__init__(config, default_label)
        # The `regex` engine: Python's syntax, but a search can be given a time limit, and it lets go
        # of the GIL while it runs (concurrent), so a pattern that backtracks for hours on one answer
        # fails that job after timeout_s instead of freezing the run. The pattern compiled when the
        # experiment was validated (RegexScorer), so it compiles here. Imported here: an experiment
        # without a regex scorer never loads the engine (~10 ms of every run, report and explain).
        import regex

        self.pattern = regex.compile(self.config.pattern)

    def score(self, text: str, finish_reason: str | None, item: Item) -> Score:
        expected = self.expected(item)
        json_valid = extract_json(text) is not None
        try:
            match = self.pattern.search(text, timeout=self.config.timeout_s, concurrent=True)
        except TimeoutError:
            raise ScorerError(f"scorer {self.name!r}: the pattern did not finish within {self.config.timeout_s:g} s "
                              f"on item {item.id!r} ({len(text):,} characters)",
                              fix="simplify the pattern (nested repeats such as (a*)* backtrack) or raise "
                                  "its timeout_s") from None
        found = None if match is None else (match.group(1) if match.groups() else match.group(0))
        if not text.strip():
            return Score(EMPTY, False, None, expected, json_valid, "no match")
        if finish_reason == "length":
            # A cut-off response (often a repetition loop) matches whatever it happened to repeat last.
            return _cut_off(expected, json_valid, found)
        if match is None:
            return Score(ANSWERED, False, None, expected, json_valid, "no match")
        correct = True if expected is None else same_answer(found, expected,
                                                            case_sensitive=self.config.case_sensitive)
        return Score(ANSWERED, correct, found, expected, json_valid)


class JsonField(Scorer):
    config: JsonFieldScorer
    needs_expected = True

    def cheap_on(self, text: str) -> bool:
        return json_read_is_cheap(text)

    def score(self, text: str, finish_reason: str | None, item: Item) -> Score:
        expected = self.expected(item)
        early, value, _ = _json_outcome(text, finish_reason, self.config.field)
        if early is not None:
            return Score(**{**early.to_dict(), "expected": expected})
        return Score(ANSWERED, same_answer(value, expected), value, expected, True)


class BinaryClassification(Scorer):
    """A two-class answer in a JSON field (e.g. valid: true/false) against the dataset label."""

    config: BinaryScorer
    is_binary = True
    needs_expected = True
    compares_as = "the class it reads"
    one_value_fix = "give every item one class (a string, a number or true/false), or map labels with label_map"

    def expected(self, item: Item) -> Any:
        label = super().expected(item)
        if self.config.label_map is not None:
            return self.config.label_map.get(str(label), label)
        return label

    def cheap_on(self, text: str) -> bool:
        return json_read_is_cheap(text)

    def score(self, text: str, finish_reason: str | None, item: Item) -> Score:
        expected = normalize(self.expected(item))
        early, value, data = _json_outcome(text, finish_reason, self.config.field)
        if early is not None:
            return Score(**{**early.to_dict(), "expected": expected})
        prediction = self._read_class(value, expected)
        if prediction is None:
            return Score(WRONG_SHAPE, False, None, expected, True, self._shape(value, expected))
        return Score(ANSWERED, same_answer(prediction, expected), prediction, expected, True,
                     extras=self._extras(data))

    @staticmethod
    def _read_class(value: Any, label: Any) -> Any:
        """The class the value states, read by the label's kind; None when it states none of that kind."""
        label = label_value(label)
        if isinstance(label, bool):
            return as_boolean(value)
        if is_number(label):
            number = as_number(value)
            if number is None or number != number.to_integral_value():
                return None  # a fraction is no class
            return int(number)
        prediction = normalize(value)
        return prediction if isinstance(prediction, bool | int | str) else None

    def _shape(self, value: Any, label: Any) -> str:
        field, label = self.config.field, label_value(label)
        if isinstance(value, list | dict) or value is None or isinstance(value, float):
            return f"{field!r} is a {type(value).__name__}"
        if isinstance(label, bool):
            return f"{field!r} is {value!r}, not true or false"
        return f"{field!r} is {value!r}, not a whole number"

    def _extras(self, data: Any) -> dict[str, Any] | None:
        """The answer's stated confidence and reasons, where the experiment names those fields."""
        extras: dict[str, Any] = {}
        if self.config.confidence_field:
            conf = get_path(data, self.config.confidence_field)
            if isinstance(conf, int | float) and not isinstance(conf, bool) and 0 <= conf <= 1:
                extras["confidence"] = float(conf)
        if self.config.reasons_field:
            reasons = get_path(data, self.config.reasons_field)
            if isinstance(reasons, list):
                extras["reasons"] = [str(r) for r in reasons]
        return extras or None

    def is_positive(self, value: Any) -> bool:
        return bool(normalize(value) == normalize(self.config.positive))


class CodeTests(Scorer):
    """Correct when the answer's code passes every test; the prediction is the pass rate.

    Every score's extras say whether the code compiled (`compiled`), each test's result in the
    dataset's order (`tests`), and for Python that compiles, ruff's style count (`style`: violations,
    non-blank lines, and the count of each rule): the report's compile_rate, test_pass_rate and
    style_violations."""

    config: CodeTestsScorer
    blocking = True

    # The sandboxes (runner.scoring.sandbox, .csharp, .sandbox_boundary, .style) are imported by the
    # methods that use them: an experiment without code tests never loads them (~10 ms of every run,
    # report and explain); `warm` imports them before a run's first answer.

    def warm(self) -> None:
        import runner.scoring.csharp
        import runner.scoring.sandbox
        import runner.scoring.sandbox_boundary
        import runner.scoring.style  # noqa: F401

    def expected(self, item: Item) -> Any:
        return None

    def check_items(self, items: Sequence[Item], file: Path, key: str) -> None:
        missing = [item.id for item in items if self.config.tests_field not in item.fields]
        if missing:
            raise ConfigError(f"dataset items {missing[:3]} have no field {self.config.tests_field!r}",
                              file=file, key=f"{key}.tests_field",
                              fix="add the unit tests to every row or name the field that holds them")
        for item in items:
            # Broken tests are the dataset's fault: refused before any request, not found per answer.
            self._check_tests(item, file, f"{key}.tests_field")

    def check_tools(self, file: Path, key: str) -> None:
        from runner.scoring.csharp import missing_tools
        from runner.scoring.sandbox_boundary import SandboxUnavailable, boundary
        from runner.scoring.style import ruff_binary

        csharp = self.config.language == "csharp"
        if csharp:
            absent = missing_tools()
            if absent:
                tools = " and ".join(t.tool for t in absent)
                raise ConfigError(f"code_tests with language csharp compiles and runs answers with mcs and mono, "
                                  f"but {tools} {'is' if len(absent) == 1 else 'are'} not installed",
                                  file=file, key=f"{key}.language",
                                  fix="install Debian's mono-mcs and mono-runtime (apt-get install -y mono-mcs "
                                      "mono-runtime; scripts/install_mono.sh), or use language: python")
        elif self.config.style and ruff_binary() is None:
            raise ConfigError("code_tests counts style violations with ruff, which is not installed", file=file,
                              key=f"{key}.style",
                              fix="pip install ruff (a dependency of the runner), or set style: false")
        # Last, after the dataset's own faults: the answers' code may only run inside a boundary (or with
        # the explicit RUNNER_SANDBOX=weak, for Python), and a machine without one is refused before any request.
        try:
            where = boundary()
        except SandboxUnavailable as exc:
            raise ConfigError(f"code_tests runs the answers' code, but {exc.problem}", file=file, key=key,
                              fix=exc.fix) from None
        if csharp and not where.confined:
            raise ConfigError("code_tests with language csharp runs the answers' code, but RUNNER_SANDBOX=weak has "
                              "no audit hook outside Python", file=file, key=key,
                              fix="unset RUNNER_SANDBOX, with bubblewrap installed (or as root)")

    def _check_tests(self, item: Item, file: Path, key: str) -> None:
        from runner.scoring.csharp import split_tests

        tests = item.fields[self.config.tests_field]
        # Each language's tests have their own JSON type, so that a dataset scored under the wrong language
        # is refused: a C# list stringified is one Python expression (any answer that compiles passes it),
        # and each line of a Python string taken for a C# statement fails every test.
        if self.config.language == "csharp":
            if isinstance(tests, str):
                raise ConfigError(f"the tests of dataset item {item.id!r} are a string, not a list of C# statements",
                                  file=file, key=key, fix="give a list of strings, one C# statement (a test) each, "
                                                          "or use language: python for a string of Python tests")
            if not (isinstance(tests, list) and all(isinstance(t, str) for t in tests)) or not split_tests(tests):
                raise ConfigError(f"the tests of dataset item {item.id!r} are not C# statements", file=file,
                                  key=key, fix="give a list of strings, one C# statement (a test) each")
            return
        if not isinstance(tests, str):
            kind = "a list" if isinstance(tests, list) else f"a JSON {type(tests).__name__}"
            raise ConfigError(f"the tests of dataset item {item.id!r} are {kind}, not Python source", file=file,
                              key=key, fix="give the tests as one string of Python (assert statements), or set "
                                           "language: csharp if they are C# statements")
        try:
            ast.parse(tests)
        except (SyntaxError, ValueError) as exc:
            where = f" (line {exc.lineno})" if isinstance(exc, SyntaxError) and exc.lineno else ""
            raise ConfigError(f"the tests of dataset item {item.id!r} are not valid Python: "
                              f"{getattr(exc, 'msg', exc)}{where}", file=file, key=key,
                              fix="fix the tests in that row") from None

    def _tests(self, item: Item) -> Any:
        return item.fields.get(self.config.tests_field, "")

    def _count(self, item: Item) -> int:
        from runner.scoring.csharp import split_tests
        from runner.scoring.sandbox import count_tests

        tests = self._tests(item)
        return len(split_tests(tests)) if self.config.language == "csharp" else count_tests(str(tests))

    def _compiles(self, code: str) -> bool:
        from runner.scoring.csharp import compiles
        from runner.scoring.sandbox import compile_error

        if self.config.language == "csharp":
            return compiles(code)[0]
        return compile_error(code) is None

    def score(self, text: str, finish_reason: str | None, item: Item) -> Score:
        from runner.scoring.csharp import extract_csharp, run_csharp_tests, split_tests
        from runner.scoring.sandbox import SandboxLimits, extract_code, run_tests
        from runner.scoring.style import check_style

        csharp = self.config.language == "csharp"
        code = extract_csharp(text) if csharp else extract_code(text)
        total = self._count(item)
        if not code.strip():
            return Score(EMPTY, False, extras={"compiled": False, "tests": [False] * total})
        try:
            if finish_reason == "length":
                # Cut-off code is no answer, even where it happens to compile; whether it does still counts
                # toward compile_rate, so that cutting answers off does not flatter it.
                cut = _cut_off(None, False)
                return Score(**{**cut.to_dict(), "extras": {"compiled": self._compiles(code),
                                                            "tests": [False] * total}})
            limits = SandboxLimits(timeout_s=self.config.timeout_s, memory_mb=self.config.memory_mb)
            if csharp:
                result = run_csharp_tests(code, split_tests(self._tests(item)), limits)
            else:
                result = run_tests(code, str(self._tests(item)), limits)
            extras: dict[str, Any] = {"compiled": result.compiled, "tests": list(result.results)}
            if result.compiled and not csharp and self.config.style:
                style = check_style(code)
                extras["style"] = {"violations": style.violations, "lines": style.lines, "rules": style.rules}
        except (OSError, RuntimeError) as exc:  # no process could be started (EAGAIN, EMFILE, no interpreter)
            raise ScorerError(f"the code sandbox could not start: {type(exc).__name__}: {exc}") from exc
        if not result.compiled:
            return Score(NO_CODE, False, 0.0, None, False, result.error, extras)
        return Score(ANSWERED, result.total > 0 and result.passed == result.total, result.pass_rate, None,
                     False, result.error, extras)


def build_scorers(configs: Sequence[ScorerBase], default_label: str | None) -> list[Scorer]:
    """One Scorer per config, in order, each of the class registered for its `type`."""
    return [scorer_class(c.type)(c, default_label) for c in configs]


def check_scorers(scorers: Sequence[Scorer], items: Sequence[Item], file: Path, *, tools: bool = True) -> None:
    """Every scorer's check of the dataset (`Scorer.check_items`), before any request; with `tools`, also
    of what scoring needs on this machine (`Scorer.check_tools`), else left until an answer must be scored
    (`Scorer.ensure_tools`: a read verb over cached scores needs no compiler)."""
    for index, scorer in enumerate(scorers):
        key = f"scorers[{index}]"
        scorer.check_items(items, file, key)
        scorer._where = (file, key)
        if tools:
            scorer.check_tools(file, key)
            scorer._tools_checked = True
