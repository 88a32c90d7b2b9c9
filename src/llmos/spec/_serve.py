"""The `kind: serve` spec: one model version from the registry behind an HTTP server.

One document describes a replica (runtime, batching, limits, listening address) and, for the
deployments layer, how many replicas to keep (`replicas`, `autoscale`) and what each one needs
(`resources`). `llmos serve --spec FILE` runs one replica; a deployment runs several.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from llmos.spec._models import _Strict
from llmos.spec._serve_canary import CanarySpec

__all__ = [
    "AutoscaleSpec",
    "BatchingSpec",
    "CanarySpec",
    "LimitsSpec",
    "ReplicaResources",
    "ReplicasSpec",
    "RuntimeSpec",
    "ServeJob",
    "ServerSpec",
]

_REF = re.compile(r"^(models:/)?[A-Za-z0-9][A-Za-z0-9_.-]*(@[A-Za-z][A-Za-z0-9_-]*|/[1-9][0-9]*)?$")


class RuntimeSpec(_Strict):
    kind: Annotated[Literal["auto", "torch", "onnx"], Field(description=(
        "auto: ONNX Runtime for models stored as ONNX, else PyTorch"))] = "auto"
    precision: Annotated[Literal["auto", "fp32", "bf16"], Field(description=(
        "PyTorch compute precision; auto: bf16 autocast where the CPU/GPU has fast bf16, else fp32"))] = "fp32"
    device: Annotated[Literal["auto", "cpu", "cuda"], Field(description="auto uses CUDA when present")] = "auto"
    packing: Annotated[Literal["auto", "off"], Field(description=(
        "auto: an encoder with absolute positions runs a batch's inputs packed end to end instead of "
        "padded to the longest (checked against the padded outputs at load; off where they differ); ONNX "
        "models, which cannot pack, run a batch of mixed lengths as length buckets (calls each padded to "
        "their own longest); off: one call padded to the batch's longest"))] = "auto"
    num_threads: Annotated[int | None, Field(gt=0, description=(
        "CPU threads for the forward pass; null: every core this process may use"))] = None
    compile: Annotated[Literal["auto", "on", "off"], Field(description=(
        "torch.compile an encoder's layer stack (inductor, frozen weights) while warming up; auto: for "
        "torchao-quantized models on CPU, whose eager int8 kernels are many times slower than fp32 "
        "(compiling takes one to a few minutes, once per process)"))] = "auto"


class BatchingSpec(_Strict):
    max_batch_size: Annotated[int, Field(gt=0, le=4096, description=(
        "most requests' inputs run in one forward pass (1 turns batching off)"))] = 32
    max_batch_tokens: Annotated[int, Field(gt=0, description=(
        "padded token budget of one forward pass: batch size x longest input"))] = 8192
    max_wait_ms: Annotated[float, Field(ge=0, le=10_000, description=(
        "how long the oldest waiting request may wait for others to join its batch"))] = 5.0
    linger_ms: Annotated[float, Field(ge=0, le=10_000, description=(
        "after a forward pass, how long a batch that is not full may keep collecting while requests keep "
        "arriving (each within max_wait_ms of the last): the clients just answered are sending their next "
        "requests, and closed-loop clients then fill one batch instead of two half batches; 0 turns it off"))] = 20.0
    prefix_cache: Annotated[int, Field(ge=0, le=64, description=(
        "causal LMs: prompt prefixes that recent prompts share (a system prompt) whose KV cache is kept, so "
        "a new sequence starts from it instead of recomputing it; 0 turns prefix reuse off"))] = 8


class LimitsSpec(_Strict):
    max_queue: Annotated[int, Field(gt=0, description=(
        "inputs waiting or running before new requests get 429 with Retry-After"))] = 256
    max_inputs: Annotated[int, Field(gt=0, description="inputs in one request (413 above)")] = 64
    max_input_tokens: Annotated[int | None, Field(gt=0, description=(
        "tokens per input (422 above); null: the model's max_length"))] = None
    max_body_bytes: Annotated[int, Field(gt=0, description="request body size (413 above)")] = 1_000_000
    max_new_tokens: Annotated[int, Field(gt=0, description=(
        "most tokens one completion may generate (a larger max_tokens answers 422)"))] = 512
    timeout_s: Annotated[float, Field(gt=0, description=(
        "deadline of one request, queueing included (504 after it)"))] = 30.0


class ServerSpec(_Strict):
    host: Annotated[str, Field(min_length=1, description="address to listen on")] = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535, description="TCP port (0 picks a free one)")] = 8000
    api_key_env: Annotated[str | None, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description=(
        "environment variable holding the bearer token every non-health route requires; "
        "unset or empty variable: no token needed"))] = "LLMOS_API_KEY"
    drain_timeout_s: Annotated[float, Field(ge=0, description=(
        "on SIGTERM, how long in-flight requests may take to finish before the server exits"))] = 30.0
    log_requests: Annotated[bool, Field(description="log one line per request")] = False


class ReplicasSpec(_Strict):
    min: Annotated[int, Field(ge=1, description="replicas kept running at least")] = 1
    max: Annotated[int, Field(ge=1, description="replicas the autoscaler may start at most")] = 1

    @model_validator(mode="after")
    def _ordered(self) -> ReplicasSpec:
        if self.max < self.min:
            raise ValueError(f"replicas.max ({self.max}) must be at least replicas.min ({self.min})")
        return self


class AutoscaleSpec(_Strict):
    target_outstanding: Annotated[float, Field(gt=0, description=(
        "mean queued + in-flight requests per replica the autoscaler aims for"))] = 4.0
    max_p95_ms: Annotated[float | None, Field(gt=0, description=(
        "scale up when the p95 latency is above this; null: latency is not a trigger"))] = None
    upscale_cooldown_s: Annotated[float, Field(ge=0, description=(
        "least time between two scale-ups"))] = 10.0
    downscale_cooldown_s: Annotated[float, Field(ge=0, description=(
        "how long load must stay low before a replica is removed"))] = 60.0


class ReplicaResources(_Strict):
    cpus: Annotated[int, Field(gt=0, description="CPU cores per replica")] = 1
    memory_gb: Annotated[float | None, Field(gt=0, description="memory per replica, in GB")] = None
    gpus: Annotated[int, Field(ge=0, description="GPUs per replica")] = 0


class ServeJob(_Strict):
    kind: Annotated[Literal["serve"], Field(description="what the job does")] = "serve"
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", description=(
        "deployment name; also the model name the OpenAI routes report"))] = "serve"
    model: Annotated[str, Field(description=(
        "registry reference: NAME@ALIAS (sentiment@production), NAME/VERSION or NAME (latest)"))]
    tracking_uri: Annotated[str | None, Field(description=(
        "MLflow URI of the registry; null: $LLMOS_TRACKING_URI, else SQLite under $LLMOS_HOME"))] = None
    runtime: Annotated[RuntimeSpec, Field(description="how the model runs")] = RuntimeSpec()
    batching: Annotated[BatchingSpec, Field(description="dynamic batching of requests")] = BatchingSpec()
    limits: Annotated[LimitsSpec, Field(description="per-request and queue limits")] = LimitsSpec()
    server: Annotated[ServerSpec, Field(description="HTTP listener, auth and shutdown")] = ServerSpec()
    replicas: Annotated[ReplicasSpec, Field(description="how many replicas a deployment keeps")] = ReplicasSpec()
    autoscale: Annotated[AutoscaleSpec, Field(description="when a deployment adds or removes replicas")] = (
        AutoscaleSpec())
    resources: Annotated[ReplicaResources, Field(description="what each replica needs")] = ReplicaResources()
    canary: Annotated[CanarySpec | None, Field(description=(
        "deploying a new version to a running deployment: a weighted traffic split, promoted step by step or "
        "rolled back on live figures; null: roll every replica at once"))] = None

    @field_validator("model")
    @classmethod
    def _is_ref(cls, value: str) -> str:
        if not _REF.match(value.strip()):
            raise ValueError(f"expected a registry reference like sentiment@production, sentiment/3 or sentiment, "
                             f"got {value!r}")
        return value.strip()

    @model_validator(mode="after")
    def _limits_fit(self) -> ServeJob:
        if self.limits.max_queue < self.batching.max_batch_size:
            raise ValueError(f"limits.max_queue ({self.limits.max_queue}) must be at least "
                             f"batching.max_batch_size ({self.batching.max_batch_size}), or no batch ever fills")
        return self
