"""Importing code that is not ours or not always there: plugins, user functions, optional engines.

Every failure here is one line naming what was asked for and how to fix it, never a traceback:
- `entry_point_names` / `load_entry_point`: third-party backends and scorers announced by installed
  packages (entry-point groups `runner.backends` and `runner.scorers`), loaded only when asked for;
- `load_object`: a `"package.module:attr"` string, searched on sys.path and an experiment's folder;
- `require` / `require_installed`: optional heavy dependencies, with the pip command that installs them.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.machinery
import importlib.metadata
import importlib.util
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

from runner.errors import UserError

BACKEND_GROUP = "runner.backends"
SCORER_GROUP = "runner.scorers"


# entry points


def _entry_points(group: str) -> list[importlib.metadata.EntryPoint]:
    # First one wins when two installed packages announce the same name, as with console scripts.
    seen: dict[str, importlib.metadata.EntryPoint] = {}
    for ep in importlib.metadata.entry_points(group=group):
        seen.setdefault(ep.name, ep)
    return list(seen.values())


def entry_point_names(group: str) -> list[str]:
    """Names announced in `group`, read from package metadata without importing any plugin."""
    return sorted(ep.name for ep in _entry_points(group))


def describe_entry_point(group: str, name: str) -> str:
    for ep in _entry_points(group):
        if ep.name == name:
            return _describe(ep)
    return f"entry point {name!r} in group {group}"


def _describe(ep: importlib.metadata.EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    origin = f", from {dist.name} {dist.version}" if dist is not None else ""
    return f"entry point '{ep.name} = {ep.value}' (group {ep.group}{origin})"


def load_entry_point(group: str, name: str) -> object | None:
    """The object entry point `name` of `group` names; None when no package announces that name.

    A plugin that fails to import is a `UserError` naming the entry point: the user's fix is to
    repair or uninstall that package, and its traceback would only hide that.
    """
    for ep in _entry_points(group):
        if ep.name != name:
            continue
        try:
            obj: object = ep.load()
        except Exception as exc:  # a plugin's import can fail in any way; all of them mean the same
            raise UserError(f"{_describe(ep)} cannot be loaded: {_exception_line(exc)}",
                            fix="fix or uninstall the package that provides it") from None
        return obj
    return None


def _exception_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# "module:attr" strings


class ObjectNotFound(UserError):
    """A `module:attr` string names nothing importable. `problem` and `fix` say which part is wrong."""


def load_object(spec: str, folder: Path | None = None) -> object:
    """The object `spec` ("package.module:attr", attr may be dotted) names.

    The module is searched in `folder` first (an experiment's own folder, so a `scorers.py` next to
    the YAML works without installing anything), then on sys.path. The folder is on the path only
    while the module is imported. Raises `ObjectNotFound` (no file or key: the caller knows those).
    """
    module_name, colon, attr = spec.partition(":")
    if not colon or not module_name.strip() or not attr.strip():
        raise ObjectNotFound(f"{spec!r} is not module:function",
                             fix="write package.module:function, e.g. scorers:score for a scorers.py next to the "
                                 "experiment file")
    module = _import(module_name.strip(), folder)
    value: object = module
    for part in attr.strip().split("."):
        if not hasattr(value, part):
            where = getattr(module, "__file__", None) or module_name
            raise ObjectNotFound(f"module {module_name!r} ({where}) has no attribute {attr!r}",
                                 fix=f"define {attr} there or correct the name after the colon")
        value = getattr(value, part)
    return value


def _import(module_name: str, folder: Path | None) -> ModuleType:
    top = module_name.split(".")[0]
    local = _local_spec(top, folder)
    if local is not None:
        loaded = sys.modules.get(top)
        if loaded is not None and getattr(loaded.__spec__, "origin", None) != local.origin:
            # Another experiment's folder had a module of the same name (tests, notebooks): this
            # experiment means its own file. Code holding the old module keeps it.
            for name in [n for n in sys.modules if n == top or n.startswith(top + ".")]:
                del sys.modules[name]
    try:
        with _first_on_path(folder if local is not None else None):
            return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            searched = f"{folder} and sys.path" if folder is not None else "sys.path"
            raise ObjectNotFound(f"module {module_name!r} not found (searched {searched})",
                                 fix=f"put {module_name.replace('.', '/')}.py next to the experiment file or "
                                     "install the package that has it") from None
        raise ObjectNotFound(f"module {module_name!r} cannot be imported: {_exception_line(exc)}",
                             fix="install what it imports") from None
    except Exception as exc:  # the module's own code failed while importing: a SyntaxError, a bad import
        raise ObjectNotFound(f"module {module_name!r} cannot be imported: {_exception_line(exc)}",
                             fix="fix the module so that it imports") from None


def _local_spec(top: str, folder: Path | None) -> importlib.machinery.ModuleSpec | None:
    if folder is None:
        return None
    importlib.invalidate_caches()  # the file may be newer than the finder's cached directory listing
    return importlib.machinery.PathFinder.find_spec(top, [str(folder)])


@contextlib.contextmanager
def _first_on_path(folder: Path | None) -> Iterator[None]:
    if folder is None or str(folder) in sys.path:
        yield
        return
    sys.path.insert(0, str(folder))
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(str(folder))


# optional dependencies


class MissingDependency(UserError):
    """An optional dependency is not installed; the fix is the pip command that installs it."""


DISTRIBUTION = "llm-runner"


def _pinned(package: str) -> str:
    """`package` as this project's own requirements pin it (xllamacpp==...), so the hint installs what works."""
    try:
        requirements = importlib.metadata.requires(DISTRIBUTION) or []
    except importlib.metadata.PackageNotFoundError:
        return package
    for requirement in requirements:
        spec, _, marker = requirement.partition(";")
        name = re.split(r"[\s\[<>=!~(]", spec.strip(), maxsplit=1)[0]
        if not marker and _canonical(name) == _canonical(package):
            return spec.strip().replace(" ", "")
    return package


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pip(install: str, *options: str) -> str:
    # A bare package gets this project's pin; brackets (a glob) and >, < (redirects) need quotes.
    target = install if "[" in install else _pinned(install)
    if not re.fullmatch(r"[A-Za-z0-9._=-]+", target):
        target = f"'{target}'"
    return " ".join(["pip install", *options, target])


def _missing(module: str, install: str, purpose: str, note: str | None) -> MissingDependency:
    return MissingDependency(f"{purpose} needs {module}, which is not installed",
                             fix=_pip(install) + (f", or {note}" if note else ""))


def require(module: str, install: str, purpose: str, *, note: str | None = None) -> ModuleType:
    """Import an optional dependency, or raise `MissingDependency` saying how to install it.

    `install` is what to give pip: a package (`xllamacpp`, shown with this project's pin of it) or
    this project with an extra (`llm-runner[quantize]`); `purpose` says what needs it, e.g.
    "deriving Q8_0".
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:  # not installed, or installed without what it needs (a shared library)
        if exc.name is not None and (module == exc.name or module.startswith(exc.name + ".")):
            raise _missing(module, install, purpose, note) from None
        raise UserError(f"{module} is installed but cannot be imported: {_exception_line(exc)}",
                        fix=f"reinstall it: {_pip(install, '--force-reinstall')}") from None


def require_installed(module: str, install: str, purpose: str, *, note: str | None = None) -> None:
    """Like `require`, without importing: for modules that only a child process imports."""
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package missing, or a module without a spec
        found = False
    if not found:
        raise _missing(module, install, purpose, note)
