"""The fault server against a real aiohttp client on loopback: answers, every fault, stats, CLI."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import selectors
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from runner.testing.fault_server import (
    FAULT_KINDS,
    FaultPlan,
    FaultServer,
    ScriptRule,
    ThreadedFaultServer,
    _parse_args,
    answer_text,
    format_retry_after,
)

REPO_ROOT = Path(__file__).resolve().parents[1]

BODY: dict[str, Any] = {
    "model": "fake-model",
    "messages": [
        {"role": "system", "content": "You judge answers."},
        {"role": "user", "content": "Is two plus two four?"},
    ],
    "temperature": 0.0,
    "seed": 1,
}


@pytest.fixture
async def server() -> AsyncIterator[FaultServer]:
    srv = FaultServer()
    await srv.start()
    yield srv
    await srv.stop()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def chat(session: aiohttp.ClientSession, url: str, body: dict[str, Any] | None = None,
               **kwargs: Any) -> tuple[int, dict[str, Any]]:
    async with session.post(url + "/v1/chat/completions", json=body or BODY, **kwargs) as resp:
        return resp.status, await resp.json()


def expected_key(body: dict[str, Any]) -> str:
    # Recomputed here rather than imported so a change in the server's keying is caught.
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


async def test_normal_answer_has_openai_shape(server: FaultServer, session: aiohttp.ClientSession) -> None:
    assert server.url is not None
    status, data = await chat(session, server.url)

    assert status == 200
    assert data["object"] == "chat.completion"
    assert data["model"] == "fake-model"
    assert isinstance(data["id"], str) and isinstance(data["created"], int)
    [choice] = data["choices"]
    assert choice["index"] == 0 and choice["finish_reason"] == "stop"
    assert choice["message"]["role"] == "assistant"
    key = expected_key(BODY)
    text = choice["message"]["content"]
    assert json.loads(text) == {
        "valid": int(key[:8], 16) % 2 == 0,
        "confidence": 0.9,
        "failures": [],
        "echo": key[:12],
    }
    # "You judge answers." (3) + "Is two plus two four?" (5) words in; the answer's own words out.
    assert data["usage"] == {
        "prompt_tokens": 8,
        "completion_tokens": len(text.split()),
        "total_tokens": 8 + len(text.split()),
    }


async def test_answer_is_a_function_of_the_body(server: FaultServer, session: aiohttp.ClientSession) -> None:
    assert server.url is not None
    _, first = await chat(session, server.url)
    _, again = await chat(session, server.url, dict(reversed(BODY.items())))  # key order is irrelevant
    _, other = await chat(session, server.url, {**BODY, "temperature": 0.7})

    text = first["choices"][0]["message"]["content"]
    assert again["choices"][0]["message"]["content"] == text
    other_text = other["choices"][0]["message"]["content"]
    assert json.loads(other_text)["echo"] != json.loads(text)["echo"]
    assert json.loads(other_text)["echo"] == expected_key({**BODY, "temperature": 0.7})[:12]


async def test_models_and_health(server: FaultServer, session: aiohttp.ClientSession) -> None:
    async with session.get(f"{server.url}/v1/models") as resp:
        assert resp.status == 200
        assert await resp.json() == {"object": "list", "data": [{"id": "fake-model", "object": "model"}]}
    async with session.get(f"{server.url}/health") as resp:
        assert resp.status == 200
        assert await resp.json() == {"status": "ok"}


@pytest.mark.parametrize(("retry_after_s", "header"), [(2.0, "2"), (0.5, "0.5")])
async def test_429_carries_retry_after(server: FaultServer, session: aiohttp.ClientSession,
                                       retry_after_s: float, header: str) -> None:
    server.plan = FaultPlan(rate_429=1.0, retry_after_s=retry_after_s)
    async with session.post(f"{server.url}/v1/chat/completions", json=BODY) as resp:
        assert resp.status == 429
        assert resp.headers["Retry-After"] == header
        assert "error" in await resp.json()


async def test_503_carries_retry_after(server: FaultServer, session: aiohttp.ClientSession) -> None:
    server.plan = FaultPlan(rate_503=1.0, retry_after_s=3)
    async with session.post(f"{server.url}/v1/chat/completions", json=BODY) as resp:
        assert resp.status == 503
        assert resp.headers["Retry-After"] == "3"


async def test_500(server: FaultServer, session: aiohttp.ClientSession) -> None:
    server.plan = FaultPlan(rate_500=1.0)
    async with session.post(f"{server.url}/v1/chat/completions", json=BODY) as resp:
        assert resp.status == 500
        assert "Retry-After" not in resp.headers


def test_retry_after_formatting() -> None:
    assert format_retry_after(0) == "0"
    assert format_retry_after(7.0) == "7"
    assert format_retry_after(1.25) == "1.25"


async def test_reset_drops_the_connection(server: FaultServer, session: aiohttp.ClientSession) -> None:
    server.plan = FaultPlan(rate_reset=1.0)
    assert server.url is not None
    with pytest.raises(aiohttp.ClientConnectionError):
        await chat(session, server.url)
    assert server.stats["faults"]["reset"] == 1


class WatchedFaultServer(FaultServer):
    """A FaultServer that tells the test when each chat handler ends, and how (cancelled or returned)."""

    def __init__(self, plan: FaultPlan | None = None) -> None:
        super().__init__(plan)
        self.ended: list[str] = []
        self.handler_ended = asyncio.Event()

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        try:
            response = await super()._chat(request)
        except asyncio.CancelledError:
            self.ended.append("cancelled")
            self.handler_ended.set()
            raise
        self.ended.append(f"returned {response.status}")
        self.handler_ended.set()
        return response


@pytest.fixture
async def watched() -> AsyncIterator[WatchedFaultServer]:
    srv = WatchedFaultServer()
    await srv.start()
    yield srv
    await srv.stop()


# Generous: a handler the server cancels ends within milliseconds of the client's disconnect.
HANDLER_END_TIMEOUT_S = 10.0


async def test_hang_outlasts_a_short_client_timeout(watched: WatchedFaultServer,
                                                    session: aiohttp.ClientSession) -> None:
    # The hang (30 s) far outlasts both the client's timeout and the wait below: a server that does not
    # notice the disconnect is still asleep when the wait gives up, and the test fails.
    watched.plan = FaultPlan(rate_hang=1.0, hang_s=30.0)
    assert watched.url is not None
    started = time.monotonic()
    with pytest.raises(asyncio.TimeoutError):
        await chat(session, watched.url, timeout=aiohttp.ClientTimeout(total=0.2))
    assert time.monotonic() - started < HANDLER_END_TIMEOUT_S  # the client's timeout, not the hang, ended it
    await asyncio.wait_for(watched.handler_ended.wait(), timeout=HANDLER_END_TIMEOUT_S)
    assert watched.ended == ["cancelled"]  # the server noticed the disconnect and stopped hanging
    stats = watched.stats
    assert (stats["requests"], stats["answered"], stats["faults"]["hang"]) == (1, 0, 1)


async def test_abandoned_hang_is_not_counted_as_answered(watched: WatchedFaultServer,
                                                        session: aiohttp.ClientSession) -> None:
    # A hang short enough to end during the wait: a server that let it run on would answer into the
    # void and count it. Waiting for the handler to end (not for a time) makes the check exact.
    watched.plan = FaultPlan(rate_hang=1.0, hang_s=1.0)
    assert watched.url is not None
    with pytest.raises(asyncio.TimeoutError):
        await chat(session, watched.url, timeout=aiohttp.ClientTimeout(total=0.1))
    await asyncio.wait_for(watched.handler_ended.wait(), timeout=HANDLER_END_TIMEOUT_S)
    assert len(watched.ended) == 1
    assert watched.stats["requests"] == 1 and watched.stats["answered"] == 0


async def test_hang_then_answers_a_patient_client(server: FaultServer,
                                                  session: aiohttp.ClientSession) -> None:
    server.plan = FaultPlan(rate_hang=1.0, hang_s=0.1)
    assert server.url is not None
    started = time.monotonic()
    status, data = await chat(session, server.url)
    assert status == 200 and len(data["choices"]) == 1
    assert time.monotonic() - started >= 0.1
    assert server.stats["faults"]["hang"] == 1 and server.stats["answered"] == 1


async def test_latency_is_added(server: FaultServer, session: aiohttp.ClientSession) -> None:
    server.plan = FaultPlan(latency_s=0.15)
    assert server.url is not None
    started = time.monotonic()
    status, _ = await chat(session, server.url)
    assert status == 200
    assert time.monotonic() - started >= 0.15


async def test_malformed_body_is_not_json(server: FaultServer, session: aiohttp.ClientSession) -> None:
    server.plan = FaultPlan(rate_malformed=1.0)
    async with session.post(f"{server.url}/v1/chat/completions", json=BODY) as resp:
        assert resp.status == 200
        text = await resp.text()
    assert text.startswith("{")
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)


async def test_truncated_body_is_an_incomplete_payload(server: FaultServer, session: aiohttp.ClientSession) -> None:
    server.plan = FaultPlan(rate_truncated=1.0)
    async with session.post(f"{server.url}/v1/chat/completions", json=BODY) as resp:
        assert resp.status == 200 and resp.headers["Content-Type"] == "application/json"
        with pytest.raises(aiohttp.ClientPayloadError):
            await resp.read()  # Content-Length promised twice what arrived
    assert server.stats["faults"]["truncated"] == 1 and server.stats["answered"] == 0


async def test_garbage_is_not_http(server: FaultServer, session: aiohttp.ClientSession) -> None:
    server.plan = FaultPlan(rate_garbage=1.0)
    assert server.url is not None
    with pytest.raises(aiohttp.ClientResponseError, match="Bad status line"):
        await chat(session, server.url)
    assert server.stats["faults"]["garbage"] == 1 and server.stats["answered"] == 0


def test_a_plan_without_the_newer_kinds_draws_as_before() -> None:
    # New kinds are appended to FAULT_KINDS, so rates of 0 for them leave every old sequence as it was.
    plan, rng, reference = FaultPlan(rate_429=0.2, rate_reset=0.3, seed=5), random.Random(5), random.Random(5)
    for _ in range(200):
        x = reference.random()
        assert plan.draw(rng) == ("429" if x < 0.2 else "reset" if x < 0.5 else None)


async def test_empty_choices(server: FaultServer, session: aiohttp.ClientSession) -> None:
    server.plan = FaultPlan(rate_empty_choices=1.0)
    assert server.url is not None
    status, data = await chat(session, server.url)
    assert status == 200
    assert data["object"] == "chat.completion"
    assert data["choices"] == []
    assert server.stats["answered"] == 0


@pytest.mark.parametrize("plan_kwargs", [
    {"rate_429": 0.6, "rate_500": 0.5},
    {"rate_503": -0.1},
    {"rate_reset": 1.5},
    {"rate_hang": float("nan")},
    {"latency_s": -1.0},
    {"hold_after": -1},
    {"hold_after": 1.5},
    {"hold_after": True},
    {"hold_after": "3"},
    {"script": ["two plus two"]},
    {"script": {"": ("4", "stop")}},
    {"script": {"two plus two": "4"}},
    {"script": {"two plus two": ("4", "stop", "extra")}},
    {"script": {"two plus two": (4, "stop")}},
    {"script": {"two plus two": ("4", "tool_calls")}},
])
def test_invalid_plans_are_rejected(plan_kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        FaultPlan(**plan_kwargs)


async def test_hold_after_answers_n_then_holds_until_reset(server: FaultServer,
                                                          session: aiohttp.ClientSession) -> None:
    server.plan = FaultPlan(hold_after=2)
    assert server.url is not None
    for i in range(2):
        status, data = await chat(session, server.url, {**BODY, "seed": i})
        assert status == 200 and len(data["choices"]) == 1
    held = [asyncio.create_task(chat(session, server.url, {**BODY, "seed": i})) for i in (2, 3)]
    await asyncio.wait_for(server.wait_held(2), timeout=10)
    assert not any(task.done() for task in held)
    stats = server.stats
    assert (stats["requests"], stats["answered"], stats["held"]) == (4, 2, 2)
    assert stats["faults"] == dict.fromkeys(FAULT_KINDS, 0)  # held requests take no fault draw

    server.reset()  # drops the held requests' connections and starts counting again
    for task in held:
        with pytest.raises(aiohttp.ClientConnectionError):
            await asyncio.wait_for(task, timeout=10)
    status, _ = await chat(session, server.url)
    assert status == 200
    assert (server.stats["requests"], server.stats["answered"], server.stats["held"]) == (1, 1, 0)


async def test_hold_after_zero_holds_the_first_request(server: FaultServer,
                                                       session: aiohttp.ClientSession) -> None:
    server.plan = FaultPlan(hold_after=0)
    assert server.url is not None
    task = asyncio.create_task(chat(session, server.url))
    await asyncio.wait_for(server.wait_held(1), timeout=10)
    assert not task.done()
    assert (server.stats["requests"], server.stats["answered"]) == (1, 0)
    server.reset()
    with pytest.raises(aiohttp.ClientConnectionError):
        await asyncio.wait_for(task, timeout=10)


def test_threaded_wait_held_times_out_when_nothing_is_held() -> None:
    with ThreadedFaultServer(FaultPlan(hold_after=5)) as srv:
        with pytest.raises(TimeoutError):
            srv.wait_held(1, timeout=0.1)
        assert srv.stats()["held"] == 0


def test_rates_summing_to_one_in_float_rounding_are_accepted() -> None:
    plan = FaultPlan(rate_429=0.1, rate_500=0.2, rate_503=0.3, rate_reset=0.3, rate_hang=0.05,
                     rate_malformed=0.05)
    assert sum(plan.rates().values()) > 1.0  # the rounding the tolerance is there for


async def test_assigning_an_invalid_plan_is_rejected(server: FaultServer) -> None:
    plan = FaultPlan()
    plan.rate_500 = 2.0  # bypasses __post_init__
    with pytest.raises(ValueError):
        server.plan = plan


async def test_non_loopback_host_is_refused() -> None:
    with pytest.raises(ValueError):
        await FaultServer().start(host="0.0.0.0")


async def test_fault_rates_over_1000_requests(server: FaultServer) -> None:
    # 0.3 in total spread over every kind that answers at once; 50 expected per kind.
    rates = {"429": 0.05, "500": 0.05, "503": 0.05, "reset": 0.05, "malformed": 0.05, "empty_choices": 0.05}
    server.plan = FaultPlan(**{f"rate_{kind}": rate for kind, rate in rates.items()}, seed=7)
    assert server.url is not None
    url = server.url + "/v1/chat/completions"

    async def one(session: aiohttp.ClientSession, i: int) -> str:
        try:
            async with session.post(url, json={**BODY, "seed": i}) as resp:
                if resp.status != 200:
                    return str(resp.status)
                try:
                    data = await resp.json()
                except json.JSONDecodeError:
                    return "malformed"
                return "normal" if data["choices"] else "empty_choices"
        except aiohttp.ClientConnectionError:
            return "reset"

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=32)) as session:
        seen = Counter(await asyncio.gather(*(one(session, i) for i in range(1000))))

    faults = 1000 - seen["normal"]
    assert 240 <= faults <= 360, seen
    for kind in rates:
        assert 25 <= seen[kind] <= 75, seen
    stats = server.stats
    assert stats["requests"] == 1000
    assert stats["answered"] == seen["normal"]
    assert stats["faults"] == {kind: seen[kind] for kind in FAULT_KINDS}


async def test_same_seed_same_fault_sequence_and_reset_reseeds(server: FaultServer,
                                                               session: aiohttp.ClientSession) -> None:
    assert server.url is not None

    async def statuses() -> list[int]:
        out = []
        for _ in range(40):
            async with session.post(f"{server.url}/v1/chat/completions", json=BODY) as resp:
                out.append(resp.status)
        return out

    server.plan = FaultPlan(rate_500=0.5, seed=3)
    first = await statuses()
    async with session.post(f"{server.url}/_reset") as resp:
        assert resp.status == 200
    assert server.stats["requests"] == 0
    assert await statuses() == first
    assert server.stats["requests"] == 40
    assert 0 < first.count(500) < 40

    server.plan = FaultPlan(rate_500=0.5, seed=4)
    assert await statuses() != first


async def test_stats_count_per_key(server: FaultServer, session: aiohttp.ClientSession) -> None:
    assert server.url is not None
    other = {**BODY, "max_tokens": 5}
    await chat(session, server.url)
    await chat(session, server.url)
    await chat(session, server.url, other)
    server.plan = FaultPlan(rate_500=1.0)
    await chat(session, server.url)
    # A request the server cannot parse is the client's bug: 400, and not counted.
    async with session.post(f"{server.url}/v1/chat/completions", data=b"not json") as resp:
        assert resp.status == 400

    async with session.get(f"{server.url}/_stats") as resp:
        over_http = await resp.json()
    assert over_http == server.stats
    assert over_http["requests"] == 4
    assert over_http["answered"] == 3
    assert over_http["faults"] == {**dict.fromkeys(FAULT_KINDS, 0), "500": 1}
    assert over_http["by_key"] == {
        expected_key(BODY): {"requests": 3, "answered": 2},
        expected_key(other): {"requests": 1, "answered": 1},
    }


def test_threaded_server_serves_synchronous_callers() -> None:
    with ThreadedFaultServer() as srv:
        url = srv.url
        with urllib.request.urlopen(url + "/health", timeout=5) as resp:
            assert json.load(resp) == {"status": "ok"}
        request = urllib.request.Request(url + "/v1/chat/completions", data=json.dumps(BODY).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=5) as resp:
            assert len(json.load(resp)["choices"]) == 1
        assert srv.stats()["answered"] == 1

        srv.set_plan(FaultPlan(rate_503=1.0))
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(request, timeout=5)
        err.value.close()
        assert err.value.code == 503
        srv.reset()
        assert srv.stats()["requests"] == 0
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url + "/health", timeout=5)


def test_invalid_script_names_the_entry_and_the_allowed_finish_reasons() -> None:
    with pytest.raises(ValueError) as err:
        FaultPlan(script={"two plus two": ("4", "tool_calls")})
    assert str(err.value) == ("FaultPlan.script['two plus two'] finish_reason must be one of stop, length, "
                              "got 'tool_calls'")


async def test_script_answers_a_prompt_substring_with_its_text_and_finish_reason(
        server: FaultServer, session: aiohttp.ClientSession) -> None:
    assert server.url is not None
    # The first entry that matches wins; the system prompt counts too; multi-part content is read.
    server.plan = FaultPlan(script={"plus two": ("4 4 4 4", "length"), "two": ("no", "stop"),
                                    "You judge": ("judged", "stop")})
    status, data = await chat(session, server.url)
    assert status == 200
    [choice] = data["choices"]
    assert choice["message"]["content"] == "4 4 4 4"
    assert choice["finish_reason"] == "length"
    assert data["usage"]["completion_tokens"] == 4
    other = {**BODY, "messages": [{"role": "user", "content": [{"type": "text", "text": "one and two"}]}]}
    status, data = await chat(session, server.url, other)
    assert (data["choices"][0]["message"]["content"], data["choices"][0]["finish_reason"]) == ("no", "stop")
    system_only = {**BODY, "messages": [{"role": "system", "content": "You judge answers."},
                                        {"role": "user", "content": "Is it raining?"}]}
    status, data = await chat(session, server.url, system_only)
    assert data["choices"][0]["message"]["content"] == "judged"
    # Unmatched prompts get the usual answer, and the counters count scripted answers as answered.
    unmatched = {**BODY, "messages": [{"role": "user", "content": "Is it raining?"}]}
    status, data = await chat(session, server.url, unmatched)
    assert data["choices"][0]["message"]["content"] == answer_text(expected_key(unmatched))
    assert data["choices"][0]["finish_reason"] == "stop"
    assert server.stats["answered"] == 4


async def test_a_scripted_request_still_takes_its_fault_draw(server: FaultServer,
                                                             session: aiohttp.ClientSession) -> None:
    assert server.url is not None
    server.plan = FaultPlan(rate_500=1.0, script={"two": ("4", "stop")})
    status, _ = await chat(session, server.url)
    assert status == 500
    assert server.stats["faults"]["500"] == 1


async def test_rules_match_request_parameters_before_the_script_and_bodies_are_recorded(
        server: FaultServer, session: aiohttp.ClientSession) -> None:
    assert server.url is not None
    # A planted effect of a sampling setting: the same prompt answers differently at temperature 0.7, seed 3.
    server.plan = FaultPlan(script={"two": ("4", "stop")}, record_bodies=True,
                            rules=[ScriptRule(("5", "stop"), {"temperature": 0.7, "seed": 3}, "plus two"),
                                   ScriptRule(("6", "length"), {"temperature": 0.7})])
    texts = []
    for params in ({}, {"temperature": 0.7, "seed": 3}, {"temperature": 0.7, "seed": 4}, {"temperature": 0.0}):
        _, data = await chat(session, server.url, {**BODY, **params})
        texts.append((data["choices"][0]["message"]["content"], data["choices"][0]["finish_reason"]))
    assert texts == [("4", "stop"), ("5", "stop"), ("6", "length"), ("4", "stop")]
    assert [b.get("temperature") for b in server.stats["bodies"]] == [BODY.get("temperature"), 0.7, 0.7, 0.0]
    server.plan = FaultPlan()
    server.reset()
    await chat(session, server.url)
    assert server.stats["bodies"] == []  # off by default


def test_cli_takes_rules_as_json() -> None:
    plan, _ = _parse_args(["--rules", '[{"params": {"seed": 3}, "answer": ["5", "stop"]}]', "--record-bodies"])
    assert plan.rules == [ScriptRule(("5", "stop"), {"seed": 3})] and plan.record_bodies
    assert plan.scripted({**BODY, "seed": 3}) == ("5", "stop") and plan.scripted(BODY) is None


def test_cli_takes_a_script_as_json() -> None:
    plan, _ = _parse_args(["--script", '{"two plus two": ["4", "length"]}'])
    assert plan.script == {"two plus two": ["4", "length"]}
    assert plan.scripted(BODY) == ("4", "length")
    assert _parse_args([])[0].script == {}


def test_cli_takes_hold_after_as_a_whole_number() -> None:
    assert _parse_args(["--hold-after", "3"])[0].hold_after == 3
    assert _parse_args([])[0].hold_after is None


def test_cli_prints_url_and_serves_until_terminated() -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT),
                                                                      os.environ.get("PYTHONPATH")]))}
    proc = subprocess.Popen(
        [sys.executable, "-m", "runner.testing.fault_server", "--port", "0", "--rate-429", "1",
         "--retry-after-s", "4", "--seed", "0"],
        cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            assert sel.select(timeout=10), "fault server CLI printed nothing within 10 s"
        line = proc.stdout.readline().strip()
        assert line.startswith("listening on http://127.0.0.1:"), (line, proc.poll())
        url = line.removeprefix("listening on ")

        with urllib.request.urlopen(url + "/health", timeout=5) as resp:
            assert json.load(resp) == {"status": "ok"}
        request = urllib.request.Request(url + "/v1/chat/completions", data=json.dumps(BODY).encode(),
                                         headers={"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(request, timeout=5)
        err.value.close()
        assert err.value.code == 429 and err.value.headers["Retry-After"] == "4"
    finally:
        proc.terminate()
        returncode = proc.wait(timeout=10)
        stderr = proc.stderr.read() if proc.stderr else ""
        if proc.stderr:
            proc.stderr.close()
        if proc.stdout:
            proc.stdout.close()
    assert returncode == 0, stderr
