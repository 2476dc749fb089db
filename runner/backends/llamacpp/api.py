"""llama.cpp server endpoints beyond the OpenAI API: the rendered prompt and exact token counts.

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


async def apply_template(client: HttpClient, root: str, messages: list[dict[str, str]]) -> str | None:
    """The prompt as the server renders these messages with the model's chat template; None when the
    server has no /apply-template (not llama.cpp)."""
    try:
        rendered: Any = await client.post_json(f"{root}/apply-template", {"messages": messages})
    except BackendError:
        return None
    prompt = rendered.get("prompt") if isinstance(rendered, dict) else None
    return prompt if isinstance(prompt, str) else None


async def count_text_tokens(client: HttpClient, root: str, text: str) -> int | None:
    """Tokens of an already rendered prompt (special tokens parsed, none added)."""
    try:
        tokens: Any = await client.post_json(f"{root}/tokenize",
                                             {"content": text, "add_special": False, "parse_special": True})
    except BackendError:
        return None
    return len(tokens.get("tokens", [])) if isinstance(tokens, dict) else None
