"""The `kind: compress` spec: which registered model, which recipes, which data, which gate.

One vocabulary: the YAML key is the CLI flag (`recipe:` = `--recipe`, `eval:` = `--eval`,
`gate:` = `--gate`, `alias:` = `--alias`, `name:` = `--name`) and the word in error messages.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from llmos.spec._models import TrackingSpec, _Strict
from llmos.spec._serve import BatchingSpec, RuntimeSpec

__all__ = ["CompressDataSpec", "CompressJob", "CompressResources", "GateSpec", "RecipeSpec", "ReportSpec",
           "parse_recipe"]

_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
_ALIAS = r"^[A-Za-z][A-Za-z0-9_-]*$"


def parse_recipe(text: str) -> dict[str, Any]:
    """`prune-structured:heads=0.3,ffn=0.3` → {"name": ..., "params": {...}}; values parse as YAML."""
    name, _, rest = text.strip().partition(":")
    params: dict[str, Any] = {}
    for item in filter(None, (p.strip() for p in rest.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"'{item}' in '{text}' is not key=value (e.g. prune-structured:heads=0.3)")
        try:
            params[key.strip()] = yaml.safe_load(value.strip())
        except yaml.YAMLError:
            params[key.strip()] = value.strip()
    return {"name": name.strip(), "params": params}


class RecipeSpec(_Strict):
    name: Annotated[str, Field(description="recipe: bf16, int8, int8-weight, int4-weight, onnx-int8, "
                                           "prune-unstructured, prune-structured, distill")]
    params: Annotated[dict[str, Any], Field(default_factory=dict, description=(
        "the recipe's parameters (see llmos compress --list)"))]

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, value: Any) -> Any:
        return parse_recipe(value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _known(self) -> RecipeSpec:
        from llmos.compress._recipes import get_recipe
        from llmos.errors import SpecError

        try:
            recipe = get_recipe(self.name)
        except SpecError as exc:
            raise ValueError(exc.message) from None
        try:
            recipe.params.model_validate(self.params)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or self.name}: {_short(e)}" for e in exc.errors())
            raise ValueError(f"bad parameters for recipe '{self.name}': {problems}") from None
        return self

    @property
    def label(self) -> str:
        """The recipe as one would write it on the command line; names folders and metrics."""
        if not self.params:
            return self.name
        return self.name + ":" + ",".join(f"{k}={v}" for k, v in self.params.items())

    def typed_params(self) -> BaseModel:
        from llmos.compress._recipes import get_recipe

        return get_recipe(self.name).params.model_validate(self.params)


def _short(err: Any) -> str:
    if err["type"] == "extra_forbidden":
        return "unknown parameter"
    msg = str(err["msg"]).removeprefix("Value error, ")
    return f"{msg}, got {err.get('input')!r}" if err["type"] != "missing" else msg


class GateSpec(_Strict):
    max_metric_drop: Annotated[float | None, Field(ge=0, description=(
        "largest drop of the task metric allowed, in points (accuracy 0.912 → 0.907 is a 0.5-point drop)"))] = None
    min_speedup: Annotated[float | None, Field(gt=0, description=(
        "smallest served throughput (requests of report.batch_size eval texts), as a multiple of the parent's"))] = None
    max_latency_ratio: Annotated[float | None, Field(gt=0, description=(
        "largest served p50 latency of one-text requests, as a fraction of the parent's"))] = None
    max_size_ratio: Annotated[float | None, Field(gt=0, description=(
        "largest size on disk, as a fraction of the parent's"))] = None
    max_ppl_increase: Annotated[float | None, Field(ge=0, description=(
        "causal LMs: largest perplexity increase on the eval text, in percent of the parent's "
        "(5 or '5%': 12.0 -> 12.6 passes); max_metric_drop bounds the absolute increase"))] = None

    @field_validator("max_ppl_increase", mode="before")
    @classmethod
    def _percent(cls, value: Any) -> Any:
        """`5%` (as written after --gate) or 5: both mean five percent."""
        if isinstance(value, str):
            text = value.strip().removesuffix("%").strip()
            try:
                return float(text)
            except ValueError:
                raise ValueError(f"expected a percentage such as 5 or '5%', got {value!r}") from None
        return value


class CompressDataSpec(_Strict):
    format: Annotated[Literal["auto", "csv", "tsv", "jsonl", "parquet", "hf"], Field(
        description="file format of eval/calib/train; auto reads the file extension")] = "auto"
    header: Annotated[bool | None, Field(description="whether CSV/TSV files start with a header row; "
                                                     "null detects it")] = None
    text_column: Annotated[str, Field(description="column holding the text")] = "text"
    text_pair_column: Annotated[str | None, Field(description=(
        "second text of a pair; the positive for embedding models"))] = None
    label_column: Annotated[str | None, Field(description=(
        "column holding the label (classification); null for embedding and causal-lm"))] = "label"
    calib_limit: Annotated[int, Field(gt=0, description="calibration examples used at most")] = 512
    eval_limit: Annotated[int | None, Field(gt=0, description="eval examples used at most; null: all")] = None
    train_limit: Annotated[int | None, Field(gt=0, description=(
        "training examples used at most by recipes that train (distill, recovery)"))] = None


class ReportSpec(_Strict):
    """How models are timed. The gate judges the served figures: each model run as `llmos serve`
    runs it (`runtime`, `batching`: a serve spec's sections, same keys and defaults), answering
    requests of the eval texts in-process. A fixed-length figure (`seq_len`) is shown beside them."""

    batch_size: Annotated[int, Field(gt=0, description=(
        "eval texts per request in the served throughput load; also the batch of the fixed-length figure"))] = 32
    clients: Annotated[int, Field(gt=0, le=64, description=(
        "requests in flight at once in the served throughput load (1: one request at a time)"))] = 1
    runtime: Annotated[RuntimeSpec, Field(description=(
        "how every model runs for the served figures: a serve spec's runtime section (defaults: llmos serve's)"))] = (
        RuntimeSpec())
    batching: Annotated[BatchingSpec, Field(description=(
        "dynamic batching for the served figures: a serve spec's batching section (defaults: llmos serve's)"))] = (
        BatchingSpec())
    seq_len: Annotated[int | None, Field(gt=0, description=(
        "tokens per example of the fixed-length figure (eval texts, padded or cut); "
        "null: the eval data's 90th-percentile length"))] = None
    latency_runs: Annotated[int, Field(gt=0, description="timed batch-1 calls (one-text requests) for p50/p95")] = 50
    throughput_batches: Annotated[int, Field(gt=0, description=(
        "timed batches of the fixed-length figure; the served load sends every eval text once, and at least "
        "this many requests"))] = 10
    warmup: Annotated[int, Field(ge=0, description="untimed calls (requests) before each measurement")] = 3
    num_threads: Annotated[int | None, Field(gt=0, description=(
        "CPU threads of the fixed-length figure; null: the cores this process may use (the served figures use "
        "runtime.num_threads)"))] = None
    compile: Annotated[Literal["auto", "always", "never"], Field(description=(
        "torch.compile (inductor, frozen weights) before the fixed-length timing: auto does it for "
        "torchao-quantized encoders only, whose eager CPU path is slower than fp32 (the served figures use "
        "runtime.compile; generation runs eagerly)"))] = "auto"
    prompts: Annotated[int, Field(gt=0, le=256, description=(
        "causal LMs: eval texts sent as generation prompts (greedy, one request each) for tokens/s"))] = 8
    prompt_tokens: Annotated[int, Field(gt=0, description=(
        "causal LMs: each prompt is its eval text's first this many tokens"))] = 32
    max_new_tokens: Annotated[int, Field(gt=0, le=4096, description=(
        "causal LMs: tokens each generation request asks for (max_tokens; fewer where the model ends "
        "its answer)"))] = 32

    @field_validator("runtime")
    @classmethod
    def _runtime_per_model(cls, value: RuntimeSpec) -> RuntimeSpec:
        if value.kind != "auto":
            raise ValueError(f"kind {value.kind!r} cannot run every model: each is served by the runtime its "
                             "format needs (ONNX Runtime for onnx-int8, PyTorch for the rest); leave it auto")
        return value


class CompressResources(_Strict):
    """What a compression asks of the control plane (`llmos submit`). It runs in one process on CPUs
    (the recipes, then one measuring process at a time); `llmos compress` uses the machine as it is."""

    cpus: Annotated[int, Field(gt=0, description=(
        "CPU cores; the recipes and every measurement run on them (report.num_threads null: all of them)"))] = 1
    memory_gb: Annotated[float | None, Field(gt=0, description=(
        "memory in GB: the parent, one child and one measuring process at a time (see peak_rss_mb in the "
        "report), plus ~0.4 GB for each of the two warm processes measurements start from; null: not counted"
        ))] = None


class CompressJob(_Strict):
    kind: Annotated[Literal["compress"], Field(description="what the job does")] = "compress"
    model: Annotated[str, Field(min_length=1, description=(
        "the parent: a registry reference, name@alias or name/VERSION (never modified)"))]
    recipe: Annotated[list[RecipeSpec], Field(min_length=1, description=(
        "recipes to run side by side: `int8`, or `prune-structured:heads=0.3,ffn=0.3`, "
        "or {name: ..., params: {...}}"))]
    eval: Annotated[str | None, Field(description=(
        "eval data for the task metric (a file or hf:ID); required (--eval)"))] = None
    calib: Annotated[str | None, Field(description=(
        "calibration data (pruning importance, ONNX checks); null: `train`, else the eval data"))] = None
    train: Annotated[str | None, Field(description=(
        "training data for recipes that train (distill, prune-structured recovery)"))] = None
    data: Annotated[CompressDataSpec, Field(description="how the data files are read")] = CompressDataSpec()
    gate: Annotated[GateSpec | None, Field(description=(
        "promotion rules: a child gets `alias` only if it passes every rule; null: every child passes"))] = None
    alias: Annotated[str | None, Field(pattern=_ALIAS, description=(
        "alias moved to the passing child with the highest throughput; failing children never get it"))] = None
    name: Annotated[str | None, Field(pattern=_NAME, description=(
        "registered model name for the children; null: the parent's name"))] = None
    output: Annotated[Path | None, Field(description=(
        "work folder (children, report, plot); null: $LLMOS_HOME/runs/compress-PARENT-TIME"))] = None
    report: Annotated[ReportSpec, Field(description="how models are measured")] = ReportSpec()
    tracking: Annotated[TrackingSpec, Field(description="MLflow recording (the compression run)")] = TrackingSpec()
    resources: Annotated[CompressResources, Field(description=(
        "what the job asks of the control plane (llmos submit)"))] = CompressResources()

    @field_validator("recipe", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, (str, dict)) else value

    @model_validator(mode="after")
    def _consistent(self) -> CompressJob:
        labels = [r.label for r in self.recipe]
        twice = sorted({x for x in labels if labels.count(x) > 1})
        if twice:
            raise ValueError(f"recipe lists {', '.join(twice)} more than once; each child needs its own recipe")
        if not (self.tracking.enabled and self.tracking.log_model):
            raise ValueError("compress registers every child in MLflow: set tracking.enabled and "
                             "tracking.log_model to true")
        return self
