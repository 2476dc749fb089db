"""The embedded engine reuses its prompt cache: a repeat of one prompt evaluates (almost) no prompt tokens.

Real SmolLM2-135M in llama.cpp, one item, three repeats at temperature 0.7 (distinct seeds, so
the answers may differ while the prompt is the same), one request at a time. llama.cpp reports the
prompt tokens it had to evaluate as `timings.prompt_n`; the rest came from the slot's KV cache.
"""

from __future__ import annotations

import json
import sqlite3
import tempfile
from pathlib import Path

import pytest

from conftest import Project, base_experiment, smollm_path
from runner.cli import main

pytestmark = pytest.mark.model

RULES = " ".join(f"Rule {n}: a service named svc{n} must listen on a port above {1000 + n}." for n in range(12))


def _experiment(project: Project, *, concurrency: int, temperature: float, repeats: int) -> Path:
    """SmolLM2 on 2 slots, a long shared system prompt (the rules) before each item's config."""
    exp = base_experiment()
    exp.update(
        backend={"kind": "llamacpp", "n_ctx": 1024, "parallel": 2, "concurrency": concurrency, "timeout_s": 120},
        models=[{"name": "smollm2", "source": {"path": str(smollm_path())}}],
        prompts={"system": f"You validate service configs. {RULES}",
                 "variants": [{"name": "p", "text": "Is this config valid? Answer JSON. {{ config | tojson }}"}]},
        sampling={"temperature": temperature, "seed": 1, "max_tokens": 4},
        repeats=repeats,
    )
    return project.write(exp)


def test_a_repeat_of_a_prompt_evaluates_fewer_prompt_tokens_than_the_first(project: Project) -> None:
    path = _experiment(project, concurrency=1, temperature=0.7, repeats=3)
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


@pytest.mark.parametrize("concurrency", [2, 4])
def test_side_by_side_slots_evaluate_the_shared_prompt_once(project: Project, tmp_path: Path, concurrency: int,
                                                         capsys: pytest.CaptureFixture[str],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Two slots, three items x two repeats: the first job evaluates the long shared system prompt, its slot
    is copied into the other, and every later job evaluates only its own item (repeats: nothing). Asked
    for more concurrency than slots, the runner still keeps one worker to a slot; the slots' KV file is
    gone with the server."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    path = _experiment(project, concurrency=concurrency, temperature=0.0, repeats=2)
    assert main(["run", str(path), "--quiet", "--no-report", "--limit", "3"]) == 0
    with sqlite3.connect(project.store_path()) as conn:
        rows = conn.execute("SELECT item_id, repeat, prompt_tokens, timings_json FROM jobs"
                            " ORDER BY finished_at, item_id, repeat").fetchall()
    assert len(rows) == 6
    evaluated = {(r[0], r[1]): json.loads(r[3])["prompt_n"] for r in rows}
    prompt_tokens = min(r[2] for r in rows)
    assert prompt_tokens > 200
    whole = [key for key, n in evaluated.items() if n > prompt_tokens // 2]
    assert len(whole) == 1, evaluated  # one slot evaluated the shared prompt; the other got a copy
    assert all(n <= 4 for (item, repeat), n in evaluated.items() if repeat == 1), evaluated  # repeats
    assert sum(evaluated.values()) < prompt_tokens + 4 * 40, evaluated  # the rest: each item's own tokens
    assert list(scratch.iterdir()) == []  # the slot folder and its KV file went with the server
    assert all("id_slot" not in json.loads(r[0]) for r in conn_rows(project))  # scheduling, not the question
    # The report says the share per variant: 1 - evaluated / prompt tokens, over the jobs sent.
    capsys.readouterr()
    assert main(["report", str(path), "--limit", "3", "--format", "json"]) == 0
    shares = json.loads(capsys.readouterr().out)["prompt_cache"]
    total = sum(r[2] for r in rows)
    assert shares == [{"variant": "smollm2", "jobs": 6, "prompt_tokens": total, "evaluated": sum(evaluated.values()),
                       "hit_share": 1 - sum(evaluated.values()) / total}]
    assert main(["report", str(path), "--limit", "3"]) == 0
    assert (f"prompt cache (share of prompt tokens taken from the KV cache, not evaluated; llama.cpp "
            f"timings.prompt_n): smollm2 {1 - sum(evaluated.values()) / total:.2f} of {total:,} prompt tokens (6 jobs)"
            in capsys.readouterr().out)
    page = tmp_path / "report.html"
    assert main(["report", str(path), "--limit", "3", "--format", "html", "--output", str(page)]) == 0
    share = 1 - sum(evaluated.values()) / total
    assert f"; prompt tokens taken from the KV cache: smollm2 {share:.2f} of {total:,}</p>" in page.read_text("utf-8")


def conn_rows(project: Project) -> list[tuple[str]]:
    with sqlite3.connect(project.store_path()) as conn:
        return conn.execute("SELECT request_json FROM jobs").fetchall()
