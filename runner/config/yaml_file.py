"""A YAML file's top-level mapping, read within the YAML limits, with one-line errors: the experiment
loader's first step, and all that telling an investigation from an experiment needs (without the
config models, the planner or the investigation's own schema)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from runner.config.safe_yaml import MAX_YAML_BYTES, load_yaml
from runner.config.text_files import read_text
from runner.errors import ConfigError


def read_yaml_mapping(path: Path, what: str = "experiment file") -> dict[str, Any]:
    """The file's top-level mapping, read within the YAML limits; one-line errors otherwise."""
    if path.is_dir():
        raise ConfigError(f"a folder, not an {what}" if what[0] in "aeiou" else f"a folder, not a {what}",
                          file=path, fix=f"name the files in it, e.g. {path}/*.yaml")
    if not path.is_file():
        raise ConfigError(f"{what} not found", file=path, fix="check the path")
    text = read_text(path, what=what, limit=MAX_YAML_BYTES,
                     fix="move bulk data into the dataset or a context file")
    raw = load_yaml(text, file=path)
    if raw is None:
        raise ConfigError("the file is empty", file=path,
                          fix="start the file with keys such as name:, models:, prompts:, dataset:")
    if not isinstance(raw, dict):
        raise ConfigError(f"top level is {type(raw).__name__}, not a mapping", file=path,
                          fix="start the file with keys such as name:, models:, prompts:, dataset:")
    return raw
