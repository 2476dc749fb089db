"""The operating-system boundary around the code sandbox's child: which one works here, and its command.

The audit hook inside the child (`sandbox_child.py`) shares an interpreter with the code it guards, so
it cannot be the boundary: generated code can reach the interpreter's state. The boundary is the
kernel's. One of three modes is picked once per process, by running each candidate once (`boundary()`):

- `bwrap` (bubblewrap): new PID, network, IPC, UTS and (where possible) cgroup namespaces, and a mount
  namespace whose root is an empty tmpfs holding only read-only /usr, the Python installation and the
  child script, a fresh /proc of the new PID namespace, a minimal /dev, a small root-owned /tmp and the
  scratch directory (read-write, at /tmp/sandbox, the cwd: for anything that runs the answer's code
  a tmpfs of SCRATCH_BYTES of its own, so that many files under the file-size limit cannot fill the
  host's disk; see `Boundary.tool_command`). As root there is no user namespace (one
  that maps only uid 0 would leave the child root outside it) and setpriv drops to uid and gid 65534
  (nobody) with no supplementary groups, no capabilities and no_new_privs. As another user, a user
  namespace is added and the child keeps that user's uid, without capabilities.
- `unshare` (util-linux, root only): the same namespaces without bubblewrap. A shell step in the new
  mount namespace makes every mount read-only, puts an empty tmpfs over every top-level folder but
  the system's programs and libraries (/usr, /bin, /sbin, /lib*), /proc and /dev, and over /dev/shm
  (so /etc, /home, /root, /tmp, /var, /work and the like are empty), /dev/null over the top-level
  files, binds back read-only what the child needs from under them (the Python installation, a
  tool's `ro_binds`), puts the scratch directory at /tmp/sandbox (as bwrap) and drops to nobody: the
  same view as bwrap's, built by subtraction, so a folder a host adds at / is hidden too.
- `weak`: no boundary, only the audit hook and resource limits; the child runs as the runner's user
  and can read what the runner can. Used only when asked for with RUNNER_SANDBOX=weak.

RUNNER_SANDBOX=bwrap|unshare|weak forces a mode (a forced mode that does not work is an error);
unset, the first of bwrap and unshare that works is used, and none working is an error that says how
to get one. RUNNER_SANDBOX_PATH, if set, is the only place bwrap, unshare and setpriv are looked for
(the tests point it at a folder without them).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["INNER_WORKDIR", "MODES", "NOBODY", "SCRATCH_BYTES", "Boundary", "SandboxUnavailable", "boundary",
           "unshare_hidden"]

MODE_ENV = "RUNNER_SANDBOX"
TOOLS_ENV = "RUNNER_SANDBOX_PATH"
MODES = ("bwrap", "unshare", "weak")
NOBODY = 65534
# Fixed paths inside the boundary: the scratch directory (cwd, HOME, TMPDIR) and the child script.
INNER_WORKDIR = "/tmp/sandbox"
INNER_CHILD = "/run/runner/sandbox_child.py"
# The most the answer's code may write in all, as files in its scratch folder (each file is also capped, by
# RLIMIT_FSIZE): the folder is a tmpfs of this size, so no number of files under the cap fills the host.
SCRATCH_BYTES = 64 << 20
_HIDDEN_TMPFS_BYTES = 1 << 20  # the empty tmpfs over hidden folders (and bwrap's /tmp)
# Where the system's own tools are, whatever PATH the runner was started with.
_SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Left visible (read-only) in the unshare mode: what bwrap's view holds too. Every other top-level
# folder is covered (unshare_hidden), and the world-writable /dev/shm within /dev.
_UNSHARE_KEPT = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/proc", "/dev")
_PROBE_TIMEOUT_S = 20.0
_INSTALL_FIX = "install bubblewrap (apt-get install bubblewrap), or run as root so unshare can be used"
_WEAK_FIX = "RUNNER_SANDBOX=weak runs it with the audit hook only"
_UNSET_FIX = "or unset RUNNER_SANDBOX to pick the mode automatically"


class SandboxUnavailable(RuntimeError):
    """No boundary the code sandbox may use: what is wrong and how to fix it, for a one-line error."""

    def __init__(self, problem: str, fix: str) -> None:
        self.problem = problem
        self.fix = fix
        super().__init__(f"{problem}; {fix}")


@dataclass(frozen=True)
class Boundary:
    """One way of starting the child: the mode and the tools it needs, checked to work on this machine."""

    mode: str
    python: str  # the interpreter's real path: a venv's python is a symlink that would not resolve inside
    tools: tuple[tuple[str, str], ...] = ()  # (name, path) of bwrap, unshare, setpriv, as used

    @property
    def confined(self) -> bool:
        return self.mode != "weak"

    @property
    def drops_to_nobody(self) -> bool:
        # As root the child drops to nobody; as anyone else it keeps the user's uid (bwrap's user namespace).
        return self.confined and os.geteuid() == 0

    @property
    def child_path(self) -> str:
        """Where the child script is, as the child sees it."""
        return INNER_CHILD if self.confined else _CHILD_SCRIPT

    def workdir(self, host_workdir: str) -> str:
        """The scratch directory as the child sees it."""
        return INNER_WORKDIR if self.confined else host_workdir

    def expected_parent(self, runner_pid: int) -> int:
        # Inside a PID namespace the child's parent is the namespace's init (bwrap's, or the shell step's).
        return 1 if self.confined else runner_pid

    def prepare_workdir(self, host_workdir: str) -> None:
        """Make the scratch directory writable by the child (nobody, when dropping to it)."""
        if self.drops_to_nobody:
            os.chown(host_workdir, NOBODY, NOBODY)

    def command(self, host_workdir: str, python_args: Sequence[str], report_fd: int) -> list[str]:
        """argv that runs `python python_args` inside the boundary; its scratch directory is a tmpfs of
        SCRATCH_BYTES of its own (the child needs nothing from host_workdir, and leaves nothing there).

        `report_fd` is the inherited descriptor the child reports on, which the unshare mode's shell step
        must not reuse for its own descriptors."""
        python = [self.python, *python_args]
        if self.mode == "bwrap":
            return self._bwrap(host_workdir, python, inputs=())
        if self.mode == "unshare":
            return self._unshare(host_workdir, python, report_fd)
        return python

    def tool_command(self, host_workdir: str, argv: Sequence[str], ro_binds: Sequence[str] = (),
                     inputs: Sequence[str] | None = None) -> list[str]:
        """argv that runs a program other than the Python child (a compiler, a linter) inside the boundary.

        The program sees what the child sees, without the Python installation and the child script, plus
        `ro_binds` (files or folders, read-only at the same path: a compiler's configuration in /etc, a
        linter's binary in a virtual environment). `inputs` None: host_workdir is its scratch directory,
        read-write (our compiler's output is the next step's input); a list of names in host_workdir (for
        a program that runs the answer's code): the scratch directory is a tmpfs of SCRATCH_BYTES holding
        those files read-only, and what is written there never reaches the host. Weak mode: `argv` itself."""
        if self.mode == "bwrap":
            return self._bwrap(host_workdir, list(argv), ro_binds=ro_binds, python_child=False, inputs=inputs)
        if self.mode == "unshare":
            script = _unshare_script(host_workdir, None, [*self._drop_privileges(), *argv], -1, ro_binds, inputs)
            return [self._tool("setpriv"), "--pdeathsig", "KILL", "--", self._tool("unshare"), "--mount", "--pid",
                    "--net", "--ipc", "--uts", "--fork", "--kill-child", "--mount-proc", "/bin/sh", "-c", script]
        return list(argv)

    def returncode(self, raw: int) -> int:
        """The child's exit status in Popen's terms (negative: killed by that signal).

        bwrap and the shell step report a child killed by signal N as the status 128 + N."""
        if self.confined and 128 < raw < 128 + 65:
            return 128 - raw
        return raw

    def _tool(self, name: str) -> str:
        return dict(self.tools)[name]

    def _drop_privileges(self) -> list[str]:
        # Not a user namespace: file checks use the outer uid, so the child must really be nobody.
        return [self._tool("setpriv"), f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"]

    def _bwrap(self, host_workdir: str, python: list[str], ro_binds: Sequence[str] = (),
               python_child: bool = True, inputs: Sequence[str] | None = None) -> list[str]:
        root = os.geteuid() == 0
        argv = [self._tool("bwrap")]
        # As root, bwrap's user namespace would map only uid 0, and setpriv could not drop to nobody in it.
        if not root:
            argv += ["--unshare-user", "--disable-userns"]
        # No --new-session: the runner starts bwrap in a session of its own with no terminal, and one
        # process group lets its killpg reach bwrap, the namespace's init and the child at once.
        argv += ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try",
                 "--die-with-parent", "--clearenv"]
        for name, value in _child_env(INNER_WORKDIR).items():
            argv += ["--setenv", name, value]
        argv += ["--ro-bind", "/usr", "/usr"]
        for link in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
            if os.path.islink(link):
                argv += ["--symlink", os.readlink(link), link]  # merged /usr: the same links as the host
            elif os.path.isdir(link):
                argv += ["--ro-bind", link, link]
        # /tmp is small: as another user (a user namespace) it is the user's, and writable. Mounted before
        # the binds below, which may lie under /tmp (a checkout and its .venv in /tmp: the ruff binary).
        argv += ["--proc", "/proc", "--dev", "/dev", "--size", str(_HIDDEN_TMPFS_BYTES), "--tmpfs", "/tmp"]
        for path in _python_dirs(self.python) if python_child else []:
            if not _under(path, "/usr"):  # a system Python is in /usr already
                argv += ["--ro-bind", path, path]
        for path in ro_binds:
            if not _under(path, "/usr"):
                # The parents bwrap makes would be 0700, which nobody could not enter (/etc for /etc/mono).
                argv += [d for d in _parents(path) for d in ("--perms", "0755", "--dir", d)]
                argv += ["--ro-bind", path, path]
        if inputs is None:
            argv += ["--bind", host_workdir, INNER_WORKDIR]
        else:
            argv += ["--size", str(SCRATCH_BYTES), "--perms", "0777", "--tmpfs", INNER_WORKDIR]
            for name in inputs:
                argv += ["--ro-bind", os.path.join(host_workdir, name), f"{INNER_WORKDIR}/{name}"]
        if python_child:
            # bwrap makes the parents of a file it binds 0700, which nobody could not enter.
            argv += [d for d in _parents(INNER_CHILD) for d in ("--perms", "0755", "--dir", d)]
            argv += ["--ro-bind", _CHILD_SCRIPT, INNER_CHILD]
        argv += ["--chdir", INNER_WORKDIR]
        return argv + (self._drop_privileges() if root else []) + python

    def _unshare(self, host_workdir: str, python: list[str], report_fd: int) -> list[str]:
        script = _unshare_script(host_workdir, self.python, [*self._drop_privileges(), *python], report_fd,
                                 inputs=())
        # setpriv --pdeathsig: unshare itself does not die with the runner; --kill-child takes the
        # namespace's init (the shell) with it, and the PID namespace everything in it.
        return [self._tool("setpriv"), "--pdeathsig", "KILL", "--", self._tool("unshare"), "--mount", "--pid",
                "--net", "--ipc", "--uts", "--fork", "--kill-child", "--mount-proc", "/bin/sh", "-c", script]


_CHILD_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sandbox_child.py")


def _child_env(workdir: str) -> dict[str, str]:
    """The child's whole environment: nothing of the runner's (API keys, tokens) gets in."""
    return {"PATH": "/usr/bin:/bin", "HOME": workdir, "TMPDIR": workdir, "LANG": "C.UTF-8"}


def launcher_env() -> dict[str, str]:
    """The environment of bwrap, unshare or (weak) the child itself, as started by the runner."""
    return _child_env(INNER_WORKDIR) | {"PATH": _SYSTEM_PATH}


def _parents(path: str) -> list[str]:
    """/run and /run/runner for /run/runner/sandbox_child.py."""
    parts = path.split("/")[1:-1]
    return ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]


def _python_dirs(python: str) -> list[str]:
    """The folders the interpreter needs: its installation (stdlib, libpython) and its own folder."""
    dirs = [os.path.realpath(sys.base_prefix)]
    own = os.path.dirname(python)
    if not _under(own, dirs[0]):
        dirs.append(own)
    return dirs


def _top_level() -> list[str]:
    return sorted(os.path.join("/", name) for name in os.listdir("/"))


def unshare_hidden() -> tuple[str, ...]:
    """The folders the unshare mode covers with an empty tmpfs: the host's top-level folders (not links:
    /bin -> usr/bin) but _UNSHARE_KEPT, and /dev/shm."""
    top = [d for d in _top_level() if os.path.isdir(d) and not os.path.islink(d) and d not in _UNSHARE_KEPT]
    return (*top, "/dev/shm")


def _unshare_script(host_workdir: str, python: str | None, command: list[str], report_fd: int,
                    ro_binds: Sequence[str] = (), inputs: Sequence[str] | None = None) -> str:
    """The shell step run as the new namespaces' init: build the mount view, then run `command`.

    The shell stays as init (the command is not its last word), so the child is not PID 1, to which
    the kernel would not deliver the signals of its resource limits. `python` None: a tool's command
    (`Boundary.tool_command`), which needs no interpreter, only `ro_binds` where they are hidden.
    `inputs` as for `Boundary.tool_command`: None binds host_workdir, a list a tmpfs with those files."""
    q = shlex.quote
    hidden = unshare_hidden()
    files = [f for f in _top_level() if os.path.isfile(f) and not os.path.islink(f)]  # /.dockerenv, say
    keep = [d for d in [*(_python_dirs(python) if python else []), *ro_binds] if any(_under(d, h) for h in hidden)]
    # Descriptors opened before the tmpfs covers go on: they still reach the hidden originals, which
    # are bound back through /proc/self/fd (mount -c: not canonicalized, which would find the tmpfs).
    files_in = [os.path.join(host_workdir, name) for name in inputs or ()]
    fds = iter(n for n in range(3, 10 + len(ro_binds) + len(files_in)) if n != report_fd)
    opened = [(next(fds), path) for path in (host_workdir, _CHILD_SCRIPT, *files_in, *keep)]
    lines = ["set -eu"]
    lines += [f"exec {n}<{q(path)}" for n, path in opened]
    lines += [
        # Every mount read-only in this namespace only; the host's mounts are untouched.
        "while read -r _ _ _ _ mp _; do mount -o remount,bind,ro \"$(printf '%b' \"$mp\")\" 2>/dev/null || :; "
        "done < /proc/self/mountinfo",
        *(f"if [ -d {q(d)} ]; then mount -t tmpfs -o mode=0755,size={_HIDDEN_TMPFS_BYTES},nosuid,nodev,noexec "
          f"tmpfs {q(d)}; fi" for d in hidden),
        *(f"if [ -f {q(f)} ]; then mount --bind /dev/null {q(f)}; fi" for f in files),
    ]
    # (descriptor, target, options, whether a file): the kept folders, then the scratch directory and
    # the child script; then the inputs, into the scratch directory's tmpfs.
    binds = [(n, path, "ro", os.path.isfile(path)) for n, path in opened[2 + len(files_in):]]
    if inputs is None:
        binds += [(opened[0][0], INNER_WORKDIR, "rw,nosuid,nodev,noexec", False)]
    else:
        lines += [f"mkdir -p {q(INNER_WORKDIR)}",
                  f"mount -t tmpfs -o mode=0777,size={SCRATCH_BYTES},nosuid,nodev,noexec tmpfs {q(INNER_WORKDIR)}"]
    binds += [(opened[1][0], INNER_CHILD, "ro", True)]
    binds += [(n, f"{INNER_WORKDIR}/{os.path.basename(path)}", "ro", True) for n, path in opened[2:2 + len(files_in)]]
    for n, target, options, is_file in binds:
        make = f"mkdir -p {q(os.path.dirname(target))} && : > {q(target)}" if is_file else f"mkdir -p {q(target)}"
        lines += [make, f"mount -c --bind /proc/self/fd/{n} {q(target)}",
                  f"mount -o remount,bind,{options} {q(target)}"]
    lines += [f"exec {n}<&-" for n, _ in opened]
    lines += [f"cd {q(INNER_WORKDIR)}",
              "env -i " + " ".join(q(f"{k}={v}") for k, v in _child_env(INNER_WORKDIR).items()) + " "
              + " ".join(q(part) for part in command),
              'exit "$?"']
    return "\n".join(lines)


def _under(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


# --- choosing the mode --------------------------------------------------------------------------

_lock = threading.Lock()
_probed: dict[tuple[str, ...], Boundary | SandboxUnavailable] = {}


def boundary() -> Boundary:
    """The boundary to run the child in, by RUNNER_SANDBOX; raises SandboxUnavailable if there is none.

    Each candidate is tried once per process (and per RUNNER_SANDBOX, RUNNER_SANDBOX_PATH and uid), by
    running a tiny script through it, and the answer is kept: a run scores many answers."""
    requested = os.environ.get(MODE_ENV, "")
    tools_path = os.environ.get(TOOLS_ENV)
    key = (requested, tools_path or "", str(os.geteuid()))
    with _lock:
        if key not in _probed:
            _probed[key] = _choose(requested, tools_path)
        found = _probed[key]
    if isinstance(found, SandboxUnavailable):
        raise found
    return found


def _choose(requested: str, tools_path: str | None) -> Boundary | SandboxUnavailable:
    python = os.path.realpath(sys.executable) if sys.executable else ""
    if not python:
        return SandboxUnavailable("cannot run the code sandbox: sys.executable is unknown",
                                  "run the runner with a regular Python interpreter")
    if requested == "weak":
        return Boundary("weak", python)
    if requested not in ("", *MODES):
        return SandboxUnavailable(f"{MODE_ENV}={requested!r} is not a sandbox mode",
                                  "use bwrap, unshare or weak, or unset it")
    candidates = [requested] if requested else ["bwrap", "unshare"]
    reasons = []
    for mode in candidates:
        found = _try(mode, python, tools_path)
        if isinstance(found, Boundary):
            return found
        reasons.append(f"{mode}: {found}")
    if requested:
        fix = ("install bubblewrap (apt-get install bubblewrap)" if requested == "bwrap"
               else "run the runner as root, with util-linux's unshare and setpriv")
        return SandboxUnavailable(f"{MODE_ENV}={requested} does not work here ({reasons[0]})",
                                  f"{fix}, {_UNSET_FIX}")
    return SandboxUnavailable(f"no sandbox boundary works on this machine ({'; '.join(reasons)})",
                              f"{_INSTALL_FIX}; {_WEAK_FIX}")


def _try(mode: str, python: str, tools_path: str | None) -> Boundary | str:
    """The boundary if `mode` works here, else why not (a few words)."""
    root = os.geteuid() == 0
    if mode == "unshare" and not root:
        return "needs root"
    names = {"bwrap": ["bwrap", "setpriv"] if root else ["bwrap"], "unshare": ["unshare", "setpriv"]}[mode]
    tools = []
    for name in names:
        path = shutil.which(name, path=tools_path if tools_path is not None else _SYSTEM_PATH)
        if path is None:
            return "not found" if name == mode else f"{name} not found"
        # The real file: the unshare mode runs setpriv inside its mount view, where a link may point
        # into a hidden folder.
        tools.append((name, os.path.realpath(path)))
    found = Boundary(mode, python, tuple(tools))
    failure = _probe(found)
    return found if failure is None else failure


# The probe runs the real command line with a script that checks what the child needs: its script is
# readable, its scratch directory writable, and it has the uid, parent and cwd the parent expects.
_PROBE = (
    "import os, sys\n"
    "open(sys.argv[1]).close()\n"
    "open('probe', 'w').write('x')\n"
    "sys.stdout.write('%d %d %s' % (os.getuid(), os.getppid(), os.getcwd()))\n"
)


def _probe(found: Boundary) -> str | None:
    expected_uid = NOBODY if found.drops_to_nobody else os.geteuid()
    with tempfile.TemporaryDirectory(prefix="runner-sandbox-probe-") as workdir:
        found.prepare_workdir(workdir)
        argv = found.command(workdir, ["-I", "-S", "-B", "-c", _PROBE, found.child_path], report_fd=-1)
        try:
            done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, cwd=workdir,
                                  env=launcher_env(), timeout=_PROBE_TIMEOUT_S, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"does not start ({type(exc).__name__})"
        out = done.stdout.decode(errors="replace")
        expected = f"{expected_uid} {found.expected_parent(os.getpid())} {found.workdir(workdir)}"
        if done.returncode == 0 and out == expected:
            return None
        detail = (done.stderr.decode(errors="replace").strip().splitlines() or [out or "no output"])[-1]
        detail = " ".join(detail.split())
        return f"does not work (status {done.returncode}: {detail[:120]})"
