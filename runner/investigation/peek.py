"""Whether a file is an investigation: what every verb asks first, so it reads the file's top-level
keys and imports nothing else of this stage (the investigation's schema, its overrides and the
planner they need load only for an investigation)."""

from __future__ import annotations

from pathlib import Path

from runner.config.yaml_file import read_yaml_mapping
from runner.errors import UserError


def is_investigation(path: Path | str) -> bool:
    """A YAML file is an investigation when its top level is a mapping with `steps:` (and no `models:`:
    an experiment with a stray `steps` key is the experiment loader's error to report)."""
    path = Path(path)
    if path.suffix not in (".yaml", ".yml") or not path.is_file():
        return False
    try:
        raw = read_yaml_mapping(path)
    except UserError:
        return False  # the experiment loader says what is wrong with it
    return "steps" in raw and "models" not in raw
