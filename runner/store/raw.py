"""The raw response, stored once: the answer's text lives in `jobs.text`, so the stored JSON carries a
marker where the text stood and `restore_text` puts it back.

Before this, a 5 KB answer was stored twice (the text column and inside response_json), which made
the raw exchange most of a store's size. The marker replaces any string in the response equal to the
text, wherever the backend's shape puts it (OpenAI's choices[0].message.content, Ollama's
message.content, a completion's choices[0].text), so nothing here knows the shapes. Stores written
before hold the whole response; `restore_text` returns those as they are.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

TEXT_MARKER: dict[str, str] = {"$ref": "jobs.text"}
# The marker costs ~20 bytes: short answers are left where they are.
_MIN_CHARS = 64


def strip_text(response: Any, text: str | None) -> Any:
    """`response` with every string equal to `text` replaced by the marker (a copy; the input is kept)."""
    if text is None or len(text) < _MIN_CHARS:
        return response
    return _strip(response, text)


def restore_text(response: Any, text: str | None) -> Any:
    """The response as the server sent it: every marker replaced by `text`."""
    if text is None:
        return response
    return _map(response, lambda v: text if v == TEXT_MARKER else v)


def _map(value: Any, leaf: Callable[[Any], Any]) -> Any:
    replaced = leaf(value)
    if replaced is not value:
        return replaced
    if isinstance(value, dict):
        return {k: _map(v, leaf) for k, v in value.items()}
    if isinstance(value, list):
        return [_map(v, leaf) for v in value]
    return value


def _strip(value: Any, text: str) -> Any:
    """`strip_text`'s walk, once per stored answer: a container is copied only where a string in it
    changes (the rest is shared with the input, which is never changed), and no callback per value
    (the generic `_map` was half the cost of storing an answer)."""
    if isinstance(value, str):
        return dict(TEXT_MARKER) if value == text else value
    if isinstance(value, dict):
        out: dict[Any, Any] | None = None
        for k, v in value.items():
            new = _strip(v, text)
            if new is not v:
                if out is None:
                    out = dict(value)
                out[k] = new
        return value if out is None else out
    if isinstance(value, list):
        items: list[Any] | None = None
        for i, v in enumerate(value):
            new = _strip(v, text)
            if new is not v:
                if items is None:
                    items = list(value)
                items[i] = new
        return value if items is None else items
    return value
