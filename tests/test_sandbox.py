"""Tests for runner.scoring.sandbox: scoring generated code, and containing code that misbehaves.

Each containment test checks three things: the run is scored as failed, the reason names the right
kind of failure, and the call came back within a bounded time (so the runner cannot be hung). Each
containment and escape test runs in every sandbox mode that works on this machine (bwrap, unshare,
weak: see sandbox_modes); the ones about what only the operating-system boundary stops (reading
files) skip the weak mode, which promises no more than the audit hook.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from textwrap import dedent

import pytest
from sandbox_modes import gone_within, machine_mode_fixture, mode_fixture  # noqa: F401 (fixtures)

from runner.scoring import sandbox
from runner.scoring.sandbox import SandboxLimits, SandboxResult, extract_code, run_tests
from runner.scoring.sandbox_boundary import SCRATCH_BYTES

# The containment and escape tests run once in each mode that works here; scoring itself does not
# depend on the mode and runs once, in the mode the machine would pick.
in_each_mode = pytest.mark.usefixtures("mode")
in_the_machines_mode = pytest.mark.usefixtures("machine_mode")

REPO_ROOT = Path(__file__).resolve().parents[1]
LIMITS = SandboxLimits(timeout_s=2.0, memory_mb=200)
# For the tests that wait for the deadline: shorter, as they run once per mode.
LOOP_LIMITS = SandboxLimits(timeout_s=1.0, memory_mb=200)
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


@in_the_machines_mode
def test_correct_function_passes_all_tests() -> None:
    result = timed_run(CORRECT_ADD)
    assert result == SandboxResult(compiled=True, passed=3, total=3, error=None, results=(True, True, True))
    assert result.pass_rate == 1.0


@in_the_machines_mode
def test_wrong_function_passes_some_and_names_the_first_failure() -> None:
    result = timed_run("def add(a, b):\n    return a + b if a > 0 else 7\n")
    assert (result.passed, result.total) == (2, 3)
    assert result.results == (True, False, True)  # each test's own result, not only the count
    assert result.error == "assertion failed at test 2"
    assert result.pass_rate == pytest.approx(2 / 3)


@in_the_machines_mode
def test_each_top_level_statement_is_one_test() -> None:
    tests = "assert add(1, 1) == 2; assert add(2, 2) == 4\nassert (\n    add(0, 0) == 1\n)\n"
    result = timed_run(CORRECT_ADD, tests)
    assert (result.passed, result.total) == (2, 3)
    assert result.results == (True, True, False)
    assert result.error == "assertion failed at test 3"


@in_the_machines_mode
def test_exception_in_a_test_fails_only_that_test() -> None:
    result = timed_run("def add(a, b):\n    return 1 // (a - 1) * 0 + a + b\n")
    assert (result.passed, result.total) == (2, 3)
    assert result.error == "ZeroDivisionError: integer division or modulo by zero at test 1"


@in_the_machines_mode
def test_syntax_error_is_not_compiled() -> None:
    result = timed_run("def add(a, b)\n    return a + b\n")
    assert result == SandboxResult(compiled=False, passed=0, total=3, error="syntax error: expected ':' (line 1)",
                                   results=(False, False, False))
    assert result.pass_rate == 0.0


@in_the_machines_mode
def test_error_at_import_fails_every_test() -> None:
    assert_failed(timed_run("import missing_module_xyz\n" + CORRECT_ADD),
                  "runtime error: ModuleNotFoundError: No module named 'missing_module_xyz'")


@in_the_machines_mode
def test_invalid_tests_are_a_dataset_error_not_a_score() -> None:
    with pytest.raises(ValueError, match="tests are not valid Python"):
        run_tests(CORRECT_ADD, "assert add(1, 2) ==\n", LIMITS)


@in_the_machines_mode
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


# --- containment: the issue's "loops forever, allocates without bound, forks, or opens a socket" ------


@in_each_mode
def test_infinite_loop_at_import_is_stopped_and_leaves_no_process(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    marker = f"loop-marker-{uuid.uuid4().hex}"
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where run_tests makes its scratch folder
    code = f"import os\nos.mkdir({marker!r})\nos.chdir({marker!r})\nwhile True:\n    pass\n" + CORRECT_ADD
    assert_failed(timed_run(code, limits=LOOP_LIMITS), "timed out after 1.0 s")
    # Everything the run started dies with it: the code, and bwrap or unshare, setpriv and the namespace's init.
    assert gone_within(1.0, marker, str(tmp_path)) == []


@in_each_mode
def test_infinite_loop_inside_the_function_is_stopped() -> None:
    assert_failed(timed_run("def add(a, b):\n    while True:\n        pass\n", limits=LOOP_LIMITS),
                  "timed out after 1.0 s")


@in_each_mode
def test_unbounded_allocation_hits_the_memory_limit() -> None:
    assert_failed(timed_run("x = []\nwhile True:\n    x.append(' ' * 10**6)\n"), "memory limit exceeded")


@in_each_mode
def test_unbounded_allocation_inside_a_test_fails_the_whole_run() -> None:
    code = "def add(a, b):\n    x = []\n    while True:\n        x.append(' ' * 10**6)\n"
    assert_failed(timed_run(code), "memory limit exceeded")


@in_each_mode
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


@in_each_mode
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


@in_each_mode
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


@in_each_mode
def test_ctypes_is_blocked() -> None:
    # Native calls could fork or unhook the guard, so every ctypes operation is refused.
    assert_failed(timed_run("import ctypes\nctypes.CDLL(None).getpid()\n" + CORRECT_ADD),
                  "blocked: native code (ctypes)")


@in_each_mode
def test_signalling_the_runner_is_blocked() -> None:
    # Signal 0 only probes, so the runner is safe even if the guard were broken.
    assert_failed(timed_run("import os\nos.kill(os.getppid(), 0)\n" + CORRECT_ADD),
                  "blocked: signal to another process")


@in_each_mode
def test_writing_outside_the_scratch_directory_is_blocked(tmp_path: Path) -> None:
    target = tmp_path / "escaped.txt"
    assert_failed(timed_run(f"open({str(target)!r}, 'w').write('x')\n" + CORRECT_ADD),
                  "blocked: file write outside the sandbox")
    assert not target.exists()


@in_each_mode
def test_writing_inside_the_scratch_directory_is_allowed() -> None:
    code = "import tempfile\nopen('notes.txt', 'w').write('x')\ntempfile.mkstemp()\n" + CORRECT_ADD
    assert timed_run(code).passed == 3


@in_each_mode
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


@in_each_mode
def test_output_flood_is_truncated_and_does_not_hang() -> None:
    flood = "import sys\nfor _ in range(100):\n    print('x' * 10**6)\n    sys.stderr.write('e' * 10**5)\n"
    assert timed_run(flood + CORRECT_ADD).passed == 3
    run = sandbox._run_child(flood, "", LIMITS)
    assert len(run.stdout) == LIMITS.max_output_bytes
    assert len(run.stderr) == LIMITS.max_output_bytes
    assert not run.timed_out


@in_each_mode
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


@in_each_mode
def test_reading_stdin_gets_eof_instead_of_hanging() -> None:
    assert_failed(timed_run("line = input()\n" + CORRECT_ADD),
                  "runtime error: EOFError: EOF when reading a line")


@in_each_mode
def test_exiting_before_the_report_is_a_failure() -> None:
    assert_failed(timed_run(CORRECT_ADD + "import os\nos._exit(0)\n"),
                  "exited with status 0 before reporting results")


# --- the issue's escapes: switching the guard off from inside, reading what the runner can ------------


@in_each_mode
def test_the_frame_walk_from_the_issue_is_blocked(tmp_path: Path) -> None:
    # Verbatim from the issue, except for where the command writes: a folder the sandbox may not touch.
    target = tmp_path / "x"
    code = (f'import sys; sys._getframe(2).f_globals["_ALWAYS_DENIED"].clear()\n'
            f'import os; os.system("id > {target}")\n' + CORRECT_ADD)
    assert_failed(timed_run(code), "blocked: interpreter introspection")
    assert not target.exists()


# Everything generated code can reach of the sandbox without a refused event: its own frame, the
# frames above it through f_back (not audited in Python 3.11) and the sandbox's globals as __main__.
# Each prelude tries to switch the guard off from there, the way the issue's attack did.
_FIND_AND_REWRITE = dedent("""\
    import sys, types
    def _rewrite(scope):
        for key, value in list(scope.items()):
            if hasattr(value, "_prefix"):
                value._prefix = "/"
            if hasattr(value, "violation"):
                value.violation = None
            if isinstance(value, dict) and key.startswith("_"):
                try:
                    value.clear()
                except Exception:
                    pass
            if isinstance(value, types.FunctionType):
                for cell in value.__closure__ or ():
                    try:
                        if isinstance(cell.cell_contents, str):
                            cell.cell_contents = "/"
                    except ValueError:
                        pass
    frame = sys._getframe(0)
    while frame is not None:
        _rewrite(frame.f_locals)
        _rewrite(frame.f_globals)
        frame = frame.f_back
""")
_TAMPERING = {
    "frames": _FIND_AND_REWRITE,
    "main-globals": dedent("""\
        import __main__
        for name in list(vars(__main__)):
            if name.startswith("_") and not name.startswith("__"):
                setattr(__main__, name, {})
    """),
    "stdlib-helpers": dedent("""\
        import builtins, os, os.path
        builtins.isinstance = lambda *args: True
        os.path.realpath = lambda path, **kwargs: os.getcwd() + "/inside"
        os.fsdecode = lambda path: os.getcwd() + "/inside"
    """),
    "str-subclass": dedent("""\
        class _Inside(str):
            def startswith(self, *args):
                return True
        import builtins
        _open = builtins.open
        builtins.open = lambda path, *args, **kwargs: _open(_Inside(path), *args, **kwargs)
    """),
}


@in_each_mode
@pytest.mark.parametrize("how", list(_TAMPERING))
def test_rewriting_what_the_guard_uses_does_not_allow_writes_or_deletes(tmp_path: Path, how: str) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    escaped = tmp_path / "escaped.txt"
    write = _TAMPERING[how] + f"open({str(escaped)!r}, 'w').write('x')\n" + CORRECT_ADD
    assert_failed(timed_run(write), "blocked: file write outside the sandbox")
    delete = _TAMPERING[how] + f"import os\nos.remove({str(victim)!r})\n" + CORRECT_ADD
    assert_failed(timed_run(delete), "blocked: file write outside the sandbox")
    assert not escaped.exists()
    assert victim.read_text() == "keep me"


@in_each_mode
def test_the_guard_frames_and_tracers_are_refused() -> None:
    for code in ("import sys\nsys._getframe(1)\n", "import sys\nsys._current_frames()\n",
                 "import sys\nsys.settrace(lambda *a: None)\n", "import sys\nsys.setprofile(lambda *a: None)\n",
                 "import sys\nsys.addaudithook(lambda *a: None)\n",
                 "import __main__\n__main__._run_all.__code__ = (lambda *a: (3, None)).__code__\n"):
        result = timed_run(code + CORRECT_ADD)
        assert result.passed == 0 and result.error is not None and result.error.startswith("blocked: "), code


@in_each_mode
def test_the_stdlib_that_reads_its_callers_frame_still_works() -> None:
    # namedtuple, TypeVar, Enum's functional API and logging ask sys._getframe for their caller's frame.
    code = dedent("""\
        import collections, dataclasses, enum, logging, traceback, typing
        Point = collections.namedtuple("Point", "x y")
        T = typing.TypeVar("T")
        Colour = enum.Enum("Colour", "RED GREEN")
        logging.getLogger("solution").warning("noted")
        try:
            1 / 0
        except ZeroDivisionError:
            traceback.format_exc()

        @dataclasses.dataclass
        class Pair:
            a: int
            b: int

        def add(a, b):
            return Point(Pair(a, b).a, b).x + b
    """)
    assert timed_run(code).passed == 3


@in_each_mode
def test_a_forged_report_cannot_store_unbounded_text() -> None:
    # The code finds the nonce and the report pipe in the sandbox's own frames and reports for itself:
    # it can cheat the score (as `__eq__ = lambda *a: True` can), but what it says is capped.
    code = dedent("""\
        import json, os, sys
        frame = sys._getframe(0)
        while frame is not None:
            payload = frame.f_locals.get("payload")
            if isinstance(payload, dict) and "nonce" in payload:
                line = json.dumps({"nonce": payload["nonce"], "passed": 0, "results": [False] * 3,
                                   "error": "y" * 10000 + "\\nz"})
                os.write(payload["report_fd"], ("\\n" + line + "\\n").encode())
                os._exit(0)
            frame = frame.f_back
    """)
    result = timed_run(code + CORRECT_ADD)
    assert result.passed == 0
    assert result.error == "y" * 197 + "..."


@pytest.fixture
def secrets_dirs(tmp_path: Path) -> Iterator[list[Path]]:
    """Two folders with secret files: one under /tmp (hidden by both boundaries' mount views) and one in
    the repository, which the unshare mode leaves visible, so there only file permissions protect it."""
    visible = Path(tempfile.mkdtemp(prefix=".sandbox-secrets-", dir=REPO_ROOT))
    try:
        for folder in (tmp_path, visible):
            folder.chmod(0o755)  # anyone may enter: the files' own modes are what is tested
        yield [tmp_path, visible]
    finally:
        shutil.rmtree(visible)


def _secret_file(folder: Path, name: str, uid: int, gid: int, bits: int) -> tuple[Path, str]:
    secret = f"secret-{uuid.uuid4().hex}"
    path = folder / name
    path.write_text(secret)
    os.chown(path, uid, gid)
    path.chmod(bits)
    return path, secret


@pytest.mark.skipif(os.geteuid() != 0, reason="making a file owned by another user needs root")
@pytest.mark.parametrize(("owner", "mode_bits"), [((1000, 1000), 0o600), ((0, 42), 0o640)],
                         ids=["0600-of-another-user", "root-shadow-0640"])
def test_reading_a_file_the_runner_may_read_fails(secrets_dirs: list[Path], mode: str, owner: tuple[int, int],
                                                  mode_bits: int) -> None:
    if mode == "weak":
        pytest.skip("the weak mode does not confine reads (the audit hook allows them): no boundary")
    for folder in secrets_dirs:
        path, secret = _secret_file(folder, "key.pem", *owner, mode_bits)
        code = f"data = open({str(path)!r}).read()\nprint(data)\nraise Exception(data)\n" + CORRECT_ADD
        result = timed_run(code)
        # Neither mode shows either folder: the file's mode is not what keeps nobody out.
        reason = f"FileNotFoundError: [Errno 2] No such file or directory: {str(path)!r}"
        assert_failed(result, f"runtime error: {reason}")
        assert secret not in (result.error or "")


FILL_SCRATCH = dedent("""\
    WRITTEN = [0]

    def fill():
        # 160 MiB in files of 4 MiB, each under the file-size limit: only a cap on the whole folder stops it.
        chunk = b"x" * (1 << 20)
        try:
            for n in range(40):
                with open("fill-%d" % n, "wb", buffering=0) as f:
                    for _ in range(4):
                        WRITTEN[0] += f.write(chunk)
        except OSError as exc:
            return WRITTEN[0] <= LIMIT, exc.errno
        return WRITTEN[0] <= LIMIT, None
""")


@pytest.mark.usefixtures("mode")
def test_the_scratch_folder_holds_at_most_its_size_in_all(mode: str) -> None:
    # The review's case: files under the per-file limit, as many as it likes, on the host's /tmp.
    if mode == "weak":
        pytest.skip("the weak mode has no boundary: its scratch folder is the host's")
    code = f"LIMIT = {SCRATCH_BYTES}\n" + FILL_SCRATCH
    result = run_tests(code, "assert fill() == (True, 28), WRITTEN[0]", SandboxLimits(timeout_s=30.0, memory_mb=200))
    assert (result.results, result.error) == ((True,), None)  # 28: ENOSPC, no space left on the device


@in_each_mode
def test_connecting_to_a_listening_loopback_socket_fails() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        server.settimeout(0)
        port = server.getsockname()[1]
        code = f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2).sendall(b'x')\n"
        assert_failed(timed_run(code + CORRECT_ADD), "blocked: network access")
        with pytest.raises(BlockingIOError):
            server.accept()  # nothing ever connected


@in_each_mode
def test_the_runners_environment_variables_do_not_reach_the_code(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = f"sk-{uuid.uuid4().hex}"
    monkeypatch.setenv("RUNNER_TEST_API_KEY", secret)
    code = "import os\ndef add(a, b):\n    raise LookupError(os.environ.get('RUNNER_TEST_API_KEY', 'absent'))\n"
    assert timed_run(code).error == "LookupError: absent at test 1"
