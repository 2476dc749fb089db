"""The embedded engine reuses its prompt cache: a repeat of one prompt evaluates (almost) no prompt tokens.

Real SmolLM2-135M in llama.cpp, one item, three repeats at temperature 0.7 (distinct seeds, so
the answers may differ while the prompt is the same), one request at a time. llama.cpp reports the
prompt tokens it had to evaluate as `timings.prompt_n`; the rest came from the slot's KV cache.
"""

from __future__ import annotations

import json
import sqlite3

import pytest

from conftest import Project, base_experiment, smollm_path
from runner.cli import main

pytestmark = pytest.mark.model

RULES = " ".join(f"Rule {n}: a service named svc{n} must listen on a port above {1000 + n}." for n in range(12))


def test_a_repeat_of_a_prompt_evaluates_fewer_prompt_tokens_than_the_first(project: Project) -> None:
    exp = base_experiment()
    exp.update(
        backend={"kind": "llamacpp", "n_ctx": 1024, "parallel": 2, "concurrency": 1, "timeout_s": 120},
        models=[{"name": "smollm2", "source": {"path": str(smollm_path())}}],
        prompts={"system": f"You validate service configs. {RULES}",
                 "variants": [{"name": "p", "text": "Is this config valid? Answer JSON. {{ config | tojson }}"}]},
        sampling={"temperature": 0.7, "seed": 1, "max_tokens": 4},
        repeats=3,
    )
    path = project.write(exp)
    assert main(["run", str(path), "--quiet", "--no-report", "--limit", "1"]) == 0
    with sqlite3.connect(project.store_path()) as conn:
        rows = conn.execute("SELECT repeat, prompt_tokens, timings_json, request_json FROM jobs"
                            " ORDER BY repeat").fetchall()
    assert [r[0] for r in rows] == [0, 1, 2]
    evaluated = [json.loads(r[2])["prompt_n"] for r in rows]
    prompt_tokens = rows[0][1]
    assert prompt_tokens > 200  # the rules make a long shared prefix
    assert evaluated[0] > prompt_tokens // 2  # the first is evaluated (nearly) whole
    assert all(n <= 4 for n in evaluated[1:]), evaluated  # repeats: from the KV cache
    assert all(json.loads(r[3])["cache_prompt"] is True for r in rows)  # asked for, not left to the default
