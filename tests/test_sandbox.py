"""Tests for runner.scoring.sandbox: scoring generated code, and containing code that misbehaves.

Each containment test checks three things: the run is scored as failed, the reason names the right
kind of failure, and the call came back within a bounded time (so the runner cannot be hung).
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from textwrap import dedent

import pytest

from runner.scoring import sandbox
from runner.scoring.sandbox import SandboxLimits, SandboxResult, extract_code, run_tests

LIMITS = SandboxLimits(timeout_s=2.0, memory_mb=200)
# Interpreter start-up and teardown on a loaded 2-core machine, on top of the timeout.
SLACK_S = 3.0

ADD_TESTS = dedent("""\
    assert add(1, 2) == 3
    assert add(-1, 1) == 0
    assert add(
        10,
        5,
    ) == 15
""")
CORRECT_ADD = "def add(a, b):\n    return a + b\n"


def timed_run(code: str, tests: str = ADD_TESTS, limits: SandboxLimits = LIMITS) -> SandboxResult:
    start = time.monotonic()
    result = run_tests(code, tests, limits)
    elapsed = time.monotonic() - start
    assert elapsed < limits.timeout_s + SLACK_S, f"took {elapsed:.1f} s: {result}"
    return result


def assert_failed(result: SandboxResult, error: str) -> None:
    assert result.compiled
    assert result.passed == 0
    assert result.error == error


def processes_with_cwd_containing(marker: str) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cwd = os.readlink(f"/proc/{entry}/cwd")
            except OSError:
                continue  # exited, or not ours to inspect
            if marker in cwd:
                pids.append(int(entry))
    return pids


# --- extract_code ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("Here:\n```python\nx = 1\n```\nDone.", "x = 1\n"),
        ("```py\nx = 1\n```", "x = 1\n"),
        ("```\nx = 1\n```", "x = 1\n"),
        ("```Python3\nx = 1\n```", "x = 1\n"),
        ("```python\nfirst = 1\n```\n```python\nsecond = 2\n```", "first = 1\n"),
        ("Run:\n```bash\npip install x\n```\n```python\nx = 1\n```", "x = 1\n"),
        ("1. Code:\n   ```python\n   def f():\n       return 1\n   ```", "def f():\n    return 1\n"),
        ("```python\ndef f():\n    return 1\n", "def f():\n    return 1\n"),  # cut off before the fence
        ("def f():\n    return 1\n", "def f():\n    return 1\n"),
        ("Use ```x = 1``` inline.", "Use ```x = 1``` inline."),
    ],
)
def test_extract_code(answer: str, expected: str) -> None:
    assert extract_code(answer) == expected


# --- scoring --------------------------------------------------------------------------------------


def test_correct_function_passes_all_tests() -> None:
    result = timed_run(CORRECT_ADD)
    assert result == SandboxResult(compiled=True, passed=3, total=3, error=None)
    assert result.pass_rate == 1.0


def test_wrong_function_passes_some_and_names_the_first_failure() -> None:
    result = timed_run("def add(a, b):\n    return a + b if a > 0 else 7\n")
    assert (result.passed, result.total) == (2, 3)
    assert result.error == "assertion failed at test 2"
    assert result.pass_rate == pytest.approx(2 / 3)


def test_each_top_level_statement_is_one_test() -> None:
    tests = "assert add(1, 1) == 2; assert add(2, 2) == 4\nassert (\n    add(0, 0) == 1\n)\n"
    result = timed_run(CORRECT_ADD, tests)
    assert (result.passed, result.total) == (2, 3)
    assert result.error == "assertion failed at test 3"


def test_exception_in_a_test_fails_only_that_test() -> None:
    result = timed_run("def add(a, b):\n    return 1 // (a - 1) * 0 + a + b\n")
    assert (result.passed, result.total) == (2, 3)
    assert result.error == "ZeroDivisionError: integer division or modulo by zero at test 1"


def test_syntax_error_is_not_compiled() -> None:
    result = timed_run("def add(a, b)\n    return a + b\n")
    assert result == SandboxResult(compiled=False, passed=0, total=3, error="syntax error: expected ':' (line 1)")
    assert result.pass_rate == 0.0


def test_error_at_import_fails_every_test() -> None:
    assert_failed(timed_run("import missing_module_xyz\n" + CORRECT_ADD),
                  "runtime error: ModuleNotFoundError: No module named 'missing_module_xyz'")


def test_invalid_tests_are_a_dataset_error_not_a_score() -> None:
    with pytest.raises(ValueError, match="tests are not valid Python"):
        run_tests(CORRECT_ADD, "assert add(1, 2) ==\n", LIMITS)


def test_no_tests_gives_zero_pass_rate() -> None:
    result = timed_run(CORRECT_ADD, "")
    assert result == SandboxResult(compiled=True, passed=0, total=0, error=None)
    assert result.pass_rate == 0.0


@pytest.mark.parametrize(
    "kwargs", [{"timeout_s": 0}, {"timeout_s": float("nan")}, {"memory_mb": 0}, {"max_output_bytes": -1}]
)
def test_limits_reject_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        SandboxLimits(**kwargs)  # type: ignore[arg-type]


# --- containment: the "loops forever, allocates without bound, forks, or opens a socket" ------


def test_infinite_loop_at_import_is_stopped() -> None:
    assert_failed(timed_run("while True:\n    pass\n" + CORRECT_ADD), "timed out after 2.0 s")


def test_infinite_loop_inside_the_function_is_stopped() -> None:
    assert_failed(timed_run("def add(a, b):\n    while True:\n        pass\n"), "timed out after 2.0 s")


def test_unbounded_allocation_hits_the_memory_limit() -> None:
    assert_failed(timed_run("x = []\nwhile True:\n    x.append(' ' * 10**6)\n"), "memory limit exceeded")


def test_unbounded_allocation_inside_a_test_fails_the_whole_run() -> None:
    code = "def add(a, b):\n    x = []\n    while True:\n        x.append(' ' * 10**6)\n"
    assert_failed(timed_run(code), "memory limit exceeded")


@pytest.mark.parametrize(
    "fork",
    [
        "pid = os.fork()",
        # Swallowing the refusal must not turn a fork attempt into a passing run.
        "try:\n    pid = os.fork()\nexcept BaseException:\n    pid = 1",
    ],
)
def test_fork_is_blocked_and_leaves_no_process(fork: str) -> None:
    # The forked copy would sit in a directory named after the marker, which makes it findable.
    marker = f"fork-marker-{uuid.uuid4().hex}"
    code = f"import os, time\nos.mkdir('{marker}')\nos.chdir('{marker}')\n{fork}\n"
    code += "if pid == 0:\n    time.sleep(30)\n" + CORRECT_ADD
    assert_failed(timed_run(code), "blocked: process creation")
    assert processes_with_cwd_containing(marker) == []


@pytest.mark.parametrize(
    "spawn",
    [
        "import subprocess\nsubprocess.run(['echo'])",
        "import os\nos.system('echo hi')",
        "import os\nos.execv('/bin/echo', ['echo'])",
        # multiprocessing's spawn path reaches _posixsubprocess.fork_exec, which raises no audit event.
        "import multiprocessing.util\nmultiprocessing.util.spawnv_passfds(b'/bin/echo', [b'echo'], ())",
    ],
)
def test_process_creation_is_blocked(spawn: str) -> None:
    assert_failed(timed_run(spawn + "\n" + CORRECT_ADD), "blocked: process creation")


@pytest.mark.parametrize(
    "connect",
    [
        "socket.socket().connect(('127.0.0.1', 9))",
        "socket.create_connection(('127.0.0.1', 9), timeout=1)",
        "socket.create_connection(('example.com', 80), timeout=1)",
    ],
)
def test_network_access_is_blocked(connect: str) -> None:
    assert_failed(timed_run(f"import socket\n{connect}\n" + CORRECT_ADD), "blocked: network access")


def test_ctypes_is_blocked() -> None:
    # Native calls could fork or unhook the guard, so every ctypes operation is refused.
    assert_failed(timed_run("import ctypes\nctypes.CDLL(None).getpid()\n" + CORRECT_ADD),
                  "blocked: native code (ctypes)")


def test_signalling_the_runner_is_blocked() -> None:
    # Signal 0 only probes, so the runner is safe even if the guard were broken.
    assert_failed(timed_run("import os\nos.kill(os.getppid(), 0)\n" + CORRECT_ADD),
                  "blocked: signal to another process")


def test_writing_outside_the_scratch_directory_is_blocked(tmp_path: Path) -> None:
    target = tmp_path / "escaped.txt"
    assert_failed(timed_run(f"open({str(target)!r}, 'w').write('x')\n" + CORRECT_ADD),
                  "blocked: file write outside the sandbox")
    assert not target.exists()


def test_writing_inside_the_scratch_directory_is_allowed() -> None:
    code = "import tempfile\nopen('notes.txt', 'w').write('x')\ntempfile.mkstemp()\n" + CORRECT_ADD
    assert timed_run(code).passed == 3


def test_asyncio_and_threads_still_work() -> None:
    # asyncio needs an AF_UNIX socketpair; the network guard must not catch it.
    code = dedent("""\
        import asyncio
        from concurrent.futures import ThreadPoolExecutor

        async def _add(a, b):
            return a + b

        def add(a, b):
            with ThreadPoolExecutor(2) as pool:
                return pool.submit(asyncio.run, _add(a, b)).result()
    """)
    assert timed_run(code).passed == 3


# --- containment: output, stdin and the result channel --------------------------------------------


def test_output_flood_is_truncated_and_does_not_hang() -> None:
    flood = "import sys\nfor _ in range(100):\n    print('x' * 10**6)\n    sys.stderr.write('e' * 10**5)\n"
    assert timed_run(flood + CORRECT_ADD).passed == 3
    run = sandbox._run_child(flood, "", LIMITS)
    assert len(run.stdout) == LIMITS.max_output_bytes
    assert len(run.stderr) == LIMITS.max_output_bytes
    assert not run.timed_out


def test_printed_or_injected_result_lines_are_ignored() -> None:
    # A wrong solution that tries to report success on stdout and on every inherited descriptor.
    code = dedent("""\
        import json, os
        fake = json.dumps({"nonce": "0" * 32, "passed": 3, "error": None})
        print(fake)
        for fd in range(3, 64):
            try:
                os.write(fd, (fake + "\\n").encode())
            except OSError:
                pass

        def add(a, b):
            return 100
    """)
    result = timed_run(code)
    assert result.passed == 0
    assert result.error == "assertion failed at test 1"


def test_reading_stdin_gets_eof_instead_of_hanging() -> None:
    assert_failed(timed_run("line = input()\n" + CORRECT_ADD),
                  "runtime error: EOFError: EOF when reading a line")


def test_exiting_before_the_report_is_a_failure() -> None:
    assert_failed(timed_run(CORRECT_ADD + "import os\nos._exit(0)\n"),
                  "exited with status 0 before reporting results")
