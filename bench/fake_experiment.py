"""The experiment the fault-server benches share (overhead, read_path, scale): two prompts x two
temperatures over the folder's `data.jsonl`, against the fake model, scored by one binary scorer."""

from __future__ import annotations

from typing import Any


def fake_experiment(name: str, url: str, *, concurrency: int, max_retries: int = 0, repeats: int = 1,
                    seed: int | None = 1, backend: dict[str, Any] | None = None,
                    scorer: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    """`backend` and `scorer` add keys to those blocks; `extra` adds top-level keys (report, limits, ...)."""
    sampling: dict[str, Any] = {"temperature": [0.0, 0.5], **({"seed": seed} if seed is not None else {}),
                                "max_tokens": 16}
    return {
        "name": name,
        "backend": {"kind": "openai", "base_url": f"{url}/v1", "concurrency": concurrency, "max_retries": max_retries,
                    **(backend or {})},
        "models": [{"name": "fake", "id": "fake-model"}],
        "prompts": {"variants": [{"name": "a", "text": "A {{ config | tojson }}"},
                                 {"name": "b", "text": "B {{ config | tojson }}"}]},
        "dataset": {"path": "data.jsonl", "label_field": "valid"},
        "sampling": sampling,
        **({"repeats": repeats} if repeats != 1 else {}),
        "scorers": [{"type": "binary", "field": "valid", **(scorer or {})}],
        **extra,
    }
