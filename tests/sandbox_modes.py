"""The code sandbox's modes, for tests that must hold in each: a `mode` fixture over the ones that work here.

A mode that does not work on this machine is skipped with the reason the runner itself gives (bwrap not
found, unshare needs root). CI runs as root with bubblewrap installed, so all three run there.
"""

from __future__ import annotations

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
