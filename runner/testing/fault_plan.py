"""The fault plan and the deterministic answers of the fault server (see `runner.testing.fault_server`).

Nothing here touches the network: `FaultPlan` says how often each fault happens and draws one per
request from a seeded `random.Random`; `request_key` and `answer_text` are the pure function from a
request body to the answer, so tests can predict what the server will say.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

LOOPBACK = "127.0.0.1"
FAKE_MODEL_ID = "fake-model"

# Order matters: it is the order of the cumulative intervals a draw falls into, so changing it
# changes which request gets which fault for a given seed.
# New kinds go at the end, so that a plan without them draws as before.
FAULT_KINDS: tuple[str, ...] = ("429", "500", "503", "reset", "hang", "malformed", "empty_choices",
                                "truncated", "garbage", "echo_headers", "404", "null_content", "huge")

# Summing a dozen floats can land a hair above 1.0 (0.1 * 10 is not exactly 1.0); that is not a
# user mistake worth rejecting.
_RATE_SUM_TOLERANCE = 1e-9


@dataclass(frozen=True)
class ScriptRule:
    """A scripted answer chosen by the request's parameters as well as its prompt: the request matches
    when every key of `params` is in its body with that value (`{"temperature": 0.7, "seed": 2}`) and
    its messages contain `prompt` ("" matches any). For planted effects of sampling settings."""

    answer: tuple[str, str]  # (text, finish_reason)
    params: Mapping[str, Any] = field(default_factory=dict)
    prompt: str = ""

    def matches(self, body: Mapping[str, Any], prompt: str) -> bool:
        return self.prompt in prompt and all(k in body and body[k] == v for k, v in self.params.items())


@dataclass
class FaultPlan:
    """How often each fault happens, plus timing knobs. Rates are probabilities per request.

    `hold_after=N` is a barrier for tests: the first N chat requests (counted like `stats["requests"]`,
    since the server started or was last reset) are served as the rest of the plan says, and every
    later one is held: never answered, until the server is reset or stopped, which drops its
    connection. Held requests take no fault draw. None (the default) holds nothing.

    `script` chooses the answer for some requests: {substring of the prompt: (text, finish_reason)}.
    A request whose messages contain the substring (the first in the mapping's order that matches)
    is answered with that text and finish reason ("stop" or "length") instead of `answer_text`; a
    scripted request still takes its fault draw. Empty (the default) scripts nothing.

    `rules` are scripted answers matched on the request's parameters too (`ScriptRule`), tried in
    order before `script`. `record_bodies` keeps every chat request's body, in arrival order, in
    `stats["bodies"]` (off by default: a soak of 10,000 requests need not hold them).
    """

    rate_429: float = 0.0
    rate_500: float = 0.0
    rate_503: float = 0.0
    rate_reset: float = 0.0
    rate_hang: float = 0.0
    rate_malformed: float = 0.0
    rate_empty_choices: float = 0.0
    rate_truncated: float = 0.0
    rate_garbage: float = 0.0
    # A 500 whose body echoes the request's headers (a debug page, a proxy): the API key comes back.
    rate_echo_headers: float = 0.0
    # 404 on the chat endpoint only, while /v1/models answers: a wrong base_url path or model id.
    rate_404: float = 0.0
    # A 200 chat completion whose message.content is null (no tool calls, no reasoning).
    rate_null_content: float = 0.0
    # A 200 chat completion of `huge_bytes` bytes, sent chunked (no Content-Length to check first).
    rate_huge: float = 0.0
    huge_bytes: int = 8 * 1024 * 1024
    hang_s: float = 30.0
    retry_after_s: float = 0
    latency_s: float = 0.0
    seed: int = 0
    hold_after: int | None = None
    script: dict[str, tuple[str, str]] = field(default_factory=dict)
    rules: list[ScriptRule] = field(default_factory=list)
    record_bodies: bool = False
    # The model /v1/models lists: another id plays a server that serves another model (a pool's odd one out).
    model_id: str = FAKE_MODEL_ID

    def __post_init__(self) -> None:
        self.validate()

    def rates(self) -> dict[str, float]:
        """Rate per fault kind, in draw order."""
        return {kind: float(getattr(self, _rate_field(kind))) for kind in FAULT_KINDS}

    def validate(self) -> None:
        """Raise ValueError unless every rate is in [0, 1], they sum to at most 1, times are >= 0 and
        hold_after is None or a whole number >= 0."""
        rates = self.rates()
        for kind, rate in rates.items():
            # `not 0 <= rate` also rejects NaN, which would otherwise silently never fire.
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"FaultPlan.{_rate_field(kind)} must be between 0 and 1, got {rate!r}")
        total = sum(rates.values())
        if total > 1.0 + _RATE_SUM_TOLERANCE:
            raise ValueError(f"FaultPlan rates must sum to at most 1, got {total!r} ({rates})")
        if isinstance(self.huge_bytes, bool) or not isinstance(self.huge_bytes, int) or self.huge_bytes < 0:
            raise ValueError(f"FaultPlan.huge_bytes must be an integer >= 0, got {self.huge_bytes!r}")
        for name in ("hang_s", "retry_after_s", "latency_s"):
            value = float(getattr(self, name))
            if not (value >= 0.0 and math.isfinite(value)):
                raise ValueError(f"FaultPlan.{name} must be a finite number >= 0, got {value!r}")
        hold = self.hold_after
        # bool is an int subclass, and True would silently mean "hold after one request".
        if hold is not None and (isinstance(hold, bool) or not isinstance(hold, int) or hold < 0):
            raise ValueError(f"FaultPlan.hold_after must be None or an integer >= 0, got {hold!r}")
        self._validate_script()

    def _validate_script(self) -> None:
        if not isinstance(self.script, Mapping):
            raise ValueError(f"FaultPlan.script must be a mapping of prompt substring to (text, finish_reason), "
                             f"got {self.script!r}")
        for needle, answer in self.script.items():
            if not isinstance(needle, str) or not needle:
                raise ValueError(f"FaultPlan.script keys must be non-empty strings, got {needle!r}")
            # A list is what JSON (the command line's --script) makes of a pair.
            if not (isinstance(answer, tuple | list) and len(answer) == 2 and isinstance(answer[0], str)):
                raise ValueError(f"FaultPlan.script[{needle!r}] must be (text, finish_reason), got {answer!r}")
            if answer[1] not in SCRIPT_FINISH_REASONS:
                raise ValueError(f"FaultPlan.script[{needle!r}] finish_reason must be one of "
                                 f"{', '.join(SCRIPT_FINISH_REASONS)}, got {answer[1]!r}")
        for i, rule in enumerate(self.rules):
            answer = rule.answer if isinstance(rule, ScriptRule) else None
            if not (isinstance(answer, tuple | list) and len(answer) == 2 and isinstance(answer[0], str)
                    and answer[1] in SCRIPT_FINISH_REASONS and isinstance(rule.params, Mapping)):
                raise ValueError(f"FaultPlan.rules[{i}] must be a ScriptRule with answer (text, stop or length) "
                                 f"and params a mapping, got {rule!r}")

    def scripted(self, body: Mapping[str, Any]) -> tuple[str, str] | None:
        """The scripted (text, finish_reason) for a request body, or None to answer as usual."""
        if not self.script and not self.rules:
            return None
        prompt = "\n".join(message_text(m.get("content")) for m in body.get("messages", []) if isinstance(m, dict))
        for rule in self.rules:
            if rule.matches(body, prompt):
                return rule.answer[0], rule.answer[1]
        for needle, (text, finish_reason) in self.script.items():
            if needle in prompt:
                return text, finish_reason
        return None

    def draw(self, rng: random.Random) -> str | None:
        """Pick the fault for one request (None = answer normally), consuming exactly one draw."""
        x = rng.random()
        edge = 0.0
        for kind, rate in self.rates().items():
            edge += rate
            if x < edge:
                return kind
        return None


SCRIPT_FINISH_REASONS = ("stop", "length")


def message_text(content: Any) -> str:
    """A message's text: a string, or the text parts of OpenAI's multi-part content."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(message_text(part.get("text")) for part in content if isinstance(part, dict))
    return ""


def _rate_field(kind: str) -> str:
    return "rate_" + kind


def request_key(body: Mapping[str, Any]) -> str:
    """The sha256 hex digest of the canonical JSON of a request body; answers and stats key on it."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def answer_text(key: str) -> str:
    """The assistant message content the server answers for a request with this key."""
    return json.dumps({
        "valid": int(key[:8], 16) % 2 == 0,
        "confidence": 0.9,
        "failures": [],
        "echo": key[:12],
    })


def format_retry_after(seconds: float) -> str:
    """Retry-After value: whole seconds as an integer (what RFC 9110 allows), anything else as given."""
    return str(int(seconds)) if float(seconds).is_integer() else str(seconds)
