"""How the `runner` command ends: with the verb's exit code and everything written, skipping the
interpreter's teardown only where nothing is left to finish (runner.cli.exit_now)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import Project, base_experiment

ROOT = Path(__file__).resolve().parent.parent


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def test_the_command_exits_with_the_verbs_code_and_its_output_complete(project: Project) -> None:
    path = project.write(base_experiment())
    done = subprocess.run([sys.executable, "-m", "runner.cli", "plan", str(path)],
                          capture_output=True, text=True, env=_env(), cwd=project.root)
    assert done.returncode == 0, done.stderr
    assert done.stdout.endswith("\n") and "jobs" in done.stdout  # flushed whole before the process ended
    bad = project.root / "bad.yaml"
    bad.write_text("name: [")
    done = subprocess.run([sys.executable, "-m", "runner.cli", "validate", str(bad)], capture_output=True, text=True,
                          env=_env(), cwd=project.root)
    assert done.returncode == 2 and done.stderr.count("\n") == 1


def test_a_profiler_still_writes_its_results(project: Project, tmp_path: Path) -> None:
    # A profiler (or coverage) writes at the ordinary exit: with it on, the command exits the ordinary way.
    path = project.write(base_experiment())
    out = tmp_path / "plan.prof"
    done = subprocess.run([sys.executable, "-m", "cProfile", "-o", str(out), "-m", "runner.cli", "plan", str(path)],
                          capture_output=True, text=True, env=_env(), cwd=project.root)
    assert done.returncode == 0, done.stderr
    assert out.stat().st_size > 0
