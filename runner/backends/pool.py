"""A pool of servers that serve the same model (`backend.endpoints`), seen by the executor as one backend.

One HTTP backend per endpoint does the talking; the pool decides where each request goes:

- `concurrency` requests in flight per endpoint (the executor keeps endpoints x concurrency workers,
  see `workers`); a request goes to the healthy endpoint with the fewest in flight.
- At start every endpoint must answer and serve the same model: for every variant with work, what
  each endpoint says of it (model id and whether it is listed, quantization, context, size, digest,
  where the server says) is compared with the first endpoint's; a difference is a one-line error
  naming the endpoint, before anything is stored.
- An endpoint that fails (a connection error, or `_TIMEOUTS_DOWN` timeouts in a row) is taken out:
  the request that saw it fail, and every one that fails on it later, is sent again to another
  endpoint at once (not counted as a retry: the job never reached a server that could answer it),
  and the endpoint is probed again in the background with a doubling wait until it answers.
  Any other failure (an HTTP 500, a 429, a bad body) is the executor's to retry as usual.
- A job is answered by exactly one endpoint, so the executor stores it once; which one is stored in
  the job's timings (`endpoint`), or with a failed job's error (`BackendError.endpoint`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from runner.backends.base import Backend, BackendError, ChatRequest, Completion, StartContext, Variant, VariantInfo
from runner.backends.http import HttpClient
from runner.backends.settings import HttpSettings
from runner.config.schema import Experiment
from runner.errors import BackendUnavailable, UserError

# Timeouts in a row that take an endpoint out: one may be a long answer, three are a stuck server.
_TIMEOUTS_DOWN = 3
# The first wait before a failed endpoint is probed again; doubles up to the cap.
_REVIVE_FIRST_S = 0.5
_REVIVE_MAX_S = 30.0
_PROBE_TIMEOUT_S = 5.0
# What an endpoint says of a model that must be the same on every endpoint (where both say it).
IDENTITY_KEYS = ("model_id", "listed", "quantization", "n_ctx_per_slot", "n_ctx_train", "size_bytes", "digest",
                 "parameters", "parameter_size", "family", "arch", "format", "file_type")


@dataclass(eq=False)
class Endpoint:
    index: int
    url: str
    member: Backend
    up: bool = True
    in_flight: int = 0
    answered: int = 0
    timeouts: int = 0  # in a row
    # The first wait before probing it again when it fails next: doubles each time it fails, and is reset
    # only by an answer to a job (a server whose listing answers while its chat hangs is not trusted faster).
    revive_wait: float = _REVIVE_FIRST_S
    reviving: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def key(self) -> str:
        return f"backend.endpoints[{self.index}]"


def _is_endpoint_fault(exc: BackendError) -> bool:
    """A failure of the server or the way to it, not of this request: worth another endpoint at once."""
    return exc.status is None and exc.retryable and str(exc).startswith(("connection error", "timed out"))


class EndpointPool(Backend):
    settings: HttpSettings

    def __init__(self, settings: HttpSettings, experiment: Experiment, member_class: type[Backend]) -> None:
        super().__init__(settings, experiment)
        self.endpoints = [
            Endpoint(i, url.rstrip("/"), member_class(settings.model_copy(update={"base_url": url, "endpoints": None}),
                                                      experiment))
            for i, url in enumerate(settings.urls())
        ]
        self.rendered_by = self.endpoints[0].member.rendered_by
        self.slots = settings.concurrency
        self._changed = asyncio.Condition()
        self._details: dict[Variant, dict[str, Any]] = {}
        self._closed = False

    def workers(self, concurrency: int) -> int:
        self.slots = concurrency
        return concurrency * len(self.endpoints)

    def check(self) -> None:
        for endpoint in self.endpoints:
            endpoint.member.check()

    async def start(self, context: StartContext | None = None) -> None:
        await super().start(context)
        self._closed = False
        results = await asyncio.gather(*(e.member.start(self.context) for e in self.endpoints), return_exceptions=True)
        failed = next(((e, r) for e, r in zip(self.endpoints, results, strict=True) if isinstance(r, BaseException)),
                      None)
        if failed is not None:
            await self.close()
            endpoint, error = failed
            if isinstance(error, UserError):
                raise BackendUnavailable(error.problem, file=self.experiment.source_path, key=endpoint.key,
                                         fix="start that server, or correct or remove it") from None
            raise error
        try:
            await self._check_identity()
        except BaseException:
            await self.close()
            raise

    def _variants(self) -> list[Variant]:
        needed = self.context.needed
        out = []
        for model in self.experiment.models:
            for quant in model.quant_values():
                identity = self.settings.variant_identity(model, quant)
                variant = Variant(model.name, quant, model.model_id(quant), identity)
                if needed is None or any((v.model, v.quantization) == (model.name, quant) for v in needed):
                    out.append(variant)
        return out

    async def _check_identity(self) -> None:
        """Every endpoint must say the same of every variant as the first one does."""
        for variant in self._variants():
            said: list[dict[str, Any]] = []
            for endpoint in self.endpoints:
                try:
                    async with endpoint.member.serve(variant) as info:
                        said.append(info.details)
                except UserError as exc:
                    raise BackendUnavailable(f"{endpoint.url}: {exc.problem}", file=self.experiment.source_path,
                                             key=endpoint.key, fix=exc.fix or "") from None
            first = said[0]
            for endpoint, details in zip(self.endpoints[1:], said[1:], strict=True):
                for key in IDENTITY_KEYS:
                    mine, theirs = details.get(key), first.get(key)
                    if mine is not None and theirs is not None and mine != theirs:
                        differs = _difference(key, mine, theirs, endpoint, variant, self.endpoints[0].url)
                        raise BackendUnavailable(
                            f"{endpoint.url} {differs}",
                            file=self.experiment.source_path, key=endpoint.key,
                            fix="serve the same model (file and settings) on every endpoint, or remove that one")
            self._details[variant] = {**first, "endpoints": [e.url for e in self.endpoints]}

    async def close(self) -> None:
        self._closed = True
        for endpoint in self.endpoints:
            if endpoint.reviving is not None:
                endpoint.reviving.cancel()
                endpoint.reviving = None
        for endpoint in self.endpoints:
            await endpoint.member.close()

    @asynccontextmanager
    async def serve(self, variant: Variant) -> AsyncIterator[VariantInfo]:
        # HTTP backends only look a model up in serve(), which start() did for every endpoint.
        if variant not in self._details:
            async with self.endpoints[0].member.serve(variant) as info:
                self._details[variant] = {**info.details, "endpoints": [e.url for e in self.endpoints]}
        yield VariantInfo(dict(self._details[variant]))

    async def generate(self, request: ChatRequest) -> Completion:
        tried: set[int] = set()
        last: BackendError | None = None
        while True:
            endpoint = await self._acquire(tried)
            if endpoint is None:
                if last is not None:
                    raise last
                raise BackendError(f"every endpoint is down ({', '.join(e.url for e in self.endpoints)})",
                                   retryable=True)
            try:
                completion = await endpoint.member.generate(request)
            except BackendError as exc:
                exc.endpoint = endpoint.url
                if not _is_endpoint_fault(exc):
                    raise
                await self._failed(endpoint, exc)
                tried.add(endpoint.index)
                last = exc
                continue
            finally:
                await self._release(endpoint)
            endpoint.timeouts = 0
            endpoint.revive_wait = _REVIVE_FIRST_S
            endpoint.answered += 1
            completion.timings = {**(completion.timings or {}), "endpoint": endpoint.url}
            return completion

    async def _acquire(self, tried: set[int]) -> Endpoint | None:
        """A slot on the least busy healthy endpoint not tried yet for this request; None when none is left."""
        async with self._changed:
            while True:
                candidates = [e for e in self.endpoints if e.up and e.index not in tried]
                if not candidates:
                    return None
                free = [e for e in candidates if e.in_flight < self.slots]
                if free:
                    chosen = min(free, key=lambda e: (e.in_flight, e.answered))
                    chosen.in_flight += 1
                    return chosen
                await self._changed.wait()

    async def _release(self, endpoint: Endpoint) -> None:
        async with self._changed:
            endpoint.in_flight -= 1
            self._changed.notify_all()

    async def _failed(self, endpoint: Endpoint, exc: BackendError) -> None:
        if str(exc).startswith("timed out"):
            endpoint.timeouts += 1
            if endpoint.timeouts < _TIMEOUTS_DOWN:
                return
        if not endpoint.up:
            return
        endpoint.up = False
        self.context.notify(f"{endpoint.key} {endpoint.url} failed ({exc}): its jobs go to the other endpoints; "
                            "it is tried again in the background")
        endpoint.reviving = asyncio.get_running_loop().create_task(self._revive(endpoint))
        await self._notify_all()  # waiters re-check: this one is gone

    async def _notify_all(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def _revive(self, endpoint: Endpoint) -> None:
        """Probe a failed endpoint with a doubling wait until it answers, then take it back."""
        wait = endpoint.revive_wait
        endpoint.revive_wait = min(wait * 2, _REVIVE_MAX_S)
        client: HttpClient = getattr(endpoint.member, "client")  # noqa: B009 (every HTTP member has one)
        path = getattr(endpoint.member, "health_path", "/models")
        while not self._closed:
            await asyncio.sleep(wait)
            started = time.monotonic()
            try:
                await client.get_json(path, timeout_s=_PROBE_TIMEOUT_S)
            except BackendError:
                wait = min(wait * 2, _REVIVE_MAX_S)
                continue
            endpoint.timeouts = 0
            endpoint.up = True
            endpoint.reviving = None
            self.context.notify(f"{endpoint.key} {endpoint.url} answers again "
                                f"(in {time.monotonic() - started:.2f} s): it takes jobs again")
            await self._notify_all()
            return

    def _member(self) -> Backend:
        """The endpoint asked for what every endpoint says alike (templates, token counts): a healthy one."""
        return next((e.member for e in self.endpoints if e.up), self.endpoints[0].member)

    async def count_tokens(self, messages: list[dict[str, str]]) -> int | None:
        return await self._member().count_tokens(messages)

    async def count_rendered(self, text: str) -> int | None:
        return await self._member().count_rendered(text)

    async def render_prompt(self, messages: list[dict[str, str]]) -> str | None:
        return await self._member().render_prompt(messages)

    async def apply_template(self, messages: list[dict[str, str]]) -> str | None:
        return await self._member().apply_template(messages)

    async def tokenize(self, text: str) -> list[int] | None:
        return await self._member().tokenize(text)

    def requested_context(self) -> int | None:
        return self.endpoints[0].member.requested_context()


def _difference(key: str, mine: Any, theirs: Any, endpoint: Endpoint, variant: Variant, first: str) -> str:
    """How an endpoint's model differs from the first endpoint's, as the end of a sentence naming it."""
    if key == "listed":
        models = getattr(endpoint.member, "models", None)
        entries = models.get("data", []) if isinstance(models, dict) else []
        ids = [str(e.get("id")) for e in entries if isinstance(e, dict)]
        listed = "lists" if mine else "does not list"
        return f"{listed} model {variant.model_id!r} (it serves {', '.join(ids) or 'nothing'}), unlike {first}"
    return f"says {key} {mine!r} for {variant.label}, where {first} says {theirs!r}"
