"""`llmos serve MODEL_REF` / `llmos serve --spec FILE`: one replica in the foreground.

Flags are named after spec fields (`--max-batch-size` is `batching.max_batch_size`); dotted
overrides reach every other field. Everything is validated as one `kind: serve` spec.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

# flag -> spec field it sets
_FLAG_FIELDS = {
    "host": "server.host", "port": "server.port", "max_batch_size": "batching.max_batch_size",
    "max_batch_tokens": "batching.max_batch_tokens", "max_wait_ms": "batching.max_wait_ms",
    "linger_ms": "batching.linger_ms", "max_queue": "limits.max_queue", "timeout_s": "limits.timeout_s",
    "runtime": "runtime.kind",
    "precision": "runtime.precision", "device": "runtime.device", "num_threads": "runtime.num_threads",
    "api_key_env": "server.api_key_env", "name": "name",
}


def register(app: typer.Typer) -> None:
    app.command(context_settings={"allow_interspersed_args": True})(serve)


def serve(
    model: Annotated[str | None, typer.Argument(help="registry reference: NAME@ALIAS, NAME/VERSION or NAME")] = None,
    overrides: Annotated[list[str] | None, typer.Argument(
        help="dotted spec overrides, e.g. limits.max_inputs=16")] = None,
    spec: Annotated[Path | None, typer.Option(
        help="a kind: serve spec (YAML); flags and overrides apply on top")] = None,
    host: Annotated[str | None, typer.Option(help="address to listen on", show_default="127.0.0.1")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port; 0 picks a free one", show_default="8000")] = None,
    max_batch_size: Annotated[int | None, typer.Option(help="inputs per forward pass", show_default="32")] = None,
    max_batch_tokens: Annotated[int | None, typer.Option(
        help="padded tokens per forward pass", show_default="8192")] = None,
    max_wait_ms: Annotated[float | None, typer.Option(
        help="longest wait for a batch to fill", show_default="5")] = None,
    linger_ms: Annotated[float | None, typer.Option(
        help="after a pass, collect answered clients' next requests up to this long (0: off)",
        show_default="20")] = None,
    max_queue: Annotated[int | None, typer.Option(
        help="queued + running inputs before 429", show_default="256")] = None,
    timeout_s: Annotated[float | None, typer.Option(help="deadline per request, then 504", show_default="30")] = None,
    runtime: Annotated[str | None, typer.Option(help="runtime.kind: auto, torch or onnx", show_default="auto")] = None,
    precision: Annotated[str | None, typer.Option(help="auto, fp32 or bf16", show_default="fp32")] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu or cuda", show_default="auto")] = None,
    num_threads: Annotated[int | None, typer.Option(
        help="CPU threads for the model", show_default="every usable core")] = None,
    threads: Annotated[int | None, typer.Option(hidden=True, help="old name of --num-threads")] = None,
    api_key: Annotated[str | None, typer.Option(
        help="bearer token every non-health route requires", show_default="$LLMOS_API_KEY")] = None,
    api_key_env: Annotated[str | None, typer.Option(help="environment variable holding the token")] = None,
    name: Annotated[str | None, typer.Option(
        help="model name the routes report", show_default="the registered name")] = None,
    print_job: Annotated[bool, typer.Option(
        help="print the resolved job as JSON (for python -m llmos.serve JOB.json) and exit")] = False,
) -> None:
    """Serve a registered model over HTTP with dynamic batching (OpenAI-compatible routes, /metrics)."""
    num_threads = num_threads if num_threads is not None else threads
    flags = {k: v for k, v in locals().items() if k in _FLAG_FIELDS and v is not None}
    job = _job(model, spec, flags, overrides or [])
    if print_job:
        typer.echo(json.dumps(job.model_dump(mode="json"), indent=2))
        return
    from llmos.serve import run_job

    raise typer.Exit(run_job(job, api_key=api_key))


def _job(model: str | None, spec: Path | None, flags: dict[str, Any], overrides: list[str]) -> Any:
    from llmos.api import serve_job

    if model is not None and "=" in model:  # `llmos serve --spec job.yaml a.b=1`: no model, only overrides
        overrides, model = [model, *overrides], None
    sets = [f"{_FLAG_FIELDS[k]}={v}" for k, v in flags.items()]
    return serve_job(model, spec, [*sets, *overrides], source=str(spec) if spec else "llmos serve")
