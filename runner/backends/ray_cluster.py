"""The embedded engine on a Ray cluster (`runner run FILE --ray [ADDRESS]`): one Ray actor per model variant.

Each actor is placed by Ray on a node with `backend.threads` free CPUs (1 when unset), and there runs
the embedded backend as it runs locally: it finds the variant's GGUF (the same path, package or
catalog entry, so every node needs the model files where the experiment names them, or a catalog
it can fetch from), starts llama.cpp's server on that node's loopback and answers the driver's
requests through it. The driver keeps everything else: it plans, scores and alone writes the
store (`runner.execution.parallel` runs the variants side by side), so a run on a cluster resumes
and refuses duplicates exactly as a local one.

What crosses the wire is plain data: requests, completions, and failures as tuples, so that a
backend's `BackendError` arrives as itself (retryable or not) rather than as a Ray traceback.
Ray is optional: `pip install 'llm-runner[ray]'`.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import os
import socket
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from runner.backends.base import Backend, BackendError, ChatRequest, Completion, StartContext, Variant, VariantInfo
from runner.backends.ray_address import check_head
from runner.config.imports import require
from runner.config.schema import Experiment
from runner.errors import BackendUnavailable, UserError

_STOP_TIMEOUT_S = 30.0
# ray.init once check() found a head answering: a few seconds on a healthy cluster. Bounded all the
# same (Ray's own retries run for minutes), in a daemon thread that exit does not wait for.
_INIT_TIMEOUT_S = 60.0
# What ray.init takes besides an address: a running local instance, or a new one.
_RAY_KEYWORDS = ("auto", "local")
# The actor serving the variant whose jobs this task runs (the parallel executor runs several at once).
_current: contextvars.ContextVar[Any] = contextvars.ContextVar("ray_variant_actor")


async def _bounded(work: Callable[[], object], timeout_s: float) -> None:
    """`work()` in a daemon thread, awaited for at most `timeout_s` (then TimeoutError).

    Not asyncio.to_thread: the loop's default executor is joined when the run ends, so a ray.init
    still retrying would hold the process there; a daemon thread is left behind instead."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def settle(exc: BaseException | None) -> None:
        if done.done():
            return
        if exc is None:
            done.set_result(None)
        else:
            done.set_exception(exc)

    def run() -> None:
        try:
            work()
        except BaseException as exc:  # handed to the awaiting task, which decides
            outcome: BaseException | None = exc
        else:
            outcome = None
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            loop.call_soon_threadsafe(settle, outcome)

    threading.Thread(target=run, name="ray.init", daemon=True).start()
    await asyncio.wait_for(asyncio.shield(done), timeout_s)


def _failure(exc: BaseException) -> tuple[Any, ...]:
    if isinstance(exc, BackendError):
        return ("backend", str(exc), exc.retryable, exc.retry_after, exc.status)
    if isinstance(exc, UserError):
        return ("user", exc.problem, exc.file, exc.key, exc.fix)
    raise exc


def _raise(failure: tuple[Any, ...]) -> None:
    if failure[0] == "backend":
        _, message, retryable, retry_after, status = failure
        raise BackendError(message, retryable=retryable, retry_after=retry_after, status=status)
    _, problem, file, key, fix = failure
    raise BackendUnavailable(problem, file=file, key=key, fix=fix)


class VariantServer:
    """A Ray actor (made one by `ray.remote` at run time): one variant in llama.cpp on its node."""

    def __init__(self, experiment: Experiment, variant: Variant) -> None:
        from runner.backends.llamacpp.backend import LlamaCppBackend

        self.backend = LlamaCppBackend(experiment.backend, experiment)
        self.variant = variant
        self._serving: AbstractAsyncContextManager[VariantInfo] | None = None

    async def start(self) -> tuple[str, Any]:
        """Find the file, load the model; ("ok", details) or ("failed", failure)."""
        try:
            self.backend.check()
            await self.backend.start(StartContext(needed=frozenset({self.variant}), notify=lambda _: None))
            self._serving = self.backend.serve(self.variant)
            info = await self._serving.__aenter__()
        except (BackendError, UserError) as exc:
            return ("failed", _failure(exc))
        return ("ok", {**info.details, "ray_node": socket.gethostname()})

    async def call(self, method: str, *args: Any) -> tuple[str, Any]:
        try:
            return ("ok", await getattr(self.backend, method)(*args))
        except (BackendError, UserError) as exc:
            return ("failed", _failure(exc))

    async def stop(self) -> None:
        if self._serving is not None:
            serving, self._serving = self._serving, None
            await serving.__aexit__(None, None, None)
        await self.backend.close()


class RayBackend(Backend):
    """The embedded backend's variants, each in an actor on a Ray cluster (ADDRESS, or a local Ray)."""

    rendered_by = "llama.cpp /apply-template"
    parallel_variants = True
    shares_prompt_cache = True  # each actor's embedded server copies its slots (LlamaCppBackend)

    def __init__(self, local: Backend, address: str | None) -> None:
        super().__init__(local.settings, local.experiment)
        self.local = local
        self.address = address
        self._ray: Any = None

    def check(self) -> None:
        self.local.check()  # the files the experiment names, as the local backend checks them
        self._ray = require("ray", "llm-runner[ray]", "runner run --ray", note="run without --ray")
        # ray.init would retry an address where nothing (or no Ray head) listens for minutes.
        address, where = self.address, ""
        if not address and os.environ.get("RAY_ADDRESS"):
            address, where = os.environ["RAY_ADDRESS"], "RAY_ADDRESS "
        if address and address not in _RAY_KEYWORDS:
            from ray._private.services import resolve_ip_for_localhost

            check_head(address, where=where, file=self.experiment.source_path, dials=resolve_ip_for_localhost)

    async def start(self, context: StartContext | None = None) -> None:
        await super().start(context)
        if self._ray is None:
            self.check()
        ray = self._ray
        where = self.address or "a local Ray instance"
        try:
            await _bounded(lambda: ray.init(address=self.address or None, ignore_reinit_error=True,
                                            include_dashboard=False, log_to_driver=False, configure_logging=False),
                           _INIT_TIMEOUT_S)
        except TimeoutError:
            fix = "check the cluster with ray status --address ADDRESS, and give its head's GCS port"
            raise BackendUnavailable(f"the Ray cluster at {where} did not take this driver in {_INIT_TIMEOUT_S:g} s",
                                     file=self.experiment.source_path, key="--ray", fix=fix) from None
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise BackendUnavailable(f"cannot reach the Ray cluster at {where} ({type(exc).__name__}: "
                                     f"{' '.join(str(exc).split())[:200]})", file=self.experiment.source_path,
                                     key="--ray", fix="start it (ray start --head) or correct the address") from None
        cpus = int(ray.cluster_resources().get("CPU", 0))
        self.context.notify(f"Ray cluster at {where}: {len(ray.nodes())} nodes, {cpus} CPUs")

    async def close(self) -> None:
        if self._ray is not None and self._ray.is_initialized():
            await asyncio.to_thread(self._ray.shutdown)

    @asynccontextmanager
    async def serve(self, variant: Variant) -> AsyncIterator[VariantInfo]:
        ray = self._ray
        threads = getattr(self.settings, "threads", None) or 1
        actor = ray.remote(VariantServer).options(num_cpus=threads).remote(self.experiment, variant)
        try:
            self.context.notify(f"loading {variant.label} on the Ray cluster")
            status, value = await actor.start.remote()
            if status != "ok":
                _raise(value)
            token = _current.set(actor)
            try:
                yield VariantInfo(value)
            finally:
                _current.reset(token)
            await asyncio.wait_for(actor.stop.remote(), _STOP_TIMEOUT_S)
        finally:
            ray.kill(actor)

    async def _call(self, method: str, *args: Any) -> Any:
        actor = _current.get(None)
        assert actor is not None, f"{method}() outside serve()"
        status, value = await actor.call.remote(method, *args)
        if status != "ok":
            _raise(value)
        return value

    async def generate(self, request: ChatRequest) -> Completion:
        completion: Completion = await self._call("generate", request)
        return completion

    async def count_tokens(self, messages: list[dict[str, str]]) -> int | None:
        count: int | None = await self._call("count_tokens", messages)
        return count

    async def share_prompt_cache(self) -> int:
        filled: int = await self._call("share_prompt_cache")
        return filled

    def workers(self, concurrency: int) -> int:
        return self.local.workers(concurrency)

    async def count_rendered(self, text: str) -> int | None:
        count: int | None = await self._call("count_rendered", text)
        return count

    async def render_prompt(self, messages: list[dict[str, str]]) -> str | None:
        prompt: str | None = await self._call("render_prompt", messages)
        return prompt

    async def tokenize(self, text: str) -> list[int] | None:
        tokens: list[int] | None = await self._call("tokenize", text)
        return tokens

    def requested_context(self) -> int | None:
        return self.local.requested_context()

    def local_size(self, model: str) -> dict[str, Any] | None:
        return self.local.local_size(model)
