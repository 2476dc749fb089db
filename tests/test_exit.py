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
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("PYTHONUNBUFFERED", None)  # buffered, as a user's shell has it: the flush at exit is what is tested
    return env


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


def test_output_to_a_reader_that_went_away_exits_141_quietly(project: Project) -> None:
    # Less output than a pipe holds is still in the buffer when the verb returns: the flush at exit meets
    # the closed pipe, and the command ends as one SIGPIPE killed, with nothing on stderr.
    path = project.write(base_experiment())
    read, write = os.pipe()
    os.close(read)
    try:
        done = subprocess.run([sys.executable, "-m", "runner.cli", "plan", str(path), "--show", "0"], stdout=write,
                              stderr=subprocess.PIPE, text=True, env=_env(), cwd=project.root)
    finally:
        os.close(write)
    assert (done.returncode, done.stderr) == (141, "")


def test_what_was_registered_to_run_at_exit_still_runs(project: Project) -> None:
    path = project.write(base_experiment())
    script = ("import atexit, sys\n"
              "atexit.register(lambda: print('flushed at exit', file=sys.stderr))\n"
              "from runner.cli import console\n"
              f"sys.argv = ['runner', 'plan', {str(path)!r}]\n"
              "console()\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=_env(), cwd=project.root)
    assert done.returncode == 0, done.stderr
    assert done.stderr.endswith("flushed at exit\n")
