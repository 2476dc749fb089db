"""For the code sandbox's tests: a `mode` fixture over the modes that work here, and finding leftover processes.

A mode that does not work on this machine is skipped with the reason the runner itself gives (bwrap not
found, unshare needs root). CI runs as root with bubblewrap installed, so all three run there.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from runner.scoring.sandbox_boundary import MODES, SandboxUnavailable, boundary


@pytest.fixture(params=MODES, name="mode")
def mode_fixture(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Sets RUNNER_SANDBOX to each mode in turn (requested as `mode`; imported as mode_fixture)."""
    name: str = request.param
    monkeypatch.setenv("RUNNER_SANDBOX", name)
    monkeypatch.delenv("RUNNER_SANDBOX_PATH", raising=False)
    try:
        boundary()
    except SandboxUnavailable as exc:
        pytest.skip(f"sandbox mode {name}: {exc.problem}")
    return name


@pytest.fixture(name="machine_mode")
def machine_mode_fixture(monkeypatch: pytest.MonkeyPatch) -> str:
    """The mode the machine picks by itself, or weak where none works: for tests of scoring, which does not
    depend on the mode (the refusal without a boundary has tests of its own)."""
    monkeypatch.delenv("RUNNER_SANDBOX", raising=False)
    try:
        return boundary().mode
    except SandboxUnavailable:
        monkeypatch.setenv("RUNNER_SANDBOX", "weak")
        return "weak"


def processes_mentioning(*needles: str) -> list[str]:
    """Processes whose cwd or command line contains any of `needles` (the scratch folders of a test)."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            cwd = os.readlink(f"/proc/{pid}/cwd")
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # exited (or a zombie, whose cwd is gone)
        if any(needle in cwd or needle in cmdline for needle in needles):
            found.append(f"{pid}: {cmdline[:120]}")
    return found


def gone_within(seconds: float, *needles: str) -> list[str]:
    # SIGKILL reaches the namespace's processes through parent-death signals: promptly, not at once.
    deadline = time.monotonic() + seconds
    while (left := processes_mentioning(*needles)) and time.monotonic() < deadline:
        time.sleep(0.02)
    return left
