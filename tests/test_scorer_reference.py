"""docs/scorers.md is generated from the scorer models and must match them (regenerate, never edit)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from runner.config import reference
from runner.config.scorer_configs import ScorerBase
from runner.scoring.scorers import OUTCOMES

REPO_ROOT = Path(__file__).resolve().parents[1]
DOC = REPO_ROOT / "docs" / "scorers.md"


def test_docs_scorers_md_is_up_to_date() -> None:
    assert DOC.is_file(), f"docs/scorers.md is missing: run `{reference.COMMAND}`"
    assert DOC.read_text(encoding="utf-8") == reference.render(), (
        f"docs/scorers.md is out of date with runner/config/schema.py: run `{reference.COMMAND}`")


def test_the_documented_command_prints_the_page() -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-m", "runner.config.reference"], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout == reference.render()


@pytest.mark.parametrize("model", reference.scorer_models(), ids=lambda m: m.__name__)
def test_every_scorer_and_key_is_described(model: type[ScorerBase]) -> None:
    assert model.__doc__ and model.__doc__ != ScorerBase.__doc__, f"{model.__name__} needs a docstring"
    section = reference.render().split(f"\n## {reference._tag(model)}\n", 1)[1].split("\n## ", 1)[0]
    for name, field in model.model_fields.items():
        assert name == "type" or field.description, f"{model.__name__}.{name} has no description"
        assert f"\n| `{name}` | " in section, f"{model.__name__}.{name} is not in its table"


def test_every_scorer_type_has_a_section() -> None:
    page = reference.render()
    for tag in ("exact", "regex", "json_field", "binary", "code_tests"):
        assert f"\n## {tag}\n" in page


def test_the_outcomes_listed_are_the_ones_scores_record() -> None:
    assert tuple(reference.OUTCOMES) == OUTCOMES


def test_types_and_defaults_read_as_yaml_users_write_them() -> None:
    page = reference.render()
    assert "| `timeout_s` | number > 0 | `5.0` |" in page
    assert "| `memory_mb` | integer ≥ 32 | `256` |" in page
    assert '| `dangerous` | `"false_positive"` or `"false_negative"` | `"false_positive"` |' in page
    assert "| `field` | string | required |" in page
    assert "| `expected_field` | string | not set |" in page


def test_readme_links_the_reference() -> None:
    assert "(docs/scorers.md)" in (REPO_ROOT / "README.md").read_text(encoding="utf-8")
