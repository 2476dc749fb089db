"""The child side of the code sandbox: runs inside the contained interpreter, never in the runner.

`runner.scoring.sandbox.run_tests` starts this file as a script, `python -I -S -B sandbox_child.py`,
so it must stay self-contained: with -I -S neither the `runner` package nor site-packages is
importable, only the standard library. It reads its payload from stdin, confines itself (resource
limits, parent-death signal, best-effort network namespace), installs the audit hook and then runs
the generated code and each test, reporting the outcome on the dedicated pipe. See the sandbox
module for the whole design and what it does not protect against.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import json
import math
import os
import signal
import stat
import sys
import traceback
from typing import Any, NoReturn

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


def _confine_process(parent_pid: int, timeout_s: float, memory_mb: int) -> None:
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
    _apply_rlimits(timeout_s, memory_mb)


def _apply_rlimits(timeout_s: float, memory_mb: int) -> None:
    import resource

    def lower(which: int, soft: int, hard: int) -> None:
        # Only ever lower: raising a hard limit fails for non-root, and an outer limit should win.
        _, current = resource.getrlimit(which)
        if current != resource.RLIM_INFINITY:
            soft, hard = min(soft, current), min(hard, current)
        resource.setrlimit(which, (soft, hard))

    memory = memory_mb << 20
    lower(resource.RLIMIT_AS, memory, memory)
    # A backstop for when the parent's deadline cannot act (the runner died mid-run): SIGXCPU at the soft
    # limit, SIGKILL at the hard one. CPU time can exceed wall time with threads, so it is reported
    # separately rather than as a timeout.
    cpu = math.ceil(timeout_s) + 1
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


def _one_line(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


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
        # The limits were validated by SandboxLimits in the parent; this file cannot import it.
        limits = payload["limits"]
        _confine_process(int(payload["parent_pid"]), limits["timeout_s"], limits["memory_mb"])
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
