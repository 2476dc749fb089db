"""The package's layout is its pipeline: a stage imports only the stages before it.

    config -> plan -> backends -> store -> scoring -> execution -> capabilities
           -> analysis -> diagnosis -> reporting -> api -> cli

`errors` is below everything. The store sits before execution and the read stages because both
sides use it: it is the boundary between the run that writes and the verbs that read. `testing`
(the fault server and fakes) may use anything but the api and cli. Imports inside functions
(lazy imports of heavy modules) and under TYPE_CHECKING count as well: the rule is about
dependencies, not load time. The cli imports only the api (and errors).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "runner"
ORDER = ["errors", "config", "plan", "backends", "store", "scoring", "execution", "capabilities", "analysis",
         "diagnosis", "reporting", "api", "cli"]
RANK = {stage: i for i, stage in enumerate(ORDER)}
# The named exception: the loader and the JSON Schema ask the backend registry for the settings
# model of each `backend.kind` (each backend defines its own YAML fields). Nothing else goes upstream.
EXCEPTIONS = {("runner.config.loader", "runner.backends"), ("runner.config.json_schema", "runner.backends")}


def _stage(module: str) -> str | None:
    """`runner.plan.planner` -> `plan`; the package itself (`runner`) has no stage."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "runner" else None


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append(node.module)
        elif isinstance(node, ast.Import):
            out.extend(alias.name for alias in node.names)
    return [m for m in out if m == "runner" or m.startswith("runner.")]


def _modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        out.append((".".join(rel.parts).removesuffix(".__init__"), path))
    return out


def test_every_module_belongs_to_a_stage() -> None:
    stages = {_stage(name) for name, _ in _modules()} - {None}
    assert stages <= set(ORDER) | {"testing"}, stages - set(ORDER)
    # ls runner/ shows the stages
    assert {p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__"} == {
        "config", "plan", "backends", "store", "scoring", "execution", "capabilities", "analysis", "diagnosis",
        "reporting", "api", "testing"}


def test_no_module_imports_against_the_flow() -> None:
    wrong = []
    for name, path in _modules():
        stage = _stage(name)
        if stage is None:
            continue  # runner/__init__.py: the public names, imported lazily
        for target in _imports(path):
            to = _stage(target)
            if to is None or to == stage or (name, target) in EXCEPTIONS:
                continue
            if stage == "testing":
                ok = to not in ("api", "cli")
            elif stage == "cli":
                ok = to in ("api", "errors")
            else:
                ok = to != "testing" and RANK[to] < RANK[stage]
            if not ok:
                wrong.append(f"{name} imports {target}")
    assert wrong == []


def test_the_checker_sees_a_wrong_import(tmp_path: Path) -> None:
    # The test above must be able to fail: a module of the plan stage importing the analysis is caught.
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from runner.analysis.stats import wilson_interval\n    return wilson_interval\n")
    assert _imports(bad) == ["runner.analysis.stats"]
    assert RANK[_stage("runner.analysis.stats") or ""] > RANK["plan"]
