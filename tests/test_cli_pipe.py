"""`runner plan FILE --all | head -1`: when the reader goes away the runner stops quietly with the
status of a process SIGPIPE killed (141), not with an internal error."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_a_closed_pipe_is_not_an_internal_error() -> None:
    # Every job's messages: far more than a pipe buffer holds, so the runner writes into a closed pipe.
    proc = subprocess.Popen([sys.executable, "-m", "runner.cli", "plan", "experiments/smollm_quant.yaml", "--all"],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == 141
    assert first.startswith(b"experiment: ")
    assert err == b""
