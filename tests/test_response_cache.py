"""The response cache shared across experiments: a request two experiments ask is sent once."""

from __future__ import annotations

import sqlite3
from typing import Any

import runner
from conftest import ITEMS, Project, base_experiment
from runner.testing.fault_server import ThreadedFaultServer


def _experiment(url: str, name: str, data: str) -> dict[str, Any]:
    exp = base_experiment(f"{url}/v1")
    exp.update(name=name, dataset={"path": data, "label_field": "valid"}, repeats=1)
    return exp


def test_a_request_asked_by_two_experiments_is_sent_once(project: Project, fault_server: ThreadedFaultServer) -> None:
    # B asks what A asked for 4 of its 6 items (same config under other ids: the item's id is not part
    # of the request) and 2 requests of its own.
    project.write_dataset([{**row, "id": f"other-{row['id']}"} for row in ITEMS[:4]]
                          + [{"id": "new1", "config": {"name": "x", "port": 1}, "valid": True},
                             {"id": "new2", "config": {"name": "y", "port": 2}, "valid": False}], name="b.jsonl")
    a = project.write(_experiment(fault_server.url, "a", "data.jsonl"), name="a.yaml")
    b = project.write(_experiment(fault_server.url, "b", "b.jsonl"), name="b.yaml")
    per_item = 2 * 2  # 2 prompts x 2 temperatures, 1 repeat

    first = runner.run(a)
    assert (first.succeeded, first.failed) == (6 * per_item, 0)
    assert fault_server.stats()["requests"] == 6 * per_item

    second = runner.run(b)
    assert (second.succeeded, second.failed) == (6 * per_item, 0)
    assert fault_server.stats()["requests"] == 6 * per_item + 2 * per_item  # only B's own were sent
    report = runner.report(b)
    assert report.from_cache == 4 * per_item
    assert runner.render(report, "table").endswith(
        "jobs: 24 planned, 24 succeeded, 0 failed, 0 not run; 16 answers from the response cache "
        "(not sent again; --no-cache sends them)\n")
    # Stored like any answer, with no request made for it.
    store = sqlite3.connect(project.store_path("b"))
    assert store.execute("SELECT from_cache, attempts, COUNT(*) FROM jobs GROUP BY from_cache, attempts"
                         " ORDER BY from_cache").fetchall() == [(0, 1, 8), (1, 0, 16)]
    cached_text = dict(store.execute("SELECT item_id, text FROM jobs WHERE from_cache=1"))
    store.close()
    store_a = sqlite3.connect(project.store_path("a"))
    assert set(cached_text.values()) <= {t for (t,) in store_a.execute("SELECT text FROM jobs")}
    store_a.close()

    # --no-cache (with --fresh, which ignores the store) sends every request again.
    assert runner.run(b, fresh=True, cache=False).succeeded == 6 * per_item
    assert fault_server.stats()["requests"] == 6 * per_item + 2 * per_item + 6 * per_item
    assert runner.report(b).from_cache == 0


def test_no_cache_from_the_cli_sends_the_shared_requests(project: Project, fault_server: ThreadedFaultServer) -> None:
    a = project.write(_experiment(fault_server.url, "a", "data.jsonl"), name="a.yaml")
    b = project.write(_experiment(fault_server.url, "b", "data.jsonl"), name="b.yaml")
    assert runner.run(a).succeeded == 24
    from runner.cli import main

    assert main(["run", str(b), "--no-cache", "--quiet", "--no-report"]) == 0
    assert fault_server.stats()["requests"] == 48
    assert runner.report(b).from_cache == 0


def test_the_cache_keeps_the_stores_json_and_gives_the_response_back_whole(tmp_path: Any) -> None:
    # The executor encodes an answer once for the store and the cache: the cached response has the
    # store's marker where the text stood, and a hit gets the text put back.
    from runner.store.database import encode_exchange
    from runner.store.response_cache import ResponseCache

    text = '{"valid": true, "reason": "the port is in range and the name is a plain word"}'
    request = {"model": "m", "messages": [{"role": "user", "content": "é"}]}
    response = {"choices": [{"message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]}
    request_json, response_json, timings_json = encode_exchange(request, response, text, {"prompt_n": 3})
    assert request_json is not None and response_json is not None
    assert text not in response_json  # stored once, in the text column
    cache = ResponseCache.open(tmp_path / "responses.sqlite")
    cache.add("k", request_json, response_json, text, "stop", 5, 7, 0.25, timings_json)
    cache.flush()
    hit = cache.get("k")
    assert hit is not None
    assert (hit.request, hit.response, hit.text, hit.timings) == (request, response, text, {"prompt_n": 3})
    cache.close()


def test_a_cache_from_before_its_scopes_table_is_still_asked(project: Project, fault_server: ThreadedFaultServer,
                                                             monkeypatch: Any, tmp_path: Any) -> None:
    # The executor asks the cache job by job only for a variant whose scope it lists; a cache written
    # before that list existed holds answers of unknown scope, and must still answer them.
    monkeypatch.setenv("RUNNER_RESPONSE_CACHE", str(tmp_path / "old.sqlite"))
    a = project.write(_experiment(fault_server.url, "a", "data.jsonl"), name="a.yaml")
    assert runner.run(a).succeeded == 24
    cache = sqlite3.connect(tmp_path / "old.sqlite")
    cache.execute("DROP TABLE scopes")  # the file as the runner before the scopes table left it
    cache.close()
    project.write_dataset([{**row, "id": f"other-{row['id']}"} for row in ITEMS], name="b.jsonl")
    b = project.write(_experiment(fault_server.url, "b", "b.jsonl"), name="b.yaml")
    assert runner.run(b).succeeded == 24
    assert fault_server.stats()["requests"] == 24  # all of B's from A's answers
    assert runner.report(b).from_cache == 24


def test_the_cache_lists_the_scopes_it_holds_answers_for(tmp_path: Any) -> None:
    from runner.store.response_cache import ResponseCache

    cache = ResponseCache.open(tmp_path / "responses.sqlite")
    assert not cache.holds("scope-a")
    cache.add("k", "{}", "{}", "text", "stop", 1, 1, 0.1, None, "scope-a")
    cache.flush()
    cache.close()
    cache = ResponseCache.open(tmp_path / "responses.sqlite")
    assert (cache.holds("scope-a"), cache.holds("scope-b")) == (True, False)
    cache.close()
