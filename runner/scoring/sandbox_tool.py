"""Run a program other than the Python child (a compiler, a linter, a C# test harness) in the code sandbox.

The C# scorer compiles the answer with `mcs` and runs its tests with `mono`, and the style check runs
`ruff` on the answer's Python: each step is started here, inside the same operating-system boundary
as the Python child (`sandbox_boundary`: namespaces, a read-only /usr, nobody, an empty environment),
in a scratch directory the steps of one answer share (the step that runs the answer's code, mono,
and ruff get a size-limited tmpfs of their own with their inputs bound in: `Scratch.run`'s `inputs`).
Limits are the kernel's: `prlimit` lowers the address space, CPU time, file size, open files and
core size before the program starts, and the parent's wall-clock deadline kills the whole process
group. There is no audit hook: these programs
are not Python, so the boundary is all there is, and `scratch()` refuses the weak mode for anything
that runs the answer's own code (`runs_answer=True`).
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from runner.scoring.sandbox import _drain, _kill_group, _wait_for_exit
from runner.scoring.sandbox_boundary import _SYSTEM_PATH, Boundary, SandboxUnavailable, boundary, launcher_env

__all__ = ["Scratch", "ToolRun", "scratch"]

_MAX_FILE_BYTES = 16 << 20
_MAX_OPEN_FILES = 256


@dataclass(frozen=True)
class ToolRun:
    returncode: int  # as Popen gives it: negative when killed by that signal
    timed_out: bool
    stdout: bytes
    stderr: bytes


@dataclass(frozen=True)
class Scratch:
    """One answer's scratch directory and the boundary its steps run in."""

    where: Boundary
    host_dir: str

    def write(self, name: str, text: str) -> None:
        path = os.path.join(self.host_dir, name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(path, 0o644)  # readable by nobody, whom the boundary runs the steps as

    def run(self, argv: Sequence[str], *, timeout_s: float, memory_mb: int, stdin: bytes = b"",
            ro_binds: Sequence[str] = (), max_output_bytes: int = 65536,
            inputs: Sequence[str] | None = None) -> ToolRun:
        """Run argv (paths relative to the scratch directory, its cwd) under the limits; never raises on
        the program's own failure, only when it cannot be started (OSError).

        `inputs`: for a step that runs the answer's code, the scratch files it reads; it then runs in a
        tmpfs of SCRATCH_BYTES of its own holding those (read-only), so that no number of files under
        the file-size limit fills the host, and nothing it writes is seen by the next step. None: the
        shared scratch directory, read-write (our compiler, whose output the next step reads)."""
        prlimit = shutil.which("prlimit", path=_SYSTEM_PATH)
        if prlimit is None:
            raise OSError("prlimit (util-linux) is not installed")
        memory, cpu = memory_mb << 20, math.ceil(timeout_s) + 1
        limited = [prlimit, f"--as={memory}", f"--cpu={cpu}:{cpu + 1}", f"--fsize={_MAX_FILE_BYTES}",
                   f"--nofile={_MAX_OPEN_FILES}", "--core=0", "--", *argv]
        command = self.where.tool_command(self.host_dir, limited, ro_binds, inputs)
        deadline = time.monotonic() + timeout_s
        with tempfile.TemporaryFile() as stdin_file:
            stdin_file.write(stdin)
            stdin_file.seek(0)
            proc = subprocess.Popen(command, stdin=stdin_file, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    cwd=self.host_dir, env=launcher_env(), start_new_session=True)
        try:
            assert proc.stdout is not None and proc.stderr is not None
            out_fd, err_fd = proc.stdout.fileno(), proc.stderr.fileno()
            captured, timed_out = _drain({out_fd: max_output_bytes, err_fd: max_output_bytes}, deadline)
            if not timed_out:
                timed_out = not _wait_for_exit(proc.pid, deadline)
        finally:
            _kill_group(proc.pid)  # always: whatever the program started dies with it
            proc.wait()
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()
        return ToolRun(self.where.returncode(proc.returncode), timed_out, bytes(captured[out_fd]),
                       bytes(captured[err_fd]))


@contextmanager
def scratch(*, runs_answer: bool) -> Iterator[Scratch]:
    """A fresh scratch directory in the boundary, removed afterwards.

    `runs_answer`: a step will execute the answer's code (not only read it), which the weak mode may
    not do outside Python, where it has no audit hook to offer: SandboxUnavailable then."""
    where = boundary()
    if runs_answer and not where.confined:
        raise SandboxUnavailable("RUNNER_SANDBOX=weak has no audit hook outside Python, so it cannot run C# answers",
                                 "unset RUNNER_SANDBOX, with bubblewrap installed (or as root)")
    host_dir = tempfile.mkdtemp(prefix="runner-sandbox-")
    try:
        where.prepare_workdir(host_dir)
        yield Scratch(where, host_dir)
    finally:
        shutil.rmtree(host_dir, ignore_errors=True)
