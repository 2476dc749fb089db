"""Style of generated Python: ruff's violations, counted per answer, with ruff run inside the code sandbox.

The analysis asks for "style compliance" next to compile and test success. ruff reads the answer's
code on stdin (nothing of it is executed) with a fixed rule set and no configuration file
(`--isolated`, so a pyproject.toml near the run changes nothing) and ignoring the answer's own
suppression comments (`--ignore-noqa`: a `# noqa` or `# ruff: noqa` the model wrote would otherwise
zero its count): pycodestyle errors and warnings
(E, W), pyflakes (F: unused imports and variables, undefined names) and pep8-naming (N), at ruff's
default line length of 88. It runs in the sandbox's boundary like the answer's code, because it
parses text the model wrote. ruff is a runtime dependency for this (its binary comes with the
`ruff` wheel); the boundary binds that one file read-only where it is installed.

The report's `style_violations` is the violations per 100 non-blank lines of code.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass

from runner.scoring.sandbox_child import _one_line
from runner.scoring.sandbox_tool import scratch

__all__ = ["RULES", "StyleResult", "check_style", "ruff_binary"]

RULES = ("E", "W", "F", "N")
# ruff is our program, not the answer's: enough room that a slow machine does not fail it.
_TIMEOUT_S = 30.0
_MEMORY_MB = 1024


@dataclass(frozen=True)
class StyleResult:
    violations: int
    lines: int  # non-blank lines of the code checked
    rules: dict[str, int]  # rule code -> how often


def ruff_binary() -> str | None:
    """The ruff executable of the installed `ruff` package; None when it is not installed."""
    try:
        from ruff.__main__ import find_ruff_bin  # type: ignore[import-untyped]
    except ImportError:
        return None
    try:
        return os.path.realpath(str(find_ruff_bin()))
    except FileNotFoundError:
        return None


def check_style(code: str) -> StyleResult:
    """ruff's violations of RULES in `code`. Raises RuntimeError when ruff is missing or fails."""
    ruff = ruff_binary()
    if ruff is None:
        raise RuntimeError("ruff is not installed (pip install ruff)")
    lines = sum(1 for line in code.splitlines() if line.strip())
    with scratch(runs_answer=False) as box:
        run = box.run([ruff, "check", "--isolated", "--no-cache", f"--select={','.join(RULES)}",
                       "--ignore-noqa", "--output-format=json", "--exit-zero", "--stdin-filename=solution.py", "-"],
                      timeout_s=_TIMEOUT_S, memory_mb=_MEMORY_MB, stdin=code.encode(), ro_binds=(ruff,),
                      max_output_bytes=8 << 20, inputs=())
    if run.timed_out or run.returncode != 0:
        detail = _one_line(run.stderr.decode(errors="replace"), 160)
        raise RuntimeError(f"ruff failed (status {run.returncode}{', timed out' if run.timed_out else ''}): {detail}")
    try:
        found = json.loads(run.stdout)
    except ValueError as exc:
        raise RuntimeError(f"ruff's output is not JSON: {exc}") from None
    rules = Counter(str(v.get("code")) for v in found if isinstance(v, dict))
    return StyleResult(sum(rules.values()), lines, dict(sorted(rules.items())))
