"""JSONL datasets: every row checked before any job runs, errors naming file, line and field."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from runner.errors import ConfigError


@dataclass(frozen=True)
class Item:
    id: str
    fields: dict[str, Any]

    def label(self, field: str | None) -> Any:
        return self.fields.get(field) if field else None


def load_items(path: Path, *, id_field: str, label_field: str | None, config_file: Path,
               config_key: str = "dataset.path") -> list[Item]:
    if not path.is_file():
        raise ConfigError(f"dataset file {path} not found", file=config_file, key=config_key,
                          fix="correct the path (relative to the experiment file)")
    items: list[Item] = []
    seen: set[str] = set()
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"not valid JSON ({exc.msg})", file=where, key=None,
                                  fix="write one JSON object per line") from None
            if not isinstance(row, dict):
                raise ConfigError(f"row is a {type(row).__name__}, not an object", file=where,
                                  fix="write one JSON object per line")
            if id_field not in row:
                raise ConfigError(f"missing id field {id_field!r}", file=where, key=id_field,
                                  fix=f"add it, or set dataset.id_field in {config_file}")
            item_id = str(row[id_field])
            if item_id in seen:
                raise ConfigError(f"duplicate id {item_id!r}", file=where, key=id_field,
                                  fix="give every row a unique id")
            if label_field and label_field not in row:
                raise ConfigError(f"missing label field {label_field!r}", file=where, key=label_field,
                                  fix=f"add it, or set dataset.label_field in {config_file}")
            seen.add(item_id)
            items.append(Item(item_id, row))
    if not items:
        raise ConfigError(f"dataset {path} has no rows", file=config_file, key=config_key,
                          fix="add at least one JSON object line")
    return items


def load_context_file(path: Path, *, config_file: Path, key: str) -> Any:
    """Extra template variables: a JSONL file becomes a list of rows; JSON and YAML load as is."""
    if not path.is_file():
        raise ConfigError(f"file {path} not found", file=config_file, key=key,
                          fix="correct the path (relative to the experiment file)")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix == ".jsonl":
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        if path.suffix == ".json":
            return json.loads(text)
        return yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot parse {path}: {exc}", file=config_file, key=key,
                          fix="fix the file's syntax") from None
