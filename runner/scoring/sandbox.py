"""Run model-generated Python against unit tests without letting it escape or hang the runner.

A code-generation scorer needs two facts about an answer: does the code compile, and how many of the
reference tests pass. Getting the second means executing untrusted code, so `run_tests` runs it in a
child interpreter (this very file, executed as a script) with layered containment:

- resource limits: a wall-clock deadline enforced by the parent (SIGKILL to the child's whole process
  group), plus RLIMIT_CPU, RLIMIT_AS, RLIMIT_FSIZE, RLIMIT_NOFILE and RLIMIT_CORE set by the child on
  itself before any generated code runs;
- an audit hook (PEP 578) installed before the generated code runs that refuses process creation,
  network access, native code (ctypes), writes outside the scratch directory and the few interpreter
  features that would sidestep the hook. Python offers no way to remove an audit hook, so it is the
  primary guard; the OS-level measures (network namespace, RLIMIT_NPROC) are best effort behind it;
- isolation from the runner: `-I -S` (no environment variables, user site or site-packages), an empty
  temporary directory as cwd, a minimal environment, stdin at EOF, output captured and truncated, and
  the result reported on a dedicated pipe with a per-run nonce so printing a fake result does nothing.

This is NOT a security boundary against a determined adversary: code that sets out to defeat it can
rewrite the hook's state through frame introspection, race a symlink between the check and the open,
or read any file the runner can read. It exists to stop the accidental or naive escapes of small
models (a stray `os.system`, an endless loop, a fork, a socket) from hurting the host or the score.
Linux only (it relies on /proc, prctl and unshare).
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import json
import math
import os
import secrets
import selectors
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
import traceback
from dataclasses import asdict, dataclass
from typing import Any, NoReturn

__all__ = ["SandboxLimits", "SandboxResult", "extract_code", "run_tests"]


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
    """What a scorer needs: did it compile, how many tests passed, and a one-line reason if not all."""

    compiled: bool
    passed: int
    total: int
    error: str | None

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

_CHILD_SCRIPT = os.path.abspath(__file__)
_MAX_REPORT_BYTES = 1 << 20
_READ_CHUNK = 1 << 16


@dataclass(frozen=True)
class _ChildRun:
    returncode: int
    timed_out: bool
    report: dict[str, Any] | None
    stdout: bytes
    stderr: bytes


def run_tests(code: str, tests: str, limits: SandboxLimits = SandboxLimits()) -> SandboxResult:
    """Run `code`, then each top-level statement of `tests` as one test, in a contained child process.

    Blocks for at most about `limits.timeout_s` seconds; call it through `asyncio.to_thread` from async
    code. Raises ValueError if `tests` itself is not valid Python, since that is a dataset bug, not
    something to score the model on.
    """
    total = _count_tests(tests)
    try:
        # dont_inherit: this module's `from __future__ import annotations` must not leak into the check.
        compile(code, "<generated>", "exec", dont_inherit=True)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        return SandboxResult(compiled=False, passed=0, total=total, error=_syntax_error(exc))
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
    if not sys.executable:
        raise RuntimeError("cannot run the code sandbox: sys.executable is unknown")
    nonce = secrets.token_hex(16)
    workdir = tempfile.mkdtemp(prefix="runner-sandbox-")
    report_r, report_w = os.pipe()
    payload = {
        "code": code,
        "tests": tests,
        "workdir": workdir,
        "nonce": nonce,
        "report_fd": report_w,
        "parent_pid": os.getpid(),
        "limits": asdict(limits),
    }
    env = {"PATH": "/usr/bin:/bin", "HOME": workdir, "TMPDIR": workdir, "LANG": "C.UTF-8",
           "LC_ALL": "C.UTF-8"}
    proc: subprocess.Popen[bytes] | None = None
    captured: dict[int, bytearray] = {}
    out_fd = err_fd = -1
    try:
        # The payload travels through an unnamed temporary file on stdin, which the child reads and then
        # replaces with /dev/null: the tests and the nonce never appear in argv, the environment or the
        # scratch directory, where the generated code could read them.
        with tempfile.TemporaryFile() as payload_file:
            payload_file.write(json.dumps(payload).encode())
            payload_file.seek(0)
            deadline = time.monotonic() + limits.timeout_s
            proc = subprocess.Popen(
                [sys.executable, "-I", "-S", "-B", _CHILD_SCRIPT],
                stdin=payload_file,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=workdir,
                env=env,
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
        returncode=proc.returncode,
        timed_out=timed_out,
        report=_parse_report(bytes(captured[report_r]), nonce),
        stdout=bytes(captured[out_fd]),
        stderr=bytes(captured[err_fd]),
    )


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
    # Exactly one line must carry the nonce: the child writes one, so a second means tampering.
    reports = []
    for line in raw.splitlines():
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if isinstance(message, dict) and message.get("nonce") == nonce:
            reports.append(message)
    return reports[0] if len(reports) == 1 else None


def _score(run: _ChildRun, total: int, limits: SandboxLimits) -> SandboxResult:
    if run.timed_out:
        return SandboxResult(True, 0, total, f"timed out after {float(limits.timeout_s)} s")
    if run.report is None:
        return SandboxResult(True, 0, total, _exit_reason(run.returncode, run.stderr))
    passed, error = run.report.get("passed"), run.report.get("error")
    if (isinstance(passed, int) and not isinstance(passed, bool) and 0 <= passed <= total
            and (error is None or isinstance(error, str))):
        return SandboxResult(True, passed, total, error)
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


def _one_line(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --- the child ------------------------------------------------------------------------------------
# Everything below runs in the child interpreter, started as `python -I -S -B sandbox.py`.

_PROCESS = "process creation"
_NETWORK = "network access"
_NATIVE = "native code (ctypes)"
_FILE_WRITE = "file write outside the sandbox"

# Events refused whatever their arguments. Process creation is the heart of it: a child process would
# escape the audit hook (exec replaces the interpreter) and the process group (setsid). The gc walkers
# and subinterpreters are refused because they are the easy ways to reach or sidestep the hook itself;
# generated solutions have no use for them. "os.spawn" is the Windows spelling; on POSIX the spawn*
# helpers fork and are caught as "os.fork".
_ALWAYS_DENIED = {
    "os.fork": _PROCESS,
    "os.forkpty": _PROCESS,
    "os.posix_spawn": _PROCESS,
    "os.exec": _PROCESS,
    "os.spawn": _PROCESS,
    "os.system": _PROCESS,
    "subprocess.Popen": _PROCESS,
    "pty.spawn": _PROCESS,
    "resource.setrlimit": "changing resource limits",
    "cpython.PyInterpreterState_New": "subinterpreter creation",
    "gc.get_objects": "interpreter introspection",
    "gc.get_referrers": "interpreter introspection",
    "gc.get_referents": "interpreter introspection",
    "sqlite3.enable_load_extension": "native code (sqlite extension)",
    "sqlite3.load_extension": "native code (sqlite extension)",
}
# Whole event families: every ctypes operation can call or poke arbitrary native code (fork, write
# memory, remove the hook), and syslog talks to a host daemon over a socket the socket events miss.
_DENIED_FAMILIES = {"ctypes": _NATIVE, "syslog": "system log access"}
# Extension modules whose import is the only observable step before an unaudited escape:
# _posixsubprocess.fork_exec starts processes without any audit event (it is re-imported only after
# someone deleted the neutered copy from sys.modules), and the _test*/_xx* modules can run code in a
# subinterpreter that does not have this hook.
_DENIED_MODULES = {"_posixsubprocess": _PROCESS, "_ctypes": _NATIVE}
_DENIED_MODULE_PREFIXES = ("_test", "_xx", "_interp")
# Filesystem mutations as (argument index of a path, index of its dir_fd or None, follow symlinks).
# Removing or renaming a symlink affects the link, not its target, hence follow=False for those. Both
# ends of a hard link must be inside: a link to an outside file would make that file writable.
_PathSpec = tuple[tuple[int, int | None, bool], ...]
_PATH_EVENTS: dict[str, _PathSpec] = {
    "os.remove": ((0, 1, False),),
    "os.rmdir": ((0, 1, False),),
    "os.mkdir": ((0, 2, False),),
    "os.rename": ((0, 2, False), (1, 3, False)),
    "os.link": ((0, 2, True), (1, 3, False)),
    "os.symlink": ((1, 2, False),),
    "os.chmod": ((0, 2, True),),
    "os.chown": ((0, 3, True),),
    "os.utime": ((0, 3, True),),
    "os.truncate": ((0, None, True),),
    "os.setxattr": ((0, None, True),),
    "os.removexattr": ((0, None, True),),
    "shutil.rmtree": ((0, 1, False),),
}
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
# Writing to these reaches our own captured pipes or nothing at all.
_WRITABLE_PATHS = frozenset({os.devnull, "/dev/stdout", "/dev/stderr"})

_PR_SET_PDEATHSIG = 1
_CLONE_NEWNET = 0x40000000
_MAX_FILE_BYTES = 16 << 20
_MAX_OPEN_FILES = 256
_NPROC_HEADROOM = 32


class _SandboxViolation(BaseException):
    # A BaseException so the common `except Exception:` in generated code does not swallow it; a bare
    # `except:` still can, which is why the guard also records the violation and the run fails anyway.
    pass


class _Guard:
    """The audit hook and what it has refused so far."""

    def __init__(self, workdir: str) -> None:
        import socket  # now, because an import from inside the hook would re-enter it

        self.violation: str | None = None
        self._prefix = os.path.realpath(workdir) + os.sep
        self._pid = os.getpid()
        self._af_unix = int(socket.AF_UNIX)

    def hook(self, event: str, args: tuple[Any, ...]) -> None:
        kind = self._verdict(event, args)
        if kind is not None:
            self.deny(kind)

    def deny(self, kind: str) -> NoReturn:
        if self.violation is None:
            self.violation = kind
        raise _SandboxViolation(f"blocked by the sandbox: {kind}")

    def _verdict(self, event: str, args: tuple[Any, ...]) -> str | None:
        # Called for every audited operation (each import, each file opened), so cheap checks first.
        kind = _ALWAYS_DENIED.get(event)
        if kind is not None:
            return kind
        family = event.partition(".")[0]
        if family == "socket":
            return self._socket_verdict(event, args)
        if family in _DENIED_FAMILIES:
            return _DENIED_FAMILIES[family]
        if event == "open":
            return self._open_verdict(args)
        spec = _PATH_EVENTS.get(event)
        if spec is not None:
            for index, dir_fd_index, follow in spec:
                dir_fd = args[dir_fd_index] if dir_fd_index is not None else None
                kind = self._target_verdict(args[index], dir_fd, follow=follow)
                if kind is not None:
                    return kind
            return None
        if event == "import":
            return _import_verdict(args[0])
        if event in ("os.kill", "os.killpg"):
            # Signalling itself or its own group is harmless; anything else could take down the runner
            # (or, as root, every process in the container with kill(-1)).
            return None if args[0] in (0, self._pid, -self._pid) else "signal to another process"
        if event == "resource.prlimit":
            return None if args[2] is None else "changing resource limits"  # reading limits is fine
        if event == "sqlite3.connect":
            return self._sqlite_verdict(args[0])
        return None

    def _socket_verdict(self, event: str, args: tuple[Any, ...]) -> str | None:
        # AF_UNIX sockets may be created because asyncio builds its self-pipe from socketpair(); they
        # cannot reach anything without connect/bind/sendto, which stay refused for every family.
        if event == "socket.gethostname":
            return None
        if event == "socket.__new__" and args[1] == self._af_unix:
            return None
        return _NETWORK

    def _open_verdict(self, args: tuple[Any, ...]) -> str | None:
        path, mode, flags = args[0], args[1], args[2]
        writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
            isinstance(flags, int) and flags & _WRITE_FLAGS)
        if not writes or isinstance(path, int):
            return None  # reading is allowed anywhere; an int is a descriptor already open
        return self._target_verdict(path, None, follow=True, refuse_devices=True)

    def _sqlite_verdict(self, database: Any) -> str | None:
        if isinstance(database, str | bytes):
            name = os.fsdecode(database)
            if name.startswith("file:"):
                name = name[len("file:"):].partition("?")[0]
            if name in ("", ":memory:"):
                return None
        return self._target_verdict(database, None, follow=True)

    def _target_verdict(self, path: Any, dir_fd: Any, *, follow: bool,
                        refuse_devices: bool = False) -> str | None:
        try:
            if isinstance(path, str | bytes) and os.fsdecode(path) in _WRITABLE_PATHS:
                return None
            resolved = _resolve(path, dir_fd, follow=follow)
            if resolved is None or resolved == os.devnull:
                return None
            if not resolved.startswith(self._prefix):
                return _FILE_WRITE
            # mknod is not audited, so a device node created inside the scratch directory would open
            # the raw disk for writing.
            if refuse_devices and os.path.exists(resolved):
                mode = os.stat(resolved).st_mode
                if stat.S_ISBLK(mode) or stat.S_ISCHR(mode):
                    return "device access"
        except (OSError, ValueError, TypeError):
            return _FILE_WRITE  # a path we cannot resolve is not one we can vouch for
        return None


def _resolve(path: Any, dir_fd: Any, *, follow: bool) -> str | None:
    """The absolute real path an operation will touch, or None if it is no filesystem path (a pipe)."""
    if isinstance(path, int):
        target = os.readlink(f"/proc/self/fd/{path}")
        return target if target.startswith("/") else None
    text = os.fsdecode(path)
    if not os.path.isabs(text):
        base = os.getcwd() if dir_fd in (None, -1) else os.readlink(f"/proc/self/fd/{int(dir_fd)}")
        text = os.path.join(base, text)
    if follow:
        return os.path.realpath(text)
    head, tail = os.path.split(text.rstrip("/"))
    if tail in ("", ".", ".."):
        return os.path.realpath(text)
    return os.path.join(os.path.realpath(head), tail)


def _import_verdict(name: Any) -> str | None:
    if not isinstance(name, str):
        return None
    if name in _DENIED_MODULES:
        return _DENIED_MODULES[name]
    if name.startswith(_DENIED_MODULE_PREFIXES):
        return "unsafe internal module"
    return None


def _confine_process(parent_pid: int, limits: SandboxLimits) -> None:
    """OS-level containment the child applies to itself before any generated code runs.

    Done here rather than in a preexec_fn: preexec_fn is unsafe when the runner has threads (an asyncio
    runner usually does), and the child is still only our own code at this point, so nothing is lost.
    """
    try:
        import ctypes

        libc: Any = ctypes.CDLL(None, use_errno=True)
    except (ImportError, OSError):
        libc = None
    if libc is not None:
        # Dies with the runner instead of looping on as an orphan if the runner is killed.
        libc.prctl(_PR_SET_PDEATHSIG, ctypes.c_ulong(signal.SIGKILL), ctypes.c_ulong(0), ctypes.c_ulong(0),
                   ctypes.c_ulong(0))
        # A fresh network namespace has only a downed loopback. It needs CAP_SYS_ADMIN, so failure is
        # ignored and the audit hook remains the guarantee.
        libc.unshare(_CLONE_NEWNET)
    if os.getppid() != parent_pid:
        os._exit(1)  # the runner died before the death signal was armed
    _apply_rlimits(limits)


def _apply_rlimits(limits: SandboxLimits) -> None:
    import resource

    def lower(which: int, soft: int, hard: int) -> None:
        # Only ever lower: raising a hard limit fails for non-root, and an outer limit should win.
        _, current = resource.getrlimit(which)
        if current != resource.RLIM_INFINITY:
            soft, hard = min(soft, current), min(hard, current)
        resource.setrlimit(which, (soft, hard))

    memory = limits.memory_mb << 20
    lower(resource.RLIMIT_AS, memory, memory)
    # A backstop for when the parent's deadline cannot act (the runner died mid-run): SIGXCPU at the soft
    # limit, SIGKILL at the hard one. CPU time can exceed wall time with threads, so it is reported
    # separately rather than as a timeout.
    cpu = math.ceil(limits.timeout_s) + 1
    lower(resource.RLIMIT_CPU, cpu, cpu + 1)
    lower(resource.RLIMIT_FSIZE, _MAX_FILE_BYTES, _MAX_FILE_BYTES)  # files in the scratch dir
    lower(resource.RLIMIT_NOFILE, _MAX_OPEN_FILES, _MAX_OPEN_FILES)  # bounds pipes and memfds
    lower(resource.RLIMIT_CORE, 0, 0)  # a crash must not write a core file the size of the heap
    # RLIMIT_NPROC counts all tasks (threads included) of the real user id, and the kernel ignores it
    # for root (CAP_SYS_RESOURCE), so it only helps when not root, and only with headroom for threads.
    if os.geteuid() != 0:
        nproc = _tasks_of_user(os.getuid()) + _NPROC_HEADROOM
        lower(resource.RLIMIT_NPROC, nproc, nproc)


def _tasks_of_user(uid: int) -> int:
    count = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    count += len(os.listdir(f"/proc/{entry.name}/task"))
            except OSError:
                continue  # exited while we looked
    return count


def _neuter_fork_exec(guard: _Guard) -> None:
    # _posixsubprocess.fork_exec (used by multiprocessing's spawn and forkserver) creates processes
    # without raising any audit event, so the hook cannot see it; replace it while we still can.
    import _posixsubprocess

    def fork_exec(*args: object, **kwargs: object) -> NoReturn:
        guard.deny(_PROCESS)

    _posixsubprocess.fork_exec = fork_exec


def _attempt(compiled: Any, namespace: dict[str, Any]) -> BaseException | None:
    try:
        exec(compiled, namespace)
    except BaseException as exc:  # generated code may raise anything, SystemExit included
        return exc
    return None


def _describe(exc: BaseException) -> str:
    try:
        text = str(exc)
    except BaseException:  # a generated exception class may have a broken __str__
        text = ""
    name = type(exc).__name__
    return _one_line(f"{name}: {text}" if text else name)


def _run_all(code: Any, tests: list[Any], guard: _Guard) -> tuple[int, str | None]:
    """(passed, error) for the generated code and then each test; passed is 0 when the run must fail."""
    # Not "__main__", so an `if __name__ == "__main__":` block (which often reads stdin) does not run.
    namespace: dict[str, Any] = {"__name__": "solution", "__builtins__": builtins}
    passed, failure = 0, None
    exc = _attempt(code, namespace)
    if exc is None and guard.violation is None:
        for number, test in enumerate(tests, start=1):
            exc = _attempt(test, namespace)
            if exc is None:
                passed += 1
            elif _is_fatal(exc, guard):
                break
            elif failure is None:
                failure = (f"assertion failed at test {number}" if isinstance(exc, AssertionError)
                           else f"{_describe(exc)} at test {number}")
    elif exc is not None and not _is_fatal(exc, guard):
        failure = f"runtime error: {_describe(exc)}"  # the tests cannot run without the code's names
    # Checked last rather than as each exception arrives: the generated code may have caught the
    # refusal (a bare except) and carried on, and a violation anywhere fails the whole run.
    if guard.violation is not None:
        return 0, f"blocked: {guard.violation}"
    if isinstance(exc, MemoryError):
        namespace.clear()  # release what the code allocated so the report itself can be written
        return 0, "memory limit exceeded"
    return passed, failure


def _is_fatal(exc: BaseException, guard: _Guard) -> bool:
    # An uncaught MemoryError means unbounded allocation, and its outcome depends on the limit chosen,
    # so it fails the run instead of a single test.
    return isinstance(exc, MemoryError | _SandboxViolation) or guard.violation is not None


def _write_report(fd: int, nonce: str, passed: int, error: str | None) -> None:
    # The leading newline ends any partial line the generated code wrote to this descriptor.
    line = b"\n" + json.dumps({"nonce": nonce, "passed": passed, "error": error}).encode() + b"\n"
    view = memoryview(line)
    while view:
        view = view[os.write(fd, view):]


def _child_main() -> NoReturn:
    status = 1
    try:
        payload = json.loads(sys.stdin.buffer.read())
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)  # input() now sees EOF at once instead of blocking until the timeout
        os.close(devnull)
        _confine_process(int(payload["parent_pid"]), SandboxLimits(**payload["limits"]))
        # Compiled before the hook goes in, so the hook never has to tell our work from the code's.
        code = compile(str(payload["code"]), "<generated>", "exec", dont_inherit=True)
        tests = [compile(ast.Module(body=[statement], type_ignores=[]), "<tests>", "exec", dont_inherit=True)
                 for statement in ast.parse(str(payload["tests"]), "<tests>").body]
        guard = _Guard(str(payload["workdir"]))
        _neuter_fork_exec(guard)
        sys.addaudithook(guard.hook)
        passed, error = _run_all(code, tests, guard)
        _write_report(int(payload["report_fd"]), str(payload["nonce"]), passed, error)
        status = 0
    except BaseException:
        traceback.print_exc()
    finally:
        for stream in (sys.__stdout__, sys.__stderr__):
            with contextlib.suppress(BaseException):
                if stream is not None:
                    stream.flush()
        # os._exit skips atexit handlers and the join of non-daemon threads the code may have left
        # running, either of which could hang the child after the report is already written.
        os._exit(status)


if __name__ == "__main__":
    _child_main()
