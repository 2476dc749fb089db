"""The embedded default backend: llama.cpp's own server, one model variant at a time.

For each variant the backend starts `runner.backends.llamacpp.server` in a child process on
loopback, waits for it, sends the variant's jobs through the same OpenAI-compatible client as the
`openai` backend, and stops it before the next variant, so the machine never holds two models.

`n_ctx` here is what each request gets (one slot); the server is started with n_ctx x parallel,
because llama.cpp divides its context among the slots.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from runner.backends.base import Backend, BackendError, ChatRequest, Completion, StartContext, Variant, VariantInfo
from runner.backends.http import HttpClient
from runner.backends.llamacpp import api
from runner.backends.llamacpp.api import apply_template, count_prompt_tokens
from runner.backends.llamacpp.chat_template import RENDERED_BY, render_chat
from runner.backends.llamacpp.gguf_info import GGUFInfo, NotGGUF, file_type_value, known_file_types, read_gguf_info
from runner.backends.llamacpp.weights import cache_dir, derive, fetch_catalog, locate
from runner.backends.sampler import from_llamacpp_props
from runner.backends.settings import LlamaCppSettings
from runner.config.imports import require_installed
from runner.config.schema import BackendSettings, ModelConfig, ModelSource
from runner.errors import BackendUnavailable, ConfigError, UserError


class LlamaCppBackend(Backend):
    settings: LlamaCppSettings
    shares_prompt_cache = True  # the server is ours: started with a folder for /slots save and restore

    def __init__(self, settings: BackendSettings, experiment: Any) -> None:
        super().__init__(settings, experiment)
        self.files: dict[tuple[str, str | None], Path] = {}
        self.client: HttpClient | None = None
        self.server_url = ""
        self._templates: dict[Path, GGUFInfo] = {}

    # validation

    def check(self) -> None:
        for index, model in enumerate(self.experiment.models):
            key = f"models[{index}]"
            if model.files and not model.quantizations:
                raise ConfigError("files are listed per quantization, but quantizations is missing",
                                  file=self._cfg, key=f"{key}.quantizations",
                                  fix=f"add quantizations: [{', '.join(model.files)}]")
            if model.source is None and not model.files:
                raise ConfigError("the embedded backend needs a model file", file=self._cfg, key=key,
                                  fix="add source: {package: ..., resource: ...}, {path: ...} or {catalog: ...}")
            for quant in model.quant_values():
                if quant is not None and file_type_value(quant) is None:
                    raise ConfigError(f"unknown quantization type {quant!r}", file=self._cfg,
                                      key=f"{key}.quantizations",
                                      fix=f"use llama.cpp types such as {', '.join(known_file_types()[:12])}")
                if model.files and quant not in model.files and model.source is None:
                    raise ConfigError(f"no file for quantization {quant!r}", file=self._cfg, key=f"{key}.files",
                                      fix="add it to files, or give a source to derive it from")
            for label, source in self._sources(model, key):
                path = locate(source, base_dir=self.experiment.base_dir, config_file=self._cfg, key=label)
                if path is not None:
                    self._check_file(path, label)

    @property
    def _cfg(self) -> Path:
        return Path(self.experiment.source_path)

    def _sources(self, model: ModelConfig, key: str) -> list[tuple[str, ModelSource]]:
        out = [(f"{key}.files.{q}", s) for q, s in (model.files or {}).items()]
        if model.source is not None:
            out.append((f"{key}.source", model.source))
        return out

    def _check_file(self, path: Path, key: str) -> GGUFInfo:
        try:
            info = read_gguf_info(path)
        except (NotGGUF, OSError) as exc:
            raise ConfigError(str(exc), file=self._cfg, key=key, fix="point at a .gguf model file") from None
        if info.context_length is not None and self.settings.n_ctx > info.context_length:
            raise ConfigError(
                f"n_ctx {self.settings.n_ctx} is larger than {path.name} supports ({info.context_length})",
                file=self._cfg, key="backend.n_ctx", fix=f"set n_ctx to at most {info.context_length}",
            )
        return info

    # model files: fetched and derived before any job runs (and before the store is opened)

    async def start(self, context: StartContext | None = None) -> None:
        """Fetch and derive the files of every variant with work left, before any job runs."""
        await super().start(context)
        try:  # the engine first: without it no file is worth fetching (only the server process imports it)
            require_installed("xllamacpp", "xllamacpp", "the embedded backend (kind: llamacpp)",
                              note="set backend.kind to a server you run: openai, ollama or lmstudio")
        except UserError as exc:
            raise UserError(exc.problem, file=self._cfg, key="backend.kind", fix=exc.fix) from None
        needed = self.context.needed
        wanted = None if needed is None else {(v.model, v.quantization) for v in needed}
        for index, model in enumerate(self.experiment.models):
            for quant in model.quant_values():
                if wanted is not None and (model.name, quant) not in wanted:
                    continue  # every job of this variant is stored: no need for its file
                key = f"models[{index}]"
                try:
                    path = await asyncio.to_thread(self._resolve, model, quant, key)
                except UserError as exc:
                    # Fetching and deriving know the file, not the experiment: say where it was asked for.
                    raise UserError(exc.problem, file=exc.file or self._cfg, key=exc.key or key, fix=exc.fix) from None
                self.files[(model.name, quant)] = path

    async def probe(self) -> None:
        """Nothing to reach: check() has read every local model file already."""

    def _resolve(self, model: ModelConfig, quant: str | None, key: str) -> Path:
        if model.files and quant in model.files:
            return self._materialize(model.files[quant], f"{key}.files.{quant}")
        assert model.source is not None  # check() guarantees source or files
        source = self._materialize(model.source, f"{key}.source")
        if quant is None or read_gguf_info(source).quantization == quant.upper():
            return source
        return derive(source, quant, threads=self.settings.thread_count(), notify=self.context.notify)

    def _materialize(self, source: ModelSource, key: str) -> Path:
        path = locate(source, base_dir=self.experiment.base_dir, config_file=self._cfg, key=key)
        if path is None:
            path = fetch_catalog(str(source.catalog), notify=self.context.notify)
        self._check_file(path, key)
        return path

    # serving

    @asynccontextmanager
    async def serve(self, variant: Variant) -> AsyncIterator[VariantInfo]:
        path = self.files[(variant.model, variant.quantization)]
        info = read_gguf_info(path)
        log_path = cache_dir() / "logs" / f"llamacpp-{path.stem}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.context.notify(
            f"loading {variant.label}: {path.name} ({info.size_bytes / 1e6:.0f} MB, {info.quantization})")
        # The slots' KV files (`share_prompt_cache`): one per variant, gone with its server.
        slot_dir = tempfile.mkdtemp(prefix="llm-runner-slots-")
        with log_path.open("ab") as log, contextlib.ExitStack() as cleanup:
            cleanup.callback(shutil.rmtree, slot_dir, ignore_errors=True)
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "runner.backends.llamacpp.server", "--model", str(path),
                "--n-ctx", str(self.settings.n_ctx * self.settings.parallel),
                "--parallel", str(self.settings.parallel), "--threads", str(self.settings.thread_count()),
                "--slot-save-path", slot_dir,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=log,
            )
            try:
                url = self.server_url = await self._await_url(proc, log_path)
                self.client = HttpClient(f"{url}/v1", timeout_s=self.settings.timeout_s,
                                           connections=self.settings.concurrency,
                                           max_response_bytes=self.settings.max_response_bytes)
                try:
                    props = await self.client.get_json(f"{url}/props")
                except BackendError as exc:
                    raise BackendUnavailable(f"llama.cpp server for {variant.label} does not answer /props ({exc})",
                                             file=self._cfg, key="backend", fix=f"see {log_path}") from None
                yield VariantInfo({
                    "file": str(path), "size_bytes": info.size_bytes, "quantization": info.quantization,
                    "file_type": info.file_type, "architecture": info.architecture,
                    "parameters": info.parameters,
                    "parameters_source": "GGUF tensor elements" if info.parameters else None,
                    "size_label": info.size_label,
                    "n_ctx_per_slot": props.get("default_generation_settings", {}).get("n_ctx"),
                    "slots": props.get("total_slots"), "engine": "llama.cpp (xllamacpp)",
                    **from_llamacpp_props(props),
                })
            finally:
                if self.client is not None:
                    await self.client.close()
                    self.client = None
                await _stop(proc)

    async def _await_url(self, proc: asyncio.subprocess.Process, log_path: Path) -> str:
        assert proc.stdout is not None
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), self.settings.startup_timeout_s)
            return str(json.loads(line)["url"])
        except (TimeoutError, json.JSONDecodeError, KeyError):
            tail = _last_line(log_path)
            raise BackendUnavailable(
                f"llama.cpp server did not start: {tail}", file=self._cfg, key="backend",
                fix=f"see {log_path}; check the model file and n_ctx",
            ) from None

    async def generate(self, request: ChatRequest) -> Completion:
        assert self.client is not None, "generate() outside serve()"
        # Asked for, not left to the server's default (which has changed between llama.cpp versions): a
        # slot keeps its prompt's KV cache, so a repeat, or an item sharing the system prompt and rules,
        # evaluates only what differs (timings.prompt_n). The answer is the same either way.
        params = {**request.params, "cache_prompt": True}
        if request.worker is not None:
            # Left to itself, llama.cpp gives a request the idle slot whose cache matches it best, so a new
            # prompt arriving first can take the slot that holds another worker's next repeat. There are
            # as many workers as slots (`workers`), so each worker has a slot of its own.
            params["id_slot"] = request.worker % self.settings.parallel
        completion = await self.client.chat(ChatRequest(request.model, request.messages, params))
        # Stored and cached without it: which slot answered is scheduling, not part of the question.
        completion.request.pop("id_slot", None)
        return completion

    def workers(self, concurrency: int) -> int:
        """One worker per slot at most: requests beyond the slots would only wait in the server's queue, and
        two workers on one slot would interleave their prompts and evict each other's cache."""
        return max(1, min(concurrency, self.settings.parallel))

    async def count_tokens(self, messages: list[dict[str, str]]) -> int | None:
        assert self.client is not None, "count_tokens() outside serve()"
        return await count_prompt_tokens(self.client, self.server_url, messages)

    async def share_prompt_cache(self) -> int:
        assert self.client is not None, "share_prompt_cache() outside serve()"
        return await api.share_slot_cache(self.client, self.server_url)

    rendered_by = "llama.cpp /apply-template"

    def render_offline(self, variant: Variant, messages: list[dict[str, str]]) -> tuple[str, str] | None:
        model = next((m for m in self.experiment.models if m.name == variant.model), None)
        if model is None:
            return None
        for label, source in self._sources(model, "models"):
            # The template is in the source's metadata; a derived quantization carries the same one.
            path = locate(source, base_dir=self.experiment.base_dir, config_file=self._cfg, key=label)
            if path is None:
                continue
            if path not in self._templates:
                self._templates[path] = read_gguf_info(path)
            info = self._templates[path]
            if info.chat_template is None:
                return None
            prompt = render_chat(info.chat_template, messages, bos_token=info.bos_token, eos_token=info.eos_token)
            return (prompt, RENDERED_BY) if prompt is not None else None
        return None

    async def render_prompt(self, messages: list[dict[str, str]]) -> str | None:
        assert self.client is not None, "render_prompt() outside serve()"
        return await apply_template(self.client, self.server_url, messages)



    async def tokenize(self, text: str) -> list[int] | None:
        assert self.client is not None, "tokenize() outside serve()"
        return await api.tokenize(self.client, self.server_url, text)

    def requested_context(self) -> int | None:
        return self.settings.n_ctx

    def local_size(self, model: str) -> dict[str, Any] | None:
        config = next((m for m in self.experiment.models if m.name == model), None)
        if config is None:
            return None
        for label, source in self._sources(config, "models"):
            # A derived quantization has the same tensors (other types), so the source's count is the variant's.
            try:
                path = locate(source, base_dir=self.experiment.base_dir, config_file=self._cfg, key=label)
                info = read_gguf_info(path) if path is not None else None
            except (UserError, NotGGUF, OSError):
                continue
            if info is not None and info.parameters:
                return {"parameters": info.parameters, "parameters_source": "GGUF tensor elements",
                        "size_label": info.size_label}
        return None

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()
            self.client = None


async def _stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.terminate()
    try:
        await asyncio.wait_for(proc.wait(), 10)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()


def _last_line(path: Path) -> str:
    try:
        lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "no log"
    return lines[-1][-200:] if lines else "no output"
