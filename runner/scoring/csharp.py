"""C# answers: compiled with Mono's `mcs` and unit-tested by a small harness run with `mono`, in the sandbox.

The analysis's code-generation task is a C# class written from a spec. An item's tests are C#
statements, one test each (a JSON list of strings; a string, Python's form of tests, is refused),
written against a tiny assertion class the harness brings (`Assert.Equal(expected, actual)`,
`Assert.True(c)`, `Assert.False(c)`, `Assert.SequenceEqual(expected, actual)`, `Assert.Throws<E>(() => ...)`):

    {"id": "cs01", "spec": "...", "tests": ["Assert.Equal(5, Calc.Add(2, 3));", "Assert.True(Calc.Add(0, 0) == 0);"]}

Three steps, each inside the sandbox's boundary (`sandbox_tool`), in one scratch directory:

1. the answer alone, `mcs -target:library`: whether it compiles (compile_rate) is about the answer
   only, not about the tests;
2. the harness against it, `mcs -r:solution.dll`: each test is its own method behind a `#line`
   directive naming it, so a test that does not compile against the answer (a method the answer
   does not have) fails that test only; it is left out and the rest compiled again. The harness
   imports every namespace the answer declares (`using`), so a class put in a namespace against
   the prompt's word is still tested; a `using` that does not compile is dropped;
3. `mono harness.exe`: the tests run in order in one process, each reported as it finishes with a
   per-run nonce the harness reads from stdin before any of the answer's code runs (the answer's
   own Console output goes nowhere). A test that crashes the process or runs out of time fails
   with those after it; those reported before still count.

Mono reads its configuration from /etc/mono, which the boundary binds read-only (nothing else of
/etc, in both confined modes: `sandbox_boundary`). As with the Python child, the boundary protects
the host, not the score: an answer can cheat by reflection.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from runner.scoring.sandbox import SandboxLimits, SandboxResult
from runner.scoring.sandbox_boundary import _SYSTEM_PATH
from runner.scoring.sandbox_child import _one_line
from runner.scoring.sandbox_tool import Scratch, scratch

__all__ = ["CSHARP_TOOLS_ENV", "MissingCompiler", "compiles", "extract_csharp", "missing_tools", "run_csharp_tests",
           "split_tests"]

# Where mcs and mono are looked for (the tests point it at a folder without them); the system's PATH if unset.
CSHARP_TOOLS_ENV = "RUNNER_CSHARP_PATH"
TOOLS = (("mcs", "mono-mcs"), ("mono", "mono-runtime"))
MONO_CONFIG = "/etc/mono"


def _mono_binds() -> tuple[str, ...]:
    return (MONO_CONFIG,) if os.path.isdir(MONO_CONFIG) else ()
# The compiler is our program, not the answer's: it gets more room than the answer's run, the same
# for every answer, so that a slow machine does not turn compiling into a failure.
_COMPILE_TIMEOUT_S = 60.0
_COMPILE_MEMORY_MB = 1024
_MAX_ROUNDS = 4  # harness compiles: tests (and usings) that do not compile are dropped, then compiled again
_FENCE_TAGS = frozenset({"", "csharp", "cs", "c#"})
_ERROR = re.compile(r"^(?P<file>[^(\n]+)\((?P<line>\d+),\d+\): error (?P<code>CS\d+): (?P<text>.*)$", re.M)
_TEST_FILE = re.compile(r"^test-(\d+)$")
_USING_FILE = re.compile(r"^using-(\d+)$")
_NAMESPACE = re.compile(r"^[ \t]*namespace[ \t]+([A-Za-z_][\w.]*)", re.M)
# "The type arguments cannot be inferred": what an unknown name in an Assert.Equal call also causes, and
# the less telling of the two; a test's other error is named instead where it has one.
_FOLLOW_ON = "CS0411"


@dataclass(frozen=True)
class MissingCompiler:
    tool: str
    package: str


def missing_tools() -> list[MissingCompiler]:
    """The C# tools not installed here (empty: both are)."""
    path = os.environ.get(CSHARP_TOOLS_ENV) or _SYSTEM_PATH
    return [MissingCompiler(tool, package) for tool, package in TOOLS if shutil.which(tool, path=path) is None]


def _tool(name: str) -> str:
    found = shutil.which(name, path=os.environ.get(CSHARP_TOOLS_ENV) or _SYSTEM_PATH)
    if found is None:
        raise OSError(f"{name} is not installed")
    return found


def split_tests(tests: Any) -> list[str]:
    """An item's tests as a list of C# statements: a list as it is, anything else none (the scorer's
    validation refuses a string, Python's form of tests, for C#)."""
    if isinstance(tests, list):
        return [str(t) for t in tests]
    return []


def extract_csharp(text: str) -> str:
    """The first ```csharp / ```cs / ```c# / bare fenced block, else the whole text (as for Python: a
    block still open at the end is taken as it is)."""
    inside, tag, body = False, "", list[str]()
    for line in text.splitlines(keepends=True):
        stripped = line.strip()
        if not inside:
            if stripped.startswith("```") and "```" not in stripped[3:]:
                info = stripped[3:].strip()
                tag = info.split(maxsplit=1)[0].lower() if info else ""
                inside, body = True, []
        elif len(stripped) >= 3 and not stripped.strip("`"):
            if tag in _FENCE_TAGS:
                return "".join(body)
            inside = False
        else:
            body.append(line)
    return "".join(body) if inside and tag in _FENCE_TAGS else text


def _namespaces(code: str) -> list[str]:
    """The namespaces the answer seems to declare, in order: the harness imports each (a class declared
    in a namespace, against the prompt's "global namespace", is still the class the tests are for)."""
    return list(dict.fromkeys(_NAMESPACE.findall(code)))


def _harness(tests: Sequence[tuple[int, str]], usings: Sequence[tuple[int, str]]) -> str:
    """The test program: one method per test (numbered as in the dataset), run in order by Main.

    Each test and each imported namespace is behind a `#line` naming it, so that a compile error
    says which one it is in: that test fails alone, that `using` (a namespace read from a comment,
    say) is dropped."""
    header = "".join(f"#line 1 \"using-{n}\"\nusing {name};\n#line default\n" for n, name in usings)
    methods = "\n".join(f"        static void Test{n}() {{\n#line 1 \"test-{n}\"\n{body}\n#line default\n        }}"
                        for n, body in tests)
    calls = "\n".join(f"            Run({n}, Test{n});" for n, _ in tests)
    return header + _HARNESS.replace("@METHODS@", methods).replace("@CALLS@", calls)


_HARNESS = """\
using System;
using System.Collections.Generic;
using System.Linq;

namespace RunnerHarness {
    public sealed class HarnessAssertionFailed : Exception {
        public HarnessAssertionFailed(string message) : base(message) {}
    }

    public static class Assert {
        static string Show(object value) { return value == null ? "null" : value.ToString(); }
        public static void True(bool condition) { if (!condition) throw new HarnessAssertionFailed("expected true"); }
        public static void False(bool condition) { if (condition) throw new HarnessAssertionFailed("expected false"); }
        public static void Equal<T>(T expected, T actual) {
            if (!EqualityComparer<T>.Default.Equals(expected, actual))
                throw new HarnessAssertionFailed("expected " + Show(expected) + ", got " + Show(actual));
        }
        public static void SequenceEqual<T>(IEnumerable<T> expected, IEnumerable<T> actual) {
            if (actual == null || !expected.SequenceEqual(actual))
                throw new HarnessAssertionFailed("expected [" + string.Join(", ", expected) + "], got "
                    + (actual == null ? "null" : "[" + string.Join(", ", actual) + "]"));
        }
        public static void Throws<E>(Action action) where E : Exception {
            try { action(); }
            catch (E) { return; }
            catch (Exception e) {
                throw new HarnessAssertionFailed("expected " + typeof(E).Name + ", got " + e.GetType().Name);
            }
            throw new HarnessAssertionFailed("expected " + typeof(E).Name + ", nothing was thrown");
        }
    }

    public static class HarnessMain {
        static System.IO.TextWriter report;
        static string nonce;

        static void Run(int number, Action test) {
            string line;
            try { test(); line = "pass " + number; }
            catch (Exception e) {
                string text = e.Message == null ? "" : e.Message.Replace('\\n', ' ').Replace('\\r', ' ');
                line = "fail " + number + " " + (e is HarnessAssertionFailed ? "assertion failed: " + text
                                                                      : e.GetType().Name + ": " + text);
            }
            report.WriteLine(nonce + " " + line);
            report.Flush();
        }

        public static int Main() {
            nonce = Console.In.ReadLine();
            report = Console.Out;
            Console.SetOut(System.IO.TextWriter.Null);
            Console.SetError(System.IO.TextWriter.Null);
@CALLS@
            return 0;
        }

@METHODS@
    }
}
"""


def _compile_errors(run_stdout: bytes, run_stderr: bytes) -> list[re.Match[str]]:
    return list(_ERROR.finditer((run_stdout + b"\n" + run_stderr).decode(errors="replace")))


def _first_error(errors: list[re.Match[str]], fallback: str) -> str:
    if not errors:
        return fallback
    e = errors[0]
    return f"{e['code']}: {e['text'].strip()} (line {e['line']})"


def _compile_solution(box: Scratch, code: str) -> str | None:
    """None if the answer compiles on its own, else the compiler's first error, one line."""
    box.write("solution.cs", code)
    run = box.run([_tool("mcs"), "-nologo", "-target:library", "-out:solution.dll", "solution.cs"],
                  timeout_s=_COMPILE_TIMEOUT_S, memory_mb=_COMPILE_MEMORY_MB, ro_binds=_mono_binds())
    if run.timed_out:
        return f"compile error: mcs did not finish within {_COMPILE_TIMEOUT_S:g} s"
    if run.returncode == 0:
        return None
    return _one_line("compile error: " + _first_error(_compile_errors(run.stdout, run.stderr),
                                                      f"mcs exited with status {run.returncode}"))


def compiles(code: str) -> tuple[bool, str | None]:
    """Whether C# code compiles on its own (mcs -target:library, in the sandbox), and the first error."""
    if not code.strip():
        return False, "no code"
    with scratch(runs_answer=False) as box:
        error = _compile_solution(box, code)
    return error is None, error


def run_csharp_tests(code: str, tests: Sequence[str], limits: SandboxLimits | None = None) -> SandboxResult:
    """Compile `code`, then run each of `tests` against it (see the module's docstring)."""
    limits = limits or SandboxLimits()
    total = len(tests)
    with scratch(runs_answer=True) as box:
        error = _compile_solution(box, code)
        if error is not None:
            return SandboxResult(False, 0, total, error)
        failures: dict[int, str] = {}
        todo = list(enumerate(tests, start=1))
        usings = list(enumerate(_namespaces(code), start=1))
        for _ in range(_MAX_ROUNDS):
            box.write("harness.cs", _harness(todo, usings))
            run = box.run([_tool("mcs"), "-nologo", "-r:solution.dll", "-main:RunnerHarness.HarnessMain",
                           "-out:harness.exe", "harness.cs"],
                          timeout_s=_COMPILE_TIMEOUT_S, memory_mb=_COMPILE_MEMORY_MB, ro_binds=_mono_binds())
            if run.returncode == 0 and not run.timed_out:
                break
            errors = _compile_errors(run.stdout, run.stderr)
            broken: dict[int, re.Match[str]] = {}
            for e in errors:
                if (m := _TEST_FILE.match(e["file"].strip())) and (
                        int(m[1]) not in broken or broken[int(m[1])]["code"] == _FOLLOW_ON):
                    broken[int(m[1])] = e
            bad_usings = {int(m[1]) for e in errors if (m := _USING_FILE.match(e["file"].strip()))}
            outside = [e for e in errors if not (_TEST_FILE.match(e["file"].strip())
                                                 or _USING_FILE.match(e["file"].strip()))]
            if bad_usings and not outside:
                usings = [(n, name) for n, name in usings if n not in bad_usings]
                if not broken:
                    continue  # the tests' errors, if any, may have been the missing namespace's
            if run.timed_out or not broken or outside:
                # The harness itself does not compile against the answer (it redefines a name the
                # harness needs): no test can run.
                reason = _first_error(outside or errors,
                                      "mcs timed out" if run.timed_out else "the harness did not compile")
                return SandboxResult(True, 0, total, _one_line(f"tests do not compile: {reason}"))
            for number, e in broken.items():
                failures.setdefault(number, f"does not compile: {e['code']}: {e['text'].strip()}")
            todo = [(n, t) for n, t in todo if n not in broken]
            if not todo:
                break
        else:
            return SandboxResult(True, 0, total, "tests do not compile")
        results = dict.fromkeys(range(1, total + 1), False)
        if todo:
            nonce = secrets.token_hex(16)
            run = box.run([_tool("mono"), "harness.exe"], timeout_s=limits.timeout_s, memory_mb=limits.memory_mb,
                          stdin=(nonce + "\n").encode(), ro_binds=_mono_binds(),
                          max_output_bytes=limits.max_output_bytes, inputs=("solution.dll", "harness.exe"))
            for line in run.stdout.decode(errors="replace").splitlines():
                word, _, rest = line.partition(" ")
                if word != nonce:
                    continue
                verdict, _, rest = rest.partition(" ")
                which, _, message = rest.partition(" ")
                if not which.isdigit() or int(which) not in results:
                    continue
                if verdict == "pass":
                    results[int(which)] = True
                elif verdict == "fail":
                    failures.setdefault(int(which), message)
            reported = {n for n in results if results[n] or n in failures}
            unreported = [n for n, _ in todo if n not in reported]
            if unreported:
                why = (f"timed out after {float(limits.timeout_s)} s" if run.timed_out
                       else f"the test process ended (status {run.returncode})")
                failures.setdefault(unreported[0], why)
        passed = sum(results.values())
        first = min(failures) if failures else None
        error = None if first is None else _one_line(f"test {first}: {failures[first]}")
        return SandboxResult(True, passed, total, error, tuple(results[n] for n in range(1, total + 1)))
