"""The report's note on sampling the experiment left to the server, and what the server used.

A sampling key the experiment does not set is not sent, so the server's default applies, and the
defaults differ between servers (llama.cpp: top_p 0.95, top_k 40; an Ollama Modelfile may say
temperature 0.7). The backends record what the server reports as each variant's `sampler` (see
`runner.backends.sampler`); this note names the keys left unset and, per variant, the values the
server used for them, or says that the server does not report its defaults.
"""

from __future__ import annotations

from typing import Any

from runner.analysis.results import ResultSet
from runner.backends.sampler import EXPERIMENT_TO_SERVER
from runner.plan.variant import Variant

# Who answered, for a variant whose server reported nothing (its details have no sampler_source).
_SERVER_NAMES = {"llamacpp": "llama.cpp", "ollama": "Ollama", "lmstudio": "LM Studio"}
_RANDOM_SEEDS = (-1, 0xFFFFFFFF)  # llama.cpp's LLAMA_DEFAULT_SEED, and -1 as requests write it


def sampling_note(results: ResultSet) -> str | None:
    """"sampling left to the server: top_p, top_k; llama.cpp used top_p 0.95, top_k 40 (smollm2 Q4_1)",
    or None when the jobs that ran set every key (or none ran)."""
    left: dict[str, None] = {}  # an ordered set, in the experiment's key order
    ran: dict[Variant, tuple[dict[str, None], dict[str, Any]]] = {}
    # The jobs of one cell and repeat share one params dict: its unset keys are found once.
    unset: dict[int, list[str]] = {}
    for cell in results.cells:
        for result in cell.results:
            if result.record is None:
                continue
            keys, details = ran.setdefault(cell.cell.variant, ({}, {}))
            params = result.job.params
            missing = unset.get(id(params))
            if missing is None:
                missing = unset[id(params)] = [k for k in EXPERIMENT_TO_SERVER if params.get(k) is None]
            for key in missing:
                keys[key] = left[key] = None
            stored = result.record.variant or {}
            if not details or ("sampler" in stored and "sampler" not in details):
                details.update(stored)
    if not left:
        return None
    default_server = _SERVER_NAMES.get(results.plan.experiment.backend.kind, "the server")
    groups: dict[tuple[Any, ...], list[str]] = {}
    for variant, (keys, details) in ran.items():
        if keys:
            groups.setdefault(_used(list(keys), details, default_server), []).append(variant.label)
    parts = [_say(group, labels, len(groups) > 1) for group, labels in groups.items()]
    return f"sampling left to the server: {', '.join(left)}; " + "; ".join(parts)


def _used(keys: list[str], details: dict[str, Any], default_server: str) -> tuple[Any, ...]:
    """(server, reported anything, ((key, value), ...) it used, keys it does not report)."""
    sampler = details.get("sampler")
    source = details.get("sampler_source")
    if not isinstance(sampler, dict):
        return default_server, False, (), tuple(keys)
    server = source.rsplit(" ", 1)[0] if isinstance(source, str) and " " in source else default_server
    values = tuple((k, sampler[EXPERIMENT_TO_SERVER[k]]) for k in keys if EXPERIMENT_TO_SERVER[k] in sampler)
    said = {k for k, _ in values}
    return server, True, values, tuple(k for k in keys if k not in said)


def _say(group: tuple[Any, ...], labels: list[str], name_variants: bool) -> str:
    server, reported, values, missing = group
    if not values and not reported and server == "llama.cpp":
        # llama.cpp always reports them (/props): these results were stored before the runner recorded them.
        text = "the server's defaults were not recorded with these results (stored by an earlier runner)"
        return f"{text} ({', '.join(labels)})" if name_variants else text
    if not values:
        text = f"{server} does not report {', '.join(missing) if reported else 'its defaults'}"
        return f"{text} ({', '.join(labels)})" if name_variants else text
    text = f"{server} used " + ", ".join(f"{k} {_value(k, v)}" for k, v in values)
    if missing:
        text += f" and does not report {', '.join(missing)}"
    return f"{text} ({', '.join(labels)})"


def _value(key: str, value: Any) -> str:
    if key == "seed" and value in _RANDOM_SEEDS:
        return "random"  # a new seed per request
    if key == "max_tokens" and isinstance(value, int | float) and value < 0:
        return "unlimited"  # until the model stops or the context is full
    return f"{value:g}" if isinstance(value, float) else str(value)
