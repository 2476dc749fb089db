"""Run model-generated Python against unit tests without letting it escape or hang the runner.

A code-generation scorer needs two facts about an answer: does the code compile, and how many of the
reference tests pass. Getting the second means executing untrusted code, so `run_tests` runs it in a
child interpreter (`sandbox_child.py`, executed as a script) with layered containment:

- the boundary: the operating system's (`sandbox_boundary`). The child runs in new PID, network,
  IPC, UTS and mount namespaces, sees only a read-only view of what Python needs plus its scratch
  directory, runs as nobody when the runner is root, and gets an empty environment. Without one (no
  bubblewrap, not root) `run_tests` refuses to run unless RUNNER_SANDBOX=weak asks for the hook alone;
- resource limits: a wall-clock deadline enforced by the parent (SIGKILL to the child's whole process
  group, which takes the namespaces with it), plus RLIMIT_CPU, RLIMIT_AS, RLIMIT_FSIZE, RLIMIT_NOFILE
  and RLIMIT_CORE set by the child on itself before any generated code runs;
- an audit hook (PEP 578), the inner layer, installed before the generated code runs: it refuses
  process creation, network access, native code (ctypes), writes outside the scratch directory,
  frame and tracing introspection of the sandbox's own frames, and the few interpreter features that
  would sidestep it. It holds no state the code could rewrite (see `sandbox_child._install_guard`),
  but it shares an interpreter with the code, so it is a second line, not the boundary;
- isolation from the runner: `-I -S` (no environment variables, user site or site-packages), stdin at
  EOF, output captured and truncated, the result reported on a dedicated pipe with a per-run nonce so
  printing a fake result does nothing, and every error text capped before it is returned (and stored).

Scores are not protected against code that sets out to cheat: it can return objects that compare
equal to anything, or walk its frames to the reporting code. The boundary protects the host and the
runner's secrets, not the score. Linux only (it relies on /proc, prctl and namespaces).
"""

from __future__ import annotations

import ast
import contextlib
import json
import math
import os
import secrets
import selectors
import shutil
import signal
import subprocess
import tempfile
import textwrap
import time
from dataclasses import asdict, dataclass
from typing import Any

from runner.scoring.sandbox_boundary import boundary, launcher_env
from runner.scoring.sandbox_child import _one_line

__all__ = ["SandboxLimits", "SandboxResult", "compile_error", "count_tests", "extract_code", "run_tests"]


@dataclass(frozen=True)
class SandboxLimits:
    """How much one run may use before it is stopped and scored as failed."""

    timeout_s: float = 5.0
    memory_mb: int = 256
    max_output_bytes: int = 65536

    def __post_init__(self) -> None:
        # `not x > 0` also rejects NaN, which would otherwise make the deadline never arrive.
        if not (self.timeout_s > 0 and math.isfinite(self.timeout_s)):
            raise ValueError(f"timeout_s must be a positive number of seconds, got {self.timeout_s!r}")
        if self.memory_mb <= 0:
            raise ValueError(f"memory_mb must be positive, got {self.memory_mb!r}")
        if self.max_output_bytes < 0:
            raise ValueError(f"max_output_bytes must not be negative, got {self.max_output_bytes!r}")


@dataclass(frozen=True)
class SandboxResult:
    """What a scorer needs: did it compile, which tests passed, and a one-line reason if not all."""

    compiled: bool
    passed: int
    total: int
    error: str | None
    results: tuple[bool, ...] = ()  # per test, in the dataset's order; empty only where total is 0

    def __post_init__(self) -> None:
        if not self.results and self.total:
            object.__setattr__(self, "results", (False,) * self.total)  # nothing ran: every test failed
        if len(self.results) != self.total or sum(self.results) != self.passed:
            raise ValueError(f"results {self.results} do not add up to {self.passed} of {self.total} passed")

    @property
    def pass_rate(self) -> float:
        return self.passed / self.total if self.total else 0.0


# --- extracting code from an answer ---------------------------------------------------------------

_PYTHON_FENCE_TAGS = frozenset({"", "python", "python3", "py", "py3"})


def extract_code(text: str) -> str:
    """The first ```python / ```py / bare ``` fenced block of a model answer, else the whole text.

    Blocks tagged with another language (```bash, ```text) are skipped. A block that is still open at
    the end of the text is taken as it is, because small models often hit the token limit before
    writing the closing fence and the code itself is usually complete.
    """
    inside = False
    tag = ""
    body: list[str] = []
    for line in text.splitlines(keepends=True):
        stripped = line.strip()
        if not inside:
            if stripped.startswith("```"):
                info = stripped[3:].strip()
                if "```" in info:
                    continue  # an inline span such as ```x = 1``` is not a block
                tag = info.split(maxsplit=1)[0].lower() if info else ""
                inside, body = True, []
        elif len(stripped) >= 3 and not stripped.strip("`"):
            if tag in _PYTHON_FENCE_TAGS:
                return _dedent(body)
            inside = False
        else:
            body.append(line)
    if inside and tag in _PYTHON_FENCE_TAGS:
        return _dedent(body)
    return text


def _dedent(lines: list[str]) -> str:
    # A fence nested in a markdown list indents every line; Python would reject that as an unexpected
    # indent although the code is fine.
    return textwrap.dedent("".join(lines))


# --- running the tests (parent side) --------------------------------------------------------------

_MAX_REPORT_BYTES = 1 << 20
# What of the child's own words reaches a score (and the store): one line, this long at most.
_MAX_ERROR_CHARS = 200
_MAX_KIND_CHARS = 60
_READ_CHUNK = 1 << 16


@dataclass(frozen=True)
class _ChildRun:
    returncode: int
    timed_out: bool
    report: dict[str, Any] | None
    stdout: bytes
    stderr: bytes


def compile_error(code: str) -> str | None:
    """None if `code` compiles as Python (nothing of it runs), else the syntax error, one line."""
    try:
        # dont_inherit: this module's `from __future__ import annotations` must not leak into the check.
        compile(code, "<generated>", "exec", dont_inherit=True)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        return _syntax_error(exc)
    return None


def count_tests(tests: str) -> int:
    """How many tests `tests` holds: its top-level statements. ValueError if it is not valid Python."""
    return _count_tests(tests)


def run_tests(code: str, tests: str, limits: SandboxLimits = SandboxLimits()) -> SandboxResult:
    """Run `code`, then each top-level statement of `tests` as one test, in a contained child process.

    Blocks for at most about `limits.timeout_s` seconds; call it through `asyncio.to_thread` from async
    code. Raises ValueError if `tests` itself is not valid Python, since that is a dataset bug, not
    something to score the model on.
    """
    total = _count_tests(tests)
    error = compile_error(code)
    if error is not None:
        return SandboxResult(compiled=False, passed=0, total=total, error=error)
    return _score(_run_child(code, tests, limits), total, limits)


def _count_tests(tests: str) -> int:
    try:
        module = ast.parse(tests, "<tests>")
    except SyntaxError as exc:
        raise ValueError(f"tests are not valid Python: {exc.msg} (line {exc.lineno})") from exc
    return len(module.body)


def _syntax_error(exc: BaseException) -> str:
    if isinstance(exc, SyntaxError):
        where = f" (line {exc.lineno})" if exc.lineno else ""
        return _one_line(f"syntax error: {exc.msg}{where}")
    if isinstance(exc, RecursionError | MemoryError):
        return "syntax error: code is too deeply nested to compile"
    return _one_line(f"syntax error: {exc}")  # ValueError, e.g. a NUL byte in the source


def _run_child(code: str, tests: str, limits: SandboxLimits) -> _ChildRun:
    where = boundary()  # raises SandboxUnavailable (a RuntimeError) when there is none and no opt-in
    nonce = secrets.token_hex(16)
    workdir = tempfile.mkdtemp(prefix="runner-sandbox-")
    report_r, report_w = os.pipe()
    payload = {
        "code": code,
        "tests": tests,
        "workdir": where.workdir(workdir),
        "nonce": nonce,
        "report_fd": report_w,
        "parent_pid": where.expected_parent(os.getpid()),
        "limit_tasks": os.geteuid() != 0,
        "limits": asdict(limits),
    }
    proc: subprocess.Popen[bytes] | None = None
    captured: dict[int, bytearray] = {}
    out_fd = err_fd = -1
    try:
        where.prepare_workdir(workdir)
        # Started by file path: under -I -S the child cannot import the runner package, only the stdlib.
        argv = where.command(workdir, ["-I", "-S", "-B", where.child_path], report_w)
        # The payload travels through an unnamed temporary file on stdin, which the child reads and then
        # replaces with /dev/null: the tests and the nonce never appear in argv, the environment or the
        # scratch directory, where the generated code could read them.
        with tempfile.TemporaryFile() as payload_file:
            payload_file.write(json.dumps(payload).encode())
            payload_file.seek(0)
            deadline = time.monotonic() + limits.timeout_s
            proc = subprocess.Popen(
                argv,
                stdin=payload_file,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=workdir,
                env=launcher_env() if where.confined else _weak_env(workdir),
                pass_fds=(report_w,),
                # Its own session and process group, so one killpg reaches everything it started.
                start_new_session=True,
            )
        os.close(report_w)
        report_w = -1  # the child now holds the only write end, so EOF means it is gone
        assert proc.stdout is not None and proc.stderr is not None
        out_fd, err_fd = proc.stdout.fileno(), proc.stderr.fileno()
        caps = {out_fd: limits.max_output_bytes, err_fd: limits.max_output_bytes, report_r: _MAX_REPORT_BYTES}
        captured, timed_out = _drain(caps, deadline)
        if not timed_out:
            timed_out = not _wait_for_exit(proc.pid, deadline)
    finally:
        if proc is not None:
            _kill_group(proc.pid)
            proc.wait()
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()
        os.close(report_r)
        if report_w >= 0:
            os.close(report_w)
        shutil.rmtree(workdir, ignore_errors=True)
    return _ChildRun(
        returncode=where.returncode(proc.returncode),
        timed_out=timed_out,
        report=_parse_report(bytes(captured[report_r]), nonce),
        stdout=bytes(captured[out_fd]),
        stderr=bytes(captured[err_fd]),
    )


def _weak_env(workdir: str) -> dict[str, str]:
    # No boundary: the child sees the host, so its HOME and TMPDIR are the scratch directory's real path.
    return {"PATH": "/usr/bin:/bin", "HOME": workdir, "TMPDIR": workdir, "LANG": "C.UTF-8"}


def _drain(caps: dict[int, int], deadline: float) -> tuple[dict[int, bytearray], bool]:
    """Read every pipe to EOF, keeping at most caps[fd] bytes of each; True if the deadline hit first.

    Reading continues past the cap (the excess is discarded) so a child flooding its output is not
    blocked on a full pipe, which would turn an output flood into a timeout.
    """
    captured = {fd: bytearray() for fd in caps}
    with selectors.DefaultSelector() as selector:
        for fd in caps:
            selector.register(fd, selectors.EVENT_READ)
        while selector.get_map():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return captured, True
            for key, _ in selector.select(remaining):
                chunk = os.read(key.fd, _READ_CHUNK)
                if not chunk:
                    selector.unregister(key.fd)
                    continue
                room = caps[key.fd] - len(captured[key.fd])
                if room > 0:
                    captured[key.fd] += chunk[:room]
    return captured, False


def _wait_for_exit(pid: int, deadline: float) -> bool:
    """Poll until the child exits or the deadline passes, WITHOUT reaping it.

    While the child is an unreaped zombie its pid cannot be reused, so the killpg that follows can only
    reach processes it started, never an unrelated process that inherited the number.
    """
    while True:
        try:
            if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                return True
        except ChildProcessError:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.005)


def _kill_group(pgid: int) -> None:
    # Always, not only on timeout: anything the child managed to start despite the guards dies with it.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _parse_report(raw: bytes, nonce: str) -> dict[str, Any] | None:
    """The child's report: {"blocked": kind} if the hook refused anything, else its one result line.

    The hook writes a line for each refusal as it happens, so a refusal the code swallowed still fails
    the run. Exactly one result line must carry the nonce: the child writes one, so a second means
    tampering."""
    reports = []
    for line in raw.splitlines():
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if not (isinstance(message, dict) and message.get("nonce") == nonce):
            continue
        if "blocked" in message:
            return {"blocked": message["blocked"]}
        reports.append(message)
    return reports[0] if len(reports) == 1 else None


def _score(run: _ChildRun, total: int, limits: SandboxLimits) -> SandboxResult:
    if run.timed_out:
        return SandboxResult(True, 0, total, f"timed out after {float(limits.timeout_s)} s")
    if run.report is None:
        return SandboxResult(True, 0, total, _exit_reason(run.returncode, run.stderr))
    if "blocked" in run.report:
        kind = run.report["blocked"]
        return SandboxResult(True, 0, total, "blocked: " + (_one_line(kind, _MAX_KIND_CHARS)
                                                           if isinstance(kind, str) else "unknown"))
    passed, error, results = run.report.get("passed"), run.report.get("error"), run.report.get("results")
    if (isinstance(passed, int) and not isinstance(passed, bool) and 0 <= passed <= total
            and isinstance(results, list) and len(results) == total and all(type(r) is bool for r in results)
            and sum(results) == passed and (error is None or isinstance(error, str))):
        # Capped here, not only in the child: the child runs the code, so its words are the code's.
        return SandboxResult(True, passed, total, None if error is None else _one_line(error, _MAX_ERROR_CHARS),
                             tuple(results))
    return SandboxResult(True, 0, total, "malformed result report")


def _exit_reason(returncode: int, stderr: bytes) -> str:
    if returncode < 0:
        number = -returncode
        if number == signal.SIGXCPU:
            return "CPU time limit exceeded"
        if number == signal.SIGKILL:
            # Not ours (ours lands only after the exit or the deadline): the CPU hard limit or the OOM killer.
            return "killed by SIGKILL (CPU or memory limit)"
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = f"signal {number}"
        return f"crashed ({name})"
    lines = stderr.decode(errors="replace").strip().splitlines()
    detail = f" ({_one_line(lines[-1], 120)})" if lines else ""
    return f"exited with status {returncode} before reporting results{detail}"
