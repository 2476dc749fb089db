"""What to run: expand an experiment into cells and jobs. Pure; no requests, no store.

A *cell* is one combination of axis values (model, quantization, system, prompt, and each sampling
key given as a list); a *job* is a cell applied to one dataset item for one repeat. Cells are few
and kept in a list; jobs are many and are streamed, so a million-job matrix plans in bounded memory.

Jobs come out grouped by model variant (model x quantization), in the order the models are
declared, so the executor finishes one variant before it loads the next.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner.config.paths import PathGuard, path_guard
from runner.config.sampling import SAMPLING_KEYS
from runner.config.schema import Experiment, TemplateRef
from runner.errors import ConfigError
from runner.plan.dataset import Item, load_context_file, load_items
from runner.plan.matrix import expand
from runner.plan.templates import CompiledTemplate, compile_template
from runner.plan.variant import Variant


@dataclass(frozen=True)
class Cell:
    values: tuple[tuple[str, Any], ...]
    variant: Variant
    system: CompiledTemplate | None
    prompt: CompiledTemplate
    params: dict[str, Any] = field(hash=False, compare=False)

    def get(self, axis: str) -> Any:
        return dict(self.values).get(axis)

    def key(self) -> str:
        """Stable text naming the cell, used to group results (encoded once: every job stores it)."""
        key: str | None = self.__dict__.get("_key")
        if key is None:
            key = json.dumps([[k, v] for k, v in self.values], sort_keys=False, default=str)
            object.__setattr__(self, "_key", key)  # a cache, not a field: equality and hash ignore it
        return key


@dataclass(frozen=True)
class Job:
    job_id: str
    cell: Cell
    item: Item
    repeat: int
    messages: tuple[dict[str, str], ...]
    params: dict[str, Any] = field(hash=False, compare=False)
    # The request's own hash, without the item's id: what the response cache is keyed by.
    request_key: str = field(default="", hash=False, compare=False)


# What json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str) builds
# on every call (an encoder for its options), built once: the same text, for each prompt pair, item and
# cell a plan encodes.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode


def canonical_json(payload: Any) -> str:
    return _CANONICAL(payload)


def canonical_hash(payload: Any) -> str:
    return hashlib.sha256(canonical_json(payload).encode("utf-8")).hexdigest()[:32]


def _job_id(backend: str, variant: str, item: str, messages: str, params: str, repeat: int) -> str:
    """canonical_hash of {backend, item, messages, params, repeat, variant}, written out from its parts
    (each already canonical JSON), so the parts shared by many jobs are encoded once: the same text, so
    the same ids as ever (tests/test_planner.py pins them)."""
    text = (f'{{"backend":{backend},"item":{item},"messages":{messages},"params":{params},'
            f'"repeat":{repeat},"variant":{variant}}}')
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def request_key(backend: str, variant: str, messages: str, params: str, repeat: int) -> str:
    """canonical_hash of {backend, messages, params, repeat, variant} from their canonical JSON: the
    request as sent to that variant, whichever experiment or dataset item asks it
    (`runner.store.response_cache`)."""
    text = f'{{"backend":{backend},"messages":{messages},"params":{params},"repeat":{repeat},"variant":{variant}}}'
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def request_scope(backend: str, variant: str) -> str:
    """Where a request goes, from the canonical JSON of the backend's identity and the model variant's:
    the part of `request_key` shared by all of a variant's requests (the response cache lists the
    scopes it holds answers for, so a variant it holds none for is not asked job by job)."""
    return hashlib.sha256(f'{{"backend":{backend},"variant":{variant}}}'.encode()).hexdigest()[:32]


def _id_prefix(backend: str, item: str, messages: str) -> Any:
    """A sha256 fed with the part of `_job_id`'s text before the params, shared by every job of one item
    and prompt pair: each job then hashes only its own tail (`_id_suffix`), not the messages again."""
    return hashlib.sha256(f'{{"backend":{backend},"item":{item},"messages":{messages},"params":'.encode())


def _id_suffix(params: str, repeat: int, variant: str) -> bytes:
    return f'{params},"repeat":{repeat},"variant":{variant}}}'.encode()


def _id_from(prefix: Any, suffix: bytes) -> str:
    """The same id as `_job_id` (the same text hashed), from the shared prefix and the job's tail."""
    h = prefix.copy()
    h.update(suffix)
    return str(h.hexdigest()[:32])


class Stored:
    """Which jobs of a plan are stored already: one bit per job, by its position in plan order
    (`Plan.jobs` with the same item limit), so skipping them costs no rendering and little memory."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.count = 0
        self._bits = bytearray((total + 7) // 8)

    def add(self, position: int) -> None:
        byte, bit = divmod(position, 8)
        if not self._bits[byte] >> bit & 1:
            self._bits[byte] |= 1 << bit
            self.count += 1

    def __contains__(self, position: int) -> bool:
        byte, bit = divmod(position, 8)
        return bool(self._bits[byte] >> bit & 1)

    def all_of(self, start: int, n: int) -> bool:
        return all(p in self for p in range(start, start + n))


# Rendered messages kept per (system, prompt, item) for the life of a plan, up to this many: cells that
# differ only in sampling, the template check, the resume check and the report then render each once.
# A dataset past it (a million-item plan) renders as before rather than hold every prompt in memory.
RENDER_MEMO_MAX = 100_000


@dataclass
class Plan:
    experiment: Experiment
    axes: dict[str, list[Any]]
    cells: list[Cell]
    items: list[Item]
    context: dict[str, Any]
    _memo: dict[tuple[Any, Any, str], tuple[tuple[dict[str, str], ...], str]] = field(
        default_factory=dict, repr=False, compare=False)

    @property
    def repeats(self) -> int:
        return self.experiment.repeats

    def item_subset(self, limit_items: int | None) -> list[Item]:
        return self.items if limit_items is None else self.items[:limit_items]

    def count(self, limit_items: int | None = None) -> int:
        return len(self.cells) * len(self.item_subset(limit_items)) * self.repeats

    def variants(self) -> list[Variant]:
        return list(dict.fromkeys(c.variant for c in self.cells))

    def varying_axes(self) -> list[str]:
        return [a for a, vals in self.axes.items() if len(vals) > 1]

    def render_messages(self, cell: Cell, item: Item) -> tuple[dict[str, str], ...]:
        ctx = {**item.fields, "item": item.fields, **self.context}
        cfg = self.experiment.source_path
        messages: list[dict[str, str]] = []
        if cell.system is not None:
            # Sent even when it renders empty: "no system message" is `{name: none}` (no text, no file),
            # and the two differ where the chat template inserts its own default system prompt.
            messages.append({"role": "system", "content": cell.system.render(ctx, config_file=cfg, item_id=item.id)})
        messages.append({"role": "user", "content": cell.prompt.render(ctx, config_file=cfg, item_id=item.id)})
        return tuple(messages)

    def rendered(self, cell: Cell, item: Item) -> tuple[tuple[dict[str, str], ...], str]:
        """The cell's messages for this item and their canonical JSON, rendered once per plan (memo)."""
        key = (cell.system, cell.prompt, item.id)
        found = self._memo.get(key)
        if found is None:
            messages = self.render_messages(cell, item)
            found = (messages, canonical_json(messages))
            if len(self._memo) < RENDER_MEMO_MAX:
                self._memo[key] = found
        return found

    def check_templates(self, limit_items: int | None = None) -> None:
        """Render every template against every item (of the first `limit_items`) once, so a template
        error stops the run first."""
        pairs = {(c.system.name if c.system else None, c.prompt.name): c for c in self.cells}
        for cell in pairs.values():
            for item in self.item_subset(limit_items):
                self.rendered(cell, item)

    def jobs(self, limit_items: int | None = None, *, skip: Stored | None = None,
             request_keys: bool = False) -> Iterator[Job]:
        """Every job in plan order (cell, item, repeat); with `skip`, the stored ones are left out
        without rendering or hashing them. `request_keys`: also hash each request for the response
        cache (the run needs them; the read verbs do not)."""
        backend = canonical_json(self.experiment.backend.identity())
        items = self.item_subset(limit_items)
        repeats = self.repeats
        position = 0
        item_ids: list[str] | None = None  # each item's id as JSON, encoded once for every cell
        for cell in self.cells:
            variant = canonical_json(cell.variant.identity)
            params = self._repeat_params(cell)
            # Each job's id: the item's shared prefix hashed once, then each repeat's own tail (as `stored`).
            suffixes = [_id_suffix(p_json, repeat, variant) for repeat, (_, p_json) in enumerate(params)]
            if item_ids is None:
                item_ids = [canonical_json(item.id) for item in items]
            for item, item_id in zip(items, item_ids, strict=True):
                first, position = position, position + repeats
                if skip is not None and skip.all_of(first, repeats):
                    continue
                messages, encoded = self.rendered(cell, item)
                prefix = _id_prefix(backend, item_id, encoded)
                for repeat, (p, p_json) in enumerate(params):
                    if skip is not None and first + repeat in skip:
                        continue
                    job_id = _id_from(prefix, suffixes[repeat])
                    key = request_key(backend, variant, encoded, p_json, repeat) if request_keys else ""
                    yield Job(job_id, cell, item, repeat, messages, p, key)

    def stored(self, done_ids: Collection[str], limit_items: int | None = None) -> Stored:
        """Which planned jobs have their id in `done_ids` (a store's finished jobs).

        It has to hash every planned job, but renders each prompt pair's messages once per item
        rather than once per cell (cells that differ only in sampling share them), which is most
        of what a job costs to plan: a 100,000-job plan is checked in a fraction of a second."""
        items = self.item_subset(limit_items)
        repeats = self.repeats
        found = Stored(len(self.cells) * len(items) * repeats)
        if not done_ids:
            return found
        backend = canonical_json(self.experiment.backend.identity())
        pairs: dict[tuple[CompiledTemplate | None, CompiledTemplate], list[int]] = {}
        for index, cell in enumerate(self.cells):
            pairs.setdefault((cell.system, cell.prompt), []).append(index)
        # Each job's tail of the hashed text, per cell and repeat: the loop below hashes only these
        # after the item's shared prefix (a million-job plan is checked in a few seconds).
        suffixes = [[_id_suffix(p_json, repeat, canonical_json(c.variant.identity))
                     for repeat, (_, p_json) in enumerate(self._repeat_params(c))] for c in self.cells]
        for indexes in pairs.values():
            for item_index, item in enumerate(items):
                encoded = self.rendered(self.cells[indexes[0]], item)[1]
                prefix = _id_prefix(backend, canonical_json(item.id), encoded)
                for index in indexes:
                    first = (index * len(items) + item_index) * repeats
                    for repeat, suffix in enumerate(suffixes[index]):
                        if _id_from(prefix, suffix) in done_ids:
                            found.add(first + repeat)
        return found

    def variants_with_work(self, stored: Stored, limit_items: int | None = None) -> frozenset[Variant]:
        """The variants with a planned job that `stored` does not hold."""
        per_cell = len(self.item_subset(limit_items)) * self.repeats
        return frozenset(cell.variant for index, cell in enumerate(self.cells)
                         if not stored.all_of(index * per_cell, per_cell))

    def _repeat_params(self, cell: Cell) -> list[tuple[dict[str, Any], str]]:
        """Each repeat's request params, with their canonical JSON (for the job id)."""
        out = []
        for repeat in range(self.repeats):
            params = self._params_for_repeat(cell.params, repeat)
            out.append((params, canonical_json(params)))
        return out

    def _params_for_repeat(self, params: dict[str, Any], repeat: int) -> dict[str, Any]:
        if repeat and "seed" in params and self.experiment.repeat_seeds == "offset":
            return {**params, "seed": params["seed"] + repeat}
        return params


def build_plan(experiment: Experiment) -> Plan:
    """Load the dataset and templates and expand the matrix. Raises ConfigError on any problem."""
    cfg = experiment.source_path
    # Everything read here is sent to the server: it must come from inside the project (config.paths).
    # So must the store's folder: a shared experiment file must not make the runner write elsewhere.
    guard = path_guard(cfg, allow_outside=experiment.allow_outside_paths)
    if experiment.results_dir is not None:
        guard.check(experiment.results_dir, experiment.store_path().parent, "results_dir", what="the results folder")
    _check_results_dir(experiment)
    ds = experiment.dataset
    items = load_items(guard.check(ds.path, experiment.resolve(ds.path), "dataset.path"), id_field=ds.id_field,
                       label_field=ds.label_field, config_file=cfg)
    context = {
        name: load_context_file(guard.check(p, experiment.resolve(p), f"prompts.context.{name}"), config_file=cfg,
                                key=f"prompts.context.{name}")
        for name, p in experiment.prompts.context.items()
    }
    written = experiment.prompts.directory
    directory = experiment.resolve(written or Path("."))
    if written is not None:
        guard.check(written, directory, "prompts.directory")
    prompts = [compile_template(ref, directory=directory, config_file=cfg, key=f"prompts.variants[{i}]", guard=guard)
               for i, ref in enumerate(experiment.prompts.variants)]
    # A variant's own system prompt replaces the experiment's for that variant's cells.
    own_systems = {v.name: compile_template(ref, directory=directory, config_file=cfg,
                                            key=f"prompts.variants[{i}].system", guard=guard)
                   for i, v in enumerate(experiment.prompts.variants) if (ref := v.system_ref()) is not None}
    refs = experiment.prompts.system_refs()
    systems = [_compile_optional(ref, i, directory, experiment, guard) for i, ref in enumerate(refs)]
    _check_tokenizer_files(experiment)
    axes, sampling_axes, fixed = declared_axes(experiment)
    combos = expand(experiment, axes, sampling_axes, fixed)
    variants = {
        (m.name, q): Variant(m.name, q, m.model_id(q), experiment.backend.variant_identity(m, q))
        for m in experiment.models for q in m.quant_values()
    }
    by_name_prompt = {p.name: p for p in prompts}
    by_name_system = dict(zip(axes["system"], systems, strict=True))
    cells = [
        Cell(
            values=tuple((axis, combo[axis]) for axis in axes),
            variant=variants[(combo["model"], combo["quantization"])],
            system=own_systems.get(combo["prompt"], by_name_system[combo["system"]]),
            prompt=by_name_prompt[combo["prompt"]],
            params=params,
        )
        for combo, params in combos
    ]
    variant_order = {key: i for i, key in enumerate(variants)}
    cells.sort(key=lambda c: variant_order[(c.variant.model, c.variant.quantization)])
    if not cells:
        raise ConfigError("the matrix is empty: matrix.exclude removes every combination", file=cfg,
                          key="matrix.exclude", fix="remove or narrow an exclude entry")
    # Axes report only values that occur, in declaration order (include may add sampling values at the
    # end). One pass over the cells per axis: this ran in time values x cells before.
    for index, axis in enumerate(axes):
        occurring, in_order = _Values(), []
        for cell in cells:
            if occurring.add(cell.values[index][1]):
                in_order.append(cell.values[index][1])
        values = [v for v in axes[axis] if v in occurring]
        shown = _Values(values)
        axes[axis] = values + [v for v in in_order if shown.add(v)]
    _check_report_axes(experiment, axes)
    return Plan(experiment, axes, cells, items, context)


def declared_axes(experiment: Experiment) -> tuple[dict[str, list[Any]], dict[str, list[Any]], dict[str, Any]]:
    """The matrix's axes with their values as declared (a named value by its name), the sampling
    axes among them, and the fixed sampling values."""
    sampling_axes, fixed = experiment.sampling.axes_and_fixed()
    # The system axis names every system, including `{name: none}`, which sends no system message.
    axes: dict[str, list[Any]] = {
        "model": [m.name for m in experiment.models],
        "quantization": list(dict.fromkeys(q for m in experiment.models for q in m.quant_values())),
        "system": [ref.name if ref is not None else None for ref in experiment.prompts.system_refs()],
        "prompt": [v.name for v in experiment.prompts.variants],
        **sampling_axes,
    }
    return axes, sampling_axes, fixed


class _Values:
    """A set by equality, as the matrix matches values: hashed where a value can be (numbers, text),
    in a list where not (stop lists, response_format mappings, which are few)."""

    def __init__(self, values: list[Any] | None = None) -> None:
        self._hashed: set[Any] = set()
        self._other: list[Any] = []
        for value in values or []:
            self.add(value)

    def add(self, value: Any) -> bool:
        """Add it; False if an equal value was there already."""
        if value in self:
            return False
        try:
            self._hashed.add(value)
        except TypeError:
            self._other.append(value)
        return True

    def __contains__(self, value: Any) -> bool:
        try:
            return value in self._hashed
        except TypeError:
            return value in self._other


def _check_results_dir(experiment: Experiment) -> None:
    """The store's folder must be a folder (or creatable): found now, before anything is written."""
    folder = experiment.store_path().parent
    for candidate in (folder, *folder.parents):
        if candidate.exists():
            if candidate.is_dir():
                return
            fix = ("point results_dir at a folder (it is created if missing)" if experiment.results_dir is not None
                   else "move that file away or set results_dir to a folder")
            raise ConfigError(f"{candidate} is a file, not a folder, so the store {experiment.store_path()} cannot "
                              "be created", file=experiment.source_path, key="results_dir", fix=fix)


def _check_tokenizer_files(experiment: Experiment) -> None:
    """The reference tokenizers `runner probe` reads: present before anything runs, like the dataset."""
    for i, model in enumerate(experiment.models):
        if model.tokenizer is not None and not experiment.resolve(model.tokenizer).is_file():
            raise ConfigError(f"tokenizer file {experiment.resolve(model.tokenizer)} not found",
                              file=experiment.source_path, key=f"models[{i}].tokenizer",
                              fix="give the path (relative to the experiment file) of the model's tokenizer.json "
                                  "or GGUF file, or remove the key")


def _check_report_axes(experiment: Experiment, axes: dict[str, list[Any]]) -> None:
    report = experiment.report
    for key, names in (("report.rows", report.rows or []), ("report.columns", report.columns)):
        for i, name in enumerate(names):
            if name not in axes:
                raise ConfigError(f"unknown axis {name!r}", file=experiment.source_path, key=f"{key}[{i}]",
                                  fix=f"use one of: {', '.join(axes)}")
    if report.effect is not None:
        axis, varying = report.effect.axis, [a for a, values in axes.items() if len(values) > 1]
        if axis not in varying:
            known = axis in axes or axis in SAMPLING_KEYS
            what = "does not vary in this experiment" if known else "is not an axis"
            raise ConfigError(f"{axis!r} {what}: its effect cannot be measured", file=experiment.source_path,
                              key="report.effect.axis",
                              fix=f"use an axis with more than one value: {', '.join(varying) or 'none varies'}")
        baseline = report.effect.baseline
        if baseline is not None and baseline not in axes[axis]:
            raise ConfigError(f"baseline {baseline!r} is not a value of {axis}", file=experiment.source_path,
                              key="report.effect.baseline",
                              fix=f"use one of: {', '.join(str(v) for v in axes[axis])}, or remove the key")


def _compile_optional(ref: TemplateRef | None, i: int, directory: Path, experiment: Experiment,
                      guard: PathGuard) -> CompiledTemplate | None:
    if ref is None or ref.sends_nothing:
        return None
    key = f"prompts.systems[{i}]" if experiment.prompts.systems else "prompts.system"
    return compile_template(ref, directory=directory, config_file=experiment.source_path, key=key, guard=guard)
