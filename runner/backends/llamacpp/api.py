"""llama.cpp server endpoints beyond the OpenAI API: exact prompt token counts.

/apply-template renders chat messages with the model's own template, and /tokenize counts the
result, which equals the `prompt_tokens` the server reports for the same messages (checked in
tests). Used by the embedded backend and by `openai` when it points at a llama.cpp server.
"""

from __future__ import annotations

from typing import Any

from runner.backends.base import BackendError
from runner.backends.http import HttpClient


async def count_prompt_tokens(client: HttpClient, root: str, messages: list[dict[str, str]]) -> int | None:
    """Tokens of the rendered chat prompt, or None when the server has no such endpoints."""
    try:
        rendered: Any = await client.post_json(f"{root}/apply-template", {"messages": messages})
        tokens: Any = await client.post_json(
            f"{root}/tokenize", {"content": rendered["prompt"], "add_special": False, "parse_special": True})
    except (BackendError, KeyError, TypeError):
        return None
    return len(tokens.get("tokens", [])) if isinstance(tokens, dict) else None
