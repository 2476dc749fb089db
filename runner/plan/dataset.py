"""JSONL datasets: every row checked before any job runs, errors naming file, line and field.

Files are read as UTF-8 with an optional BOM (editors on Windows write one); anything else, or a row
nested too deep for the JSON parser, is one line naming the file and where in it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from runner.config.safe_yaml import MAX_YAML_BYTES, load_yaml
from runner.config.text_files import MAX_DOCUMENT_BYTES, UTF8_BOM, decode_utf8, mib, read_text
from runner.errors import ConfigError


@dataclass(frozen=True)
class Item:
    id: str
    fields: dict[str, Any]

    def label(self, field: str | None) -> Any:
        return self.fields.get(field) if field else None


def _require_regular_file(path: Path, subject: str, config_file: Path, key: str) -> None:
    # A FIFO would block the reader for ever and a device never ends: only regular files are read.
    if path.is_file():
        return
    if path.exists():
        raise ConfigError(f"{subject} is not a regular file (a FIFO, device or folder)", file=config_file, key=key,
                          fix="point it at a regular file")
    raise ConfigError(f"{subject} not found", file=config_file, key=key,
                      fix="correct the path (relative to the experiment file)")


def _lines(fh: BinaryIO) -> Iterator[bytes]:
    """The file's lines as text mode reads them (a lone \\r ends a line too, as plan.size counts them),
    each read at most MAX_DOCUMENT_BYTES + 1 bytes at a time so a huge line is caught, not loaded."""
    for chunk in iter(lambda: fh.readline(MAX_DOCUMENT_BYTES + 1), b""):
        yield from chunk.splitlines(keepends=True)


def load_items(path: Path, *, id_field: str, label_field: str | None, config_file: Path,
               config_key: str = "dataset.path") -> list[Item]:
    _require_regular_file(path, f"dataset file {path}", config_file, config_key)
    items: list[Item] = []
    seen: set[str] = set()
    offset = 0
    with path.open("rb") as fh:  # bytes, so a non-UTF-8 byte can be named with its offset
        for lineno, raw in enumerate(_lines(fh), start=1):
            if len(raw) > MAX_DOCUMENT_BYTES:
                raise ConfigError(f"row is longer than {mib(MAX_DOCUMENT_BYTES)}", file=f"{path}:{lineno}",
                                  fix="shorten it, or move the bulk into a file the row names")
            start, offset = offset, offset + len(raw)
            if lineno == 1 and raw.startswith(UTF8_BOM):
                raw, start = raw[len(UTF8_BOM):], len(UTF8_BOM)
            line = decode_utf8(raw, subject=str(path), file=config_file, key=config_key, offset=start, line=lineno)
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"not valid JSON ({exc.msg})", file=where, key=None,
                                  fix="write one JSON object per line") from None
            except RecursionError:
                raise ConfigError("row is nested too deeply to parse", file=where, fix=_SHALLOWER) from None
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
    _require_regular_file(path, f"file {path}", config_file, key)
    if path.suffix in (".json", ".jsonl"):
        text = read_text(path, what="context file", config_file=config_file, key=key)
    else:
        text = read_text(path, what="YAML context file", limit=MAX_YAML_BYTES, fix=_AS_JSON, config_file=config_file,
                         key=key)
    try:
        if path.suffix == ".jsonl":
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        if path.suffix == ".json":
            return json.loads(text)
        return load_yaml(text, file=path)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"cannot parse {path}: {exc}", file=config_file, key=key,
                          fix="fix the file's syntax") from None
    except RecursionError:
        raise ConfigError(f"{path} is nested too deeply to parse", file=config_file, key=key,
                          fix=_SHALLOWER) from None
    except MemoryError:
        raise ConfigError(f"{path} is too big to load into memory (MemoryError)", file=config_file, key=key,
                          fix="shorten it or split it") from None


_SHALLOWER = "nest its lists and objects less deeply"
_AS_JSON = f"write it as JSON or JSONL ({mib(MAX_DOCUMENT_BYTES)} allowed), or shorten it"
