"""Who owns a run: the process that started it, so that a later open can tell a live run from one
that was killed (SIGKILL, OOM, power) and never got to write its own end.

A process is named by its host, its pid and its start time (Linux: the boot id and the start tick
from /proc/<pid>/stat), because a pid alone is reused: after a reboot, or once enough processes have
come and gone, the dead run's pid may belong to another program. Where /proc is missing (macOS)
the start time is None and the pid alone decides.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Owner:
    host: str
    pid: int
    start: str | None  # "<boot id>:<start tick>", None where the system cannot say

    @classmethod
    def current(cls) -> Owner:
        return cls(socket.gethostname(), os.getpid(), process_start(os.getpid()))


def process_start(pid: int) -> str | None:
    """When process `pid` started, as "<boot id>:<clock ticks after boot>", or None if unknown."""
    fields = _stat(pid)
    if fields is None:
        return None
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None
    return f"{boot}:{fields[19]}"  # field 22, starttime


def _stat(pid: int) -> list[str] | None:
    """/proc/<pid>/stat from field 3 (the state) on, or None where it cannot be read."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    fields = stat.rpartition(")")[2].split()
    return fields if len(fields) >= 20 else None


def is_gone(host: str | None, pid: int | None, start: str | None) -> bool:
    """Whether the process that owned a run is certainly gone. A run from before owners were stored
    (no pid) is: only a runner of this version can have written to this store since it was migrated.
    A run from another host is not: its processes cannot be seen from here. Where in doubt (a
    process of another user behind hidepid), the run is taken to be alive."""
    if pid is None:
        return True
    if host != socket.gethostname():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # alive, and another user's
    fields = _stat(pid)
    if fields is None:
        return False
    if fields[0] == "Z":
        return True  # it has exited and only waits for its parent to reap it
    # Nothing to compare with where /proc was missing when it started: then the pid decides.
    return start is not None and process_start(pid) != start  # else another process has its pid
