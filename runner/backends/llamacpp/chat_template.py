"""A model's chat template rendered here, without a server: for `runner plan --show`, before anything
runs. The template is the GGUF file's own (`tokenizer.chat_template`, Hugging Face's Jinja2), run
in an immutable sandbox, as llama.cpp's own Jinja engine runs it; a test checks the result against
the server's /apply-template on SmolLM2.
"""

from __future__ import annotations

from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

RENDERED_BY = "client-side (the GGUF's tokenizer.chat_template)"


def _raise(message: str) -> Any:
    raise jinja2.TemplateError(message)


_ENV = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
_ENV.globals["raise_exception"] = _raise


def render_chat(template: str, messages: list[dict[str, str]], *, bos_token: str | None = None,
                eos_token: str | None = None) -> str | None:
    """The prompt the template makes of these messages, ready for the model's answer; None if the
    template cannot be rendered here."""
    try:
        return _ENV.from_string(template).render(messages=messages, add_generation_prompt=True,
                                                  bos_token=bos_token or "", eos_token=eos_token or "")
    except jinja2.TemplateError:
        return None
