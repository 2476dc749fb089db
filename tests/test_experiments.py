"""Every experiment in experiments/ validates and plans (the investigation suite stays runnable)."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.cli import main
from runner.scoring.csharp import missing_tools

EXPERIMENTS = sorted((Path(__file__).resolve().parent.parent / "experiments").glob("*.yaml"))


def test_the_suite_has_one_experiment_per_hypothesis() -> None:
    names = {p.stem for p in EXPERIMENTS}
    assert {"prompt_ab", "temperature_sweep", "consistency", "smollm_quant", "system_prompt", "model_compare",
            "context_window", "codegen", "semantic"} <= names


@pytest.mark.parametrize("path", EXPERIMENTS, ids=[p.stem for p in EXPERIMENTS])
def test_validate_and_plan(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if path.stem == "codegen_csharp" and missing_tools():
        pytest.skip("mono is not installed here: apt-get install -y mono-mcs mono-runtime (scripts/install_mono.sh)")
    assert main(["validate", "--offline", str(path)]) == 0
    assert capsys.readouterr().out.startswith(f"ok: {path}: ")
    assert main(["plan", str(path), "--show", "1"]) == 0
    out = capsys.readouterr().out
    assert "matrix:" in out and "\njob " in out
