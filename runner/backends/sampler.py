"""The sampler settings a server says it uses when a request leaves them out.

An experiment that does not set top_p (say) gets whatever the server defaults to, and servers
differ: llama.cpp's own defaults, an Ollama Modelfile's PARAMETER lines, LM Studio's per-model
preset. Where the server reports them they are recorded with every job as the variant's `sampler`
(llama.cpp's names), with `sampler_source` saying who said so; where it does not, nothing is
recorded and the report says the defaults are unknown.

- llama.cpp: `/props` `default_generation_settings` (its fields under `params` in newer servers,
  at the top level in older ones).
- Ollama: `/api/show` `parameters`, the Modelfile's parameters as text ("temperature 0.7\\ntop_k 40");
  keys it does not list are Ollama's built-in defaults, which its API does not report.
- LM Studio: `/api/v0/models` has no sampler fields, so nothing.
"""

from __future__ import annotations

from typing import Any

# The settings recorded, by llama.cpp's names (Ollama's num_predict is llama.cpp's n_predict).
SAMPLER_KEYS = ("temperature", "top_p", "top_k", "min_p", "typical_p", "repeat_penalty", "repeat_last_n",
                "presence_penalty", "frequency_penalty", "mirostat", "seed", "n_predict")

# The experiment's sampling keys that fall back to a server default when unset, and the server's
# name for each. (`stop` and `response_format` unset mean none, not a hidden default.)
EXPERIMENT_TO_SERVER = {"temperature": "temperature", "top_p": "top_p", "top_k": "top_k", "seed": "seed",
                        "max_tokens": "n_predict"}

_OLLAMA_NAMES = {"num_predict": "n_predict"}


def from_llamacpp_props(props: Any) -> dict[str, Any]:
    """`sampler` and `sampler_source` details from llama.cpp's /props, or {} if it has no such settings."""
    settings = props.get("default_generation_settings") if isinstance(props, dict) else None
    if not isinstance(settings, dict):
        return {}
    nested = settings.get("params")
    params: dict[str, Any] = nested if isinstance(nested, dict) else settings
    sampler = {k: _number(params[k]) for k in SAMPLER_KEYS if _is_number(params.get(k))}
    return {"sampler": sampler, "sampler_source": "llama.cpp /props"} if sampler else {}


def from_ollama_show(show: dict[str, Any]) -> dict[str, Any]:
    """`sampler` and `sampler_source` details from Ollama's /api/show, or {} if it lists no parameters."""
    text = show.get("parameters")
    if not isinstance(text, str):
        return {}
    sampler: dict[str, Any] = {}
    for line in text.splitlines():
        name, _, value = line.strip().partition(" ")  # "top_k                          40": padded columns
        key = _OLLAMA_NAMES.get(name, name)
        if key in SAMPLER_KEYS:
            parsed = _parse(value.strip())
            if parsed is not None:
                sampler[key] = parsed
    return {"sampler": sampler, "sampler_source": "Ollama /api/show"}


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _number(value: int | float) -> int | float:
    # llama.cpp keeps these as float32: 0.95 comes back as 0.949999988079071.
    return float(f"{value:.6g}") if isinstance(value, float) else value


def _parse(text: str) -> int | float | None:
    for kind in (int, float):
        try:
            return _number(kind(text))
        except ValueError:
            continue
    return None
