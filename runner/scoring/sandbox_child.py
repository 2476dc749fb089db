"""The child side of the code sandbox: runs inside the contained interpreter, never in the runner.

`runner.scoring.sandbox.run_tests` starts this file as a script, `python -I -S -B sandbox_child.py`,
so it must stay self-contained: with -I -S neither the `runner` package nor site-packages is
importable, only the standard library. It normally runs inside the operating-system boundary that
`sandbox_boundary` builds (namespaces, a minimal read-only view, nobody), which is what protects the
host. It reads its payload from stdin, confines itself (resource limits, parent-death signal, and a
network namespace where it may make one), installs the audit hook, the inner layer, and then runs the
generated code and each test, reporting the outcome on the dedicated pipe. See the sandbox module for
the whole design and what it does not protect against.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import json
import math
import os
import signal
import sys
import traceback
from types import MappingProxyType
from typing import Any, NoReturn

_PROCESS = "process creation"
_NETWORK = "network access"
_NATIVE = "native code (ctypes)"
_FILE_WRITE = "file write outside the sandbox"
_INTROSPECTION = "interpreter introspection"
_TAMPERING = "changing the sandbox's own code"

# The tables are read-only (MappingProxyType, frozenset, tuple) and the hook holds its own references
# to them, bound when it is installed: rebinding or emptying these names from generated code (which
# can reach this module's globals as `__main__`) changes nothing the hook does.
#
# Events refused whatever their arguments. Process creation is the heart of it: a child process would
# escape the audit hook (exec replaces the interpreter) and the process group (setsid). The gc walkers,
# frame-table readers, tracers and profilers (which are handed every frame) and subinterpreters are
# refused because they are the easy ways to reach or sidestep the hook itself; generated solutions have
# no use for them. "os.spawn" is the Windows spelling; on POSIX the spawn* helpers fork and are caught
# as "os.fork".
_ALWAYS_DENIED = MappingProxyType({
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
    "gc.get_objects": _INTROSPECTION,
    "gc.get_referrers": _INTROSPECTION,
    "gc.get_referents": _INTROSPECTION,
    "sys._current_frames": _INTROSPECTION,
    "sys._current_exceptions": _INTROSPECTION,
    "sys.settrace": _INTROSPECTION,
    "sys.setprofile": _INTROSPECTION,
    "sys.addaudithook": _INTROSPECTION,
    "sqlite3.enable_load_extension": "native code (sqlite extension)",
    "sqlite3.load_extension": "native code (sqlite extension)",
})
# Whole event families: every ctypes operation can call or poke arbitrary native code (fork, write
# memory, remove the hook), and syslog talks to a host daemon over a socket the socket events miss.
_DENIED_FAMILIES = MappingProxyType({"ctypes": _NATIVE, "syslog": "system log access"})
# Extension modules whose import is the only observable step before an unaudited escape:
# _posixsubprocess.fork_exec starts processes without any audit event (it is re-imported only after
# someone deleted the neutered copy from sys.modules), and the _test*/_xx* modules can run code in a
# subinterpreter that does not have this hook.
_DENIED_MODULES = MappingProxyType({"_posixsubprocess": _PROCESS, "_ctypes": _NATIVE})
_DENIED_MODULE_PREFIXES = ("_test", "_xx", "_interp")
# Filesystem mutations as (argument index of a path, index of its dir_fd or None, follow symlinks).
# Removing or renaming a symlink affects the link, not its target, hence follow=False for those. Both
# ends of a hard link must be inside: a link to an outside file would make that file writable.
_PATH_EVENTS = MappingProxyType({
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
})
# Changing these on one of this file's functions would change what the sandbox itself runs.
_CODE_ATTRIBUTES = frozenset({"__code__", "__defaults__", "__kwdefaults__"})
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
# Writing to these reaches our own captured pipes or nothing at all.
_WRITABLE_PATHS = frozenset({os.devnull, "/dev/stdout", "/dev/stderr"})
_MAX_SYMLINKS = 40  # as the kernel's own limit, ELOOP

_PR_SET_PDEATHSIG = 1
_CLONE_NEWNET = 0x40000000
_MAX_FILE_BYTES = 16 << 20
_MAX_OPEN_FILES = 256
_NPROC_HEADROOM = 32


def _install_guard(workdir: str, report_fd: int, nonce: str) -> type[BaseException]:
    """Install the audit hook; return the exception class it raises on a refusal.

    The generated code shares this interpreter and can reach this module's globals (`import __main__`)
    and, through the unaudited frame.f_back of Python 3.11, the locals of the frames that run it. So the
    hook is built to hold nothing worth reaching:

    - it is one function with no closure that reads no global name: every table, the scratch prefix and
      every function it calls are bound here as defaults of its parameters, all immutable (str, tuple,
      frozenset, MappingProxyType) or C functions. Rebinding this module's names, os.path or builtins
      changes nothing it does, and rewriting its defaults or code is refused (object.__setattr__);
    - it runs no code the generated code may have written: paths are taken as exact str/bytes/int (a str
      subclass's methods are never called; str.__str__ copies one), and nothing like isinstance, os.path
      or json is used, so no generated __fspath__, __eq__ or __class__ can run inside it;
    - it keeps no state: each refusal is written to the report pipe at once, with the nonce, and the
      parent scores any run with one as blocked, so nothing in the child can take a refusal back.
    """
    import socket  # now: an import from inside the hook would re-enter it
    import types

    class SandboxViolation(BaseException):
        # A BaseException so the common `except Exception:` in generated code does not swallow it; a
        # bare `except:` still can, which is why each refusal is also reported at once.
        pass

    kinds = {*_ALWAYS_DENIED.values(), *_DENIED_FAMILIES.values(), *_DENIED_MODULES.values(), _NETWORK,
             _FILE_WRITE, _INTROSPECTION, _TAMPERING, "unsafe internal module", "signal to another process",
             "changing resource limits", "device access"}
    lines = MappingProxyType({kind: ("\n" + json.dumps({"nonce": nonce, "blocked": kind}) + "\n").encode()
                              for kind in kinds})
    errors = MappingProxyType({kind: f"blocked by the sandbox: {kind}" for kind in kinds})
    fs_encoding, fs_errors = sys.getfilesystemencoding(), sys.getfilesystemencodeerrors()
    own_globals = globals()

    # Every name the body uses is a parameter: see the docstring. Do not add a global or a closure.
    def hook(event: str, args: tuple[Any, ...],
             always: Any = _ALWAYS_DENIED, families: Any = _DENIED_FAMILIES, path_events: Any = _PATH_EVENTS,
             denied_modules: Any = _DENIED_MODULES, module_prefixes: Any = _DENIED_MODULE_PREFIXES,
             code_attributes: Any = _CODE_ATTRIBUTES, writable: Any = _WRITABLE_PATHS,
             write_flags: int = _WRITE_FLAGS, max_links: int = _MAX_SYMLINKS,
             prefix: str = os.path.realpath(workdir) + "/", devnull: str = os.devnull,
             pid: int = os.getpid(), af_unix: int = int(socket.AF_UNIX), guard_globals: Any = own_globals,
             violation: Any = SandboxViolation, function_type: Any = types.FunctionType,
             fd: int = report_fd, lines: Any = lines, errors: Any = errors,
             network: str = _NETWORK, file_write: str = _FILE_WRITE, introspection: str = _INTROSPECTION,
             tampering: str = _TAMPERING, fs_encoding: str = fs_encoding, fs_errors: str = fs_errors,
             type_: Any = type, str_: Any = str, bytes_: Any = bytes, int_: Any = int, tuple_: Any = tuple,
             issubclass_: Any = issubclass, os_error: Any = OSError, value_error: Any = ValueError,
             type_error: Any = TypeError, lstat: Any = os.lstat, stat_: Any = os.stat,
             readlink: Any = os.readlink, getcwd: Any = os.getcwd, write: Any = os.write) -> None:
        kind = always.get(event)
        targets: tuple[Any, ...] = ()
        if kind is not None:
            pass
        elif event.startswith("socket."):
            # AF_UNIX sockets may be created because asyncio builds its self-pipe from socketpair(); they
            # cannot reach anything without connect/bind/sendto, which stay refused for every family.
            if not (event == "socket.gethostname" or (event == "socket.__new__" and args[1] == af_unix)):
                kind = network
        elif event.partition(".")[0] in families:
            kind = families[event.partition(".")[0]]
        elif event == "open":
            path, mode, flags = args
            writes = (type_(mode) is str_ and ("w" in mode or "a" in mode or "x" in mode or "+" in mode)) or (
                type_(flags) is int_ and flags & write_flags)
            if writes and not issubclass_(type_(path), int_):  # an int is a descriptor already open
                targets = ((path, None, True, True),)
        elif event == "import":
            name = args[0]
            if issubclass_(type_(name), str_):
                name = str_.__str__(name)
                if name in denied_modules:
                    kind = denied_modules[name]
                elif name.startswith(module_prefixes):
                    kind = "unsafe internal module"
        elif event == "sys._getframe":
            # Frames of this file are the sandbox's own; the code's own frames and the stdlib's are fine
            # (namedtuple, typing and logging ask for their caller's frame).
            if args[0].f_globals is guard_globals:
                kind = introspection
        elif event == "object.__setattr__" or event == "object.__delattr__":
            target, name = args[0], args[1]
            if target is violation or (type_(target) is function_type and target.__globals__ is guard_globals
                                       and issubclass_(type_(name), str_) and str_.__str__(name) in code_attributes):
                kind = tampering
        elif event == "os.kill" or event == "os.killpg":
            # Signalling itself or its own group is harmless; anything else could take down the runner
            # (or, as root without a boundary, every process in the container with kill(-1)).
            if not (args[0] == 0 or args[0] == pid or args[0] == -pid):
                kind = "signal to another process"
        elif event == "resource.prlimit":
            if args[2] is not None:  # reading limits is fine
                kind = "changing resource limits"
        elif event == "sqlite3.connect":
            database = args[0]
            if issubclass_(type_(database), str_) and str_.__str__(database).startswith("file:"):
                database = str_.__str__(database)[5:].partition("?")[0]
            if not (issubclass_(type_(database), str_) and str_.__str__(database) in ("", ":memory:")):
                targets = ((database, None, True, False),)
        else:
            spec = path_events.get(event)
            if spec is not None:
                for index, dir_fd_index, follow in spec:
                    targets += ((args[index], None if dir_fd_index is None else args[dir_fd_index], follow,
                                 False),)
        for path, dir_fd, follow, refuse_devices in targets:
            try:
                kind = file_write  # until the path is shown to be inside the scratch directory
                kind_of = type_(path)
                if issubclass_(kind_of, str_):
                    text = str_.__str__(path)
                elif issubclass_(kind_of, bytes_):
                    text = bytes_.decode(path, fs_encoding, fs_errors)
                elif issubclass_(kind_of, int_):
                    text = readlink(f"/proc/self/fd/{int_.__int__(path)}")
                    if not text.startswith("/"):
                        kind = None  # a pipe or socket, not a filesystem path
                        continue
                else:
                    break  # a path we cannot read without running its own code is not one we can vouch for
                if text in writable:
                    kind = None
                    continue
                if not text.startswith("/"):
                    base = getcwd() if dir_fd is None or dir_fd == -1 else \
                        readlink(f"/proc/self/fd/{int_.__int__(dir_fd)}")
                    text = base + "/" + text
                # The real path, as os.path.realpath(strict=False) finds it, from C functions only. A
                # component that is not followed (the last one, for an operation on a link itself) is
                # taken as it is; "." and ".." there are resolved like the rest.
                if not follow:
                    text = text.rstrip("/")
                    last = text[text.rfind("/") + 1:]
                    follow = last == "" or last == "." or last == ".."
                todo = tuple_(text.split("/"))
                resolved = ""
                links = 0
                while todo:
                    name, todo = todo[0], todo[1:]
                    if name == "" or name == ".":
                        continue
                    if name == "..":
                        resolved = resolved[:resolved.rfind("/")] if resolved else ""
                        continue
                    candidate = resolved + "/" + name
                    if not follow and not todo:
                        resolved = candidate
                        break
                    try:
                        mode = lstat(candidate).st_mode
                    except os_error:
                        mode = 0  # does not exist (yet): taken as it is, like realpath
                    if (mode & 0o170000) != 0o120000:
                        resolved = candidate
                        continue
                    links += 1
                    if links > max_links:
                        break
                    target = readlink(candidate)
                    if target.startswith("/"):
                        resolved = ""
                    todo = tuple_(target.split("/")) + todo
                if links > max_links:
                    break  # a symlink loop
                resolved = resolved or "/"
                if resolved == devnull:
                    kind = None
                    continue
                if not resolved.startswith(prefix):
                    break
                # mknod is not audited, so a device node created inside the scratch directory would open
                # the raw disk for writing.
                if refuse_devices:
                    try:
                        mode = stat_(resolved).st_mode & 0o170000
                    except os_error:
                        mode = 0
                    if mode == 0o060000 or mode == 0o020000:
                        kind = "device access"
                        break
                kind = None
            except (os_error, value_error, type_error):
                kind = file_write  # a path we cannot resolve is not one we can vouch for
                break
        if kind is not None:
            try:  # noqa: SIM105 (contextlib would be a global name)
                write(fd, lines[kind])  # at once: see the docstring
            except os_error:
                pass  # the code closed the pipe; the refusal still stands
            raise violation(errors[kind])

    # The promise above, checked: no closure, and no name looked up outside the parameters.
    code = hook.__code__
    if code.co_freevars or set(code.co_names) & (set(globals()) | set(dir(builtins))):
        raise RuntimeError(f"the sandbox hook uses names outside its parameters: "
                           f"{sorted(set(code.co_names) & (set(globals()) | set(dir(builtins))))}")
    sys.addaudithook(hook)
    return SandboxViolation


def _confine_process(parent_pid: int, timeout_s: float, memory_mb: int, limit_tasks: bool) -> None:
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
        os._exit(1)  # the parent died before the death signal was armed
    _apply_rlimits(timeout_s, memory_mb, limit_tasks)


def _apply_rlimits(timeout_s: float, memory_mb: int, limit_tasks: bool) -> None:
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
    # for root (CAP_SYS_RESOURCE), so it only helps when the runner is not root, and only with headroom
    # for threads. Not when root dropped this child to nobody: every concurrent sandbox is nobody, and
    # their threads together would hit one sandbox's limit (forks are refused by the hook anyway).
    if limit_tasks:
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


def _neuter_fork_exec() -> None:
    # _posixsubprocess.fork_exec (used by multiprocessing's spawn and forkserver) creates processes
    # without raising any audit event, so the hook cannot see it; replace it while we still can.
    import _posixsubprocess

    _posixsubprocess.fork_exec = _refuse_fork_exec


def _refuse_fork_exec(*args: object, **kwargs: object) -> NoReturn:
    sys.audit("os.posix_spawn")  # refused by the hook, which reports it
    raise PermissionError("blocked by the sandbox: process creation")  # if sys was rebound


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


def _run_all(code: Any, tests: list[Any], violation: type[BaseException]) -> tuple[list[bool], str | None]:
    """(each test passed, error) for the generated code and then each test; none passed when the run
    must fail.

    A refusal the code swallowed (a bare except) is not known here; the hook reported it already, and
    the parent fails the whole run for it."""
    # Not "__main__", so an `if __name__ == "__main__":` block (which often reads stdin) does not run.
    namespace: dict[str, Any] = {"__name__": "solution", "__builtins__": builtins}
    fatal = (MemoryError, violation)
    results, failure = [False] * len(tests), None
    exc = _attempt(code, namespace)
    if exc is None:
        for number, test in enumerate(tests, start=1):
            exc = _attempt(test, namespace)
            if exc is None:
                results[number - 1] = True
            elif isinstance(exc, fatal):
                break
            elif failure is None:
                failure = (f"assertion failed at test {number}" if isinstance(exc, AssertionError)
                           else f"{_describe(exc)} at test {number}")
    elif not isinstance(exc, fatal):
        failure = f"runtime error: {_describe(exc)}"  # the tests cannot run without the code's names
    if isinstance(exc, violation):
        return [False] * len(tests), "blocked by the sandbox"  # the parent names the refusal, from the pipe
    # An uncaught MemoryError means unbounded allocation, and its outcome depends on the limit chosen,
    # so it fails the run instead of a single test.
    if isinstance(exc, MemoryError):
        namespace.clear()  # release what the code allocated so the report itself can be written
        return [False] * len(tests), "memory limit exceeded"
    return results, failure


def _write_report(fd: int, nonce: str, results: list[bool], error: str | None) -> None:
    # The leading newline ends any partial line the generated code wrote to this descriptor.
    report = {"nonce": nonce, "passed": sum(results), "results": results, "error": error}
    line = b"\n" + json.dumps(report).encode() + b"\n"
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
        _confine_process(int(payload["parent_pid"]), limits["timeout_s"], limits["memory_mb"],
                         bool(payload["limit_tasks"]))
        # Compiled before the hook goes in, so the hook never has to tell our work from the code's.
        code = compile(str(payload["code"]), "<generated>", "exec", dont_inherit=True)
        tests = [compile(ast.Module(body=[statement], type_ignores=[]), "<tests>", "exec", dont_inherit=True)
                 for statement in ast.parse(str(payload["tests"]), "<tests>").body]
        _neuter_fork_exec()
        violation = _install_guard(str(payload["workdir"]), int(payload["report_fd"]), str(payload["nonce"]))
        results, error = _run_all(code, tests, violation)
        _write_report(int(payload["report_fd"]), str(payload["nonce"]), results, error)
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
