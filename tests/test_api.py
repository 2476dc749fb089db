"""The public API is what `runner.__all__` lists: sorted, unique, importable, and complete."""

from __future__ import annotations

import importlib
import types

import runner


def test_all_is_sorted_and_unique() -> None:
    assert runner.__all__ == sorted(runner.__all__)
    assert len(runner.__all__) == len(set(runner.__all__))


def test_every_name_in_all_is_importable_from_runner() -> None:
    module = importlib.import_module("runner")
    for name in runner.__all__:
        namespace: dict[str, object] = {}
        exec(f"from runner import {name}", namespace)
        assert namespace[name] is getattr(module, name)


def test_every_public_name_is_in_all() -> None:
    # Like httpx's test: nothing public is exported by accident. Submodules are not API names.
    public = {name for name, value in vars(runner).items()
              if not name.startswith("_") and not isinstance(value, types.ModuleType)}
    assert public == set(runner.__all__)


def test_core_entry_points_are_public() -> None:
    for name in ("load_experiment", "build_plan", "build_report", "render", "build_scorers", "extract_json",
                 "Store", "Plan", "ConfigError"):
        assert name in runner.__all__


def test_version_is_a_string() -> None:
    assert isinstance(runner.__version__, str) and runner.__version__.count(".") >= 1
