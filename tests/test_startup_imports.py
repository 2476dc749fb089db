"""Start-up: the verbs that do not need the statistics or the engine do not import them.

Each check runs the CLI in a fresh interpreter and reads its `sys.modules` afterwards: an import
added at the top of a module on these paths (numpy or scipy for the metrics registry, the embedded
backend or its GGUF reader for an `openai` run, aiohttp for `plan`) shows up here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import Project, base_experiment
from runner.testing.fault_server import ThreadedFaultServer

HEAVY = ("scipy", "numpy", "xllamacpp", "gguf", "llama_cpp", "runner.backends.llamacpp.backend")

_PROBE = """
import json, sys
from runner.cli import main
code = main(sys.argv[1:])
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def _modules_after(*argv: str) -> tuple[int, set[str]]:
    done = subprocess.run([sys.executable, "-c", _PROBE, *argv], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parent.parent, timeout=60)
    last = json.loads(done.stdout.strip().splitlines()[-1])
    return last["code"], set(last["modules"])


def _heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY))


def test_importing_the_cli_imports_nothing_heavy() -> None:
    script = "import json, sys, runner.cli; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", script],
                          capture_output=True, text=True, timeout=60)
    modules = set(json.loads(done.stdout))
    assert "runner.cli" in modules
    assert _heavy(modules) == []
    assert "aiohttp" not in modules
    assert "importlib.metadata" not in modules  # runner.__version__ is looked up when asked for


def test_validate_and_plan_of_an_openai_experiment_import_no_statistics_and_no_engine(
        project: Project, fault_server: ThreadedFaultServer) -> None:
    path = project.write(base_experiment(f"{fault_server.url}/v1"))
    code, modules = _modules_after("validate", str(path))
    assert code == 0
    assert _heavy(modules) == []
    code, modules = _modules_after("plan", str(path))
    assert code == 0
    assert _heavy(modules) == []
    assert "aiohttp" not in modules  # plan sends nothing


def test_validate_with_report_metrics_still_checks_their_names(project: Project,
                                                               fault_server: ThreadedFaultServer) -> None:
    path = project.write(base_experiment(f"{fault_server.url}/v1"), report={"metrics": ["accuracy", "nope"]})
    done = subprocess.run([sys.executable, "-m", "runner.cli", "validate", str(path)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2
    assert "report.metrics: unknown metric 'nope'" in done.stderr


# Imported only by what needs them: the regex engine by a regex scorer, the code sandboxes by code_tests,
# the investigation stage by an investigation, the study's module by a study.
LAZY = ("regex", "runner.scoring.sandbox", "runner.scoring.csharp", "runner.scoring.sandbox_boundary",
        "runner.scoring.style", "runner.investigation.load", "runner.capabilities.context_window")


def test_validate_loads_the_regex_engine_sandboxes_and_investigation_stage_only_when_it_uses_them(
        project: Project, fault_server: ThreadedFaultServer) -> None:
    path = project.write(base_experiment(f"{fault_server.url}/v1"))
    code, modules = _modules_after("validate", str(path))
    assert code == 0
    assert [m for m in LAZY if m in modules] == []
    regex_scorer = [{"type": "regex", "pattern": "(true|false)", "expected_field": "valid"}]
    code, modules = _modules_after("validate", str(project.write(base_experiment(f"{fault_server.url}/v1"),
                                                                 name="regex.yaml", scorers=regex_scorer)))
    assert code == 0
    assert "regex" in modules
