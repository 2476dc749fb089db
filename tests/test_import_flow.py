"""The package's layout is its pipeline: a stage imports only the stages before it.

    config -> plan -> backends -> store -> scoring -> execution -> capabilities
           -> analysis -> diagnosis -> reporting -> investigation -> api -> cli

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
         "diagnosis", "reporting", "investigation", "api", "cli"]
RANK = {stage: i for i, stage in enumerate(ORDER)}
# The named exception: the loader and the JSON Schema ask the backend registry for the settings
# model of each `backend.kind` (each backend defines its own YAML fields). Nothing else goes upstream.
EXCEPTIONS = {("runner.config.loader", "runner.backends"), ("runner.config.json_schema", "runner.backends")}


def _stage(module: str) -> str | None:
    """`runner.plan.planner` -> `plan`; the package itself (`runner`) has no stage."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "runner" else None


def _exports() -> dict[str, str]:
    """runner/__init__.py's lazy names -> the module that defines each (read from its source)."""
    tree = ast.parse((PACKAGE / "__init__.py").read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", None) == "_EXPORTS":
            return dict(ast.literal_eval(node.value))  # type: ignore[arg-type]
    raise AssertionError("runner/__init__.py has no _EXPORTS")


def _imports(path: Path, module: str) -> list[str]:
    """Every runner module `path` (the module named `module`) imports, wherever the import stands.

    Relative imports are resolved against the module's package, and `from runner import name` to the
    module that defines the name, so neither is a way around the rule."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    exports = _exports()
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base]) if base else ".".join(parent)
            if base == "runner":
                # A public name resolves to its module, a dunder (`__version__`) to the package itself.
                out.extend(exports.get(a.name, "runner" if a.name.startswith("__") else f"runner.{a.name}")
                           for a in node.names)
            else:
                out.append(base)
        elif isinstance(node, ast.Import):
            out.extend(alias.name for alias in node.names)
    return [m for m in out if m == "runner" or m.startswith("runner.")]


def _modules(root: Path = PACKAGE) -> list[tuple[str, Path]]:
    out = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root.parent).with_suffix("")
        out.append((".".join(rel.parts).removesuffix(".__init__"), path))
    return out


def wrong_imports(modules: list[tuple[str, Path]]) -> list[str]:
    wrong = []
    for name, path in modules:
        stage = _stage(name)
        if stage is None:
            continue  # runner/__init__.py: the public names, imported lazily
        for target in _imports(path, name):
            to = _stage(target)
            if to is None or to == stage or (name, target) in EXCEPTIONS:
                continue
            if stage == "testing":
                ok = to not in ("api", "cli")
            elif stage == "cli":
                ok = to in ("api", "errors")
            else:
                ok = to != "testing" and to in RANK and RANK[to] < RANK[stage]
            if not ok:
                wrong.append(f"{name} imports {target}")
    return wrong


def test_every_module_belongs_to_a_stage() -> None:
    stages = {_stage(name) for name, _ in _modules()} - {None}
    assert stages <= set(ORDER) | {"testing"}, stages - set(ORDER)
    # ls runner/ shows the stages
    assert {p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__"} == {
        "config", "plan", "backends", "store", "scoring", "execution", "capabilities", "analysis", "diagnosis",
        "reporting", "investigation", "api", "cli", "testing"}


def test_no_module_imports_against_the_flow() -> None:
    assert wrong_imports(_modules()) == []


def test_the_checker_catches_each_way_of_importing_upstream(tmp_path: Path) -> None:
    # The rule must be able to fail: a plan module reaching the analysis by a plain, a lazy, a relative
    # and a package-level import, each caught; an import of an earlier stage passes.
    plan = tmp_path / "runner" / "plan"
    plan.mkdir(parents=True)
    (tmp_path / "runner" / "__init__.py").write_text("")
    (plan / "__init__.py").write_text("")
    (plan / "plain.py").write_text("from runner.analysis.stats import wilson_interval\n")
    (plan / "lazy.py").write_text("def f():\n    import runner.reporting.tables\n")
    (plan / "relative.py").write_text("from ..diagnosis import findings\n")
    (plan / "package.py").write_text("from runner import ResultSet\n")
    (plan / "fine.py").write_text("from runner.config.schema import Experiment\nfrom . import plain\n")
    assert sorted(wrong_imports(_modules(tmp_path / "runner"))) == [
        "runner.plan.lazy imports runner.reporting.tables",
        "runner.plan.package imports runner.analysis.results",
        "runner.plan.plain imports runner.analysis.stats",
        "runner.plan.relative imports runner.diagnosis",
    ]
