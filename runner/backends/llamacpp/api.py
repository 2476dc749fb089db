"""llama.cpp server endpoints beyond the OpenAI API: the rendered prompt and its tokens.

/apply-template renders chat messages with the model's own template, and /tokenize splits text with
the model's tokenizer; their composition equals the `prompt_tokens` the server reports for the same
messages (checked in tests). Used by the embedded backend and by `openai` when it points at a
llama.cpp server.
"""

from __future__ import annotations

from typing import Any

from runner.backends.base import BackendError
from runner.backends.http import HttpClient


async def count_prompt_tokens(client: HttpClient, root: str, messages: list[dict[str, str]]) -> int | None:
    """Tokens of the rendered chat prompt, or None when the server has no such endpoints."""
    prompt = await apply_template(client, root, messages)
    tokens = None if prompt is None else await tokenize(client, root, prompt)
    return None if tokens is None else len(tokens)


async def apply_template(client: HttpClient, root: str, messages: list[dict[str, str]]) -> str | None:
    """The prompt text the server builds from these messages with the model's chat template."""
    try:
        rendered: Any = await client.post_json(f"{root}/apply-template", {"messages": messages})
    except BackendError:
        return None
    prompt = rendered.get("prompt") if isinstance(rendered, dict) else None
    return prompt if isinstance(prompt, str) else None


async def tokenize(client: HttpClient, root: str, text: str) -> list[int] | None:
    """The model's token ids of `text` as the server splits it for a chat prompt: special tokens
    written in the text are parsed as such (the rendered template is full of them), none are added."""
    try:
        answer: Any = await client.post_json(f"{root}/tokenize",
                                             {"content": text, "add_special": False, "parse_special": True})
    except BackendError:
        return None
    tokens = answer.get("tokens") if isinstance(answer, dict) else None
    if not isinstance(tokens, list) or not all(isinstance(t, int) for t in tokens):
        return None  # with_pieces or another server's shape: not token ids
    return tokens


SHARED_SLOT_FILE = "shared-prefix.bin"


async def share_slot_cache(client: HttpClient, root: str) -> int:
    """Copy the KV cache of the idle slot holding the longest prompt into every slot that has served
    nothing yet (`/slots` save then restore; the server needs `--slot-save-path`). Returns how many
    slots were filled: 0 when the server cannot, or nothing is worth copying.

    Why: llama.cpp reuses a prompt's KV cache only within a slot. With N slots, items sharing a long
    system prompt (rules, few-shot examples) each pay its full evaluation once per slot; on a CPU
    that is seconds per slot (SmolLM2-135M on 2 cores: ~570 tokens in ~2 s), against milliseconds to
    copy the slot (13 MB, save 8 ms, restore 3 ms)."""
    try:
        slots: Any = await client.get_json(f"{root}/slots")
    except BackendError:
        return 0
    if not isinstance(slots, list):
        return 0
    idle = [s for s in slots if isinstance(s, dict) and isinstance(s.get("id"), int) and not s.get("is_processing")]
    used = [s for s in idle if isinstance(s.get("n_prompt_tokens"), int) and s["n_prompt_tokens"] > 0]
    # A slot that never served a request (this llama.cpp leaves id_task out; others say -1 and 0 tokens).
    empty = [s["id"] for s in idle if s.get("id_task", -1) == -1 and not s.get("n_prompt_tokens")]
    if not used or not empty:
        return 0
    source = max(used, key=lambda s: int(s["n_prompt_tokens"]))["id"]
    try:
        await client.post_json(f"{root}/slots/{source}?action=save", {"filename": SHARED_SLOT_FILE})
        for target in empty:
            await client.post_json(f"{root}/slots/{target}?action=restore", {"filename": SHARED_SLOT_FILE})
    except BackendError:
        return 0
    return len(empty)
