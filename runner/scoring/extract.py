"""Find the JSON a model meant to give, in whatever it wrapped it in.

Small models put JSON in fenced blocks, after a sentence of prose, before an explanation, or
more than once (chain-of-thought drafts, then the answer). Candidates are collected in order of
appearance; `prefer_key` picks the last object carrying that key, since a final answer comes last.
"""

from __future__ import annotations

import json
import re
from typing import Any

_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.DOTALL)
_DECODER = json.JSONDecoder()


def json_candidates(text: str) -> list[Any]:
    found: list[Any] = []
    for block in _FENCE.findall(text):
        try:
            found.append(json.loads(block.strip()))
        except json.JSONDecodeError:
            found.extend(_scan(block))
    if found:
        return found
    stripped = text.strip()
    try:
        return [json.loads(stripped)] if stripped else []
    except json.JSONDecodeError:
        return _scan(text)


def _scan(text: str) -> list[Any]:
    """Every top-level JSON object or array that decodes, left to right, skipping what each covers."""
    out: list[Any] = []
    pos = 0
    while True:
        starts = [i for i in (text.find("{", pos), text.find("[", pos)) if i != -1]
        if not starts:
            return out
        start = min(starts)
        try:
            value, end = _DECODER.raw_decode(text, start)
        except json.JSONDecodeError:
            if not _closes(text, start):
                return out  # the value runs to the end of the text (cut off): what is inside is no answer
            pos = start + 1
            continue
        out.append(value)
        pos = end


def _closes(text: str, start: int) -> bool:
    """Whether the bracket opened at `start` is closed later, minding strings and escapes."""
    depth = 0
    in_string = escaped = False
    for ch in text[start:]:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "{[":
            depth += 1
        elif ch in "}]":
            depth -= 1
            if depth == 0:
                return True
    return False


def extract_json(text: str, prefer_key: str | None = None) -> Any | None:
    candidates = json_candidates(text)
    objects = [c for c in candidates if isinstance(c, dict)]
    if prefer_key is not None:
        head = prefer_key.split(".")[0]
        keyed = [o for o in objects if head in o]
        if keyed:
            return keyed[-1]
    if objects:
        return objects[0]
    return candidates[0] if candidates else None


_MISSING = object()


def get_path(data: Any, dotted: str) -> Any:
    """`a.b.0.c` into nested dicts and lists; returns the module's MISSING sentinel when absent."""
    current = data
    for part in dotted.split("."):
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return _MISSING
    return current


def is_missing(value: Any) -> bool:
    return value is _MISSING
