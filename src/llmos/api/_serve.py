"""`llmos.serve(...)`: a registered model behind a real HTTP server in this process."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmos.api._resolve import SpecLike, as_dotted, is_spec_file
from llmos.errors import SpecError

__all__ = ["Server", "serve", "serve_job"]


def serve_job(model: str | None, spec: SpecLike | None, dotted: list[str], source: str = "llmos serve") -> Any:
    """One validated `kind: serve` job from a registry reference and/or a spec, overrides on top.
    The deployment's `name` (what OpenAI clients pass as `model`) defaults to the registered name."""
    from pydantic import BaseModel

    from llmos.spec import apply_overrides, load_job, validate_dict

    if spec is None and model is None:
        raise SpecError("say which model to serve.", hint="llmos serve NAME@ALIAS (see llmos models ls), "
                                                          "or llmos serve --spec job.yaml")
    base: dict[str, Any] = {"kind": "serve"}
    if spec is not None:
        loaded = spec if isinstance(spec, BaseModel) else (
            validate_dict({"kind": "serve", **spec}, source) if isinstance(spec, Mapping) else load_job(spec))
        if loaded.kind != "serve":  # type: ignore[attr-defined]
            raise SpecError(f"{spec} is a '{loaded.kind}' spec; serving needs kind: serve.",  # type: ignore[attr-defined]
                            hint="llmos spec example serve > serve.yaml")
        base = loaded.model_dump(mode="json", exclude_unset=True)
        base["kind"] = "serve"
        source = str(spec) if isinstance(spec, str | Path) else source
    if model is not None:
        base["model"] = model
    if "name" not in base and not any(d.startswith("name=") for d in dotted) and isinstance(base.get("model"), str):
        base["name"] = base["model"].removeprefix("models:/").split("@")[0].split("/")[0]
    return validate_dict(apply_overrides(base, dotted), source=source)


@dataclass
class Server:
    """A model server running in a thread of this process; a context manager that stops it."""

    url: str
    model: str  # the reference it was asked for
    version: str  # the registry version it serves
    _context: Any = field(repr=False, default=None)

    def stop(self) -> None:
        """Stop taking requests, finish those in flight, stop the server."""
        if self._context is not None:
            context, self._context = self._context, None
            context.__exit__(None, None, None)

    def wait(self) -> None:
        """Block until Ctrl-C, then stop."""
        import time

        try:
            while self._context is not None:
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        self.stop()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *_: Any) -> None:
        self.stop()


def serve(target: SpecLike, *, api_key: str | None = None, ready_timeout_s: float = 300, dotted: Iterable[str] = (),
          **overrides: Any) -> Server:
    """Serve a registered model (`"sentiment@production"`) or a `kind: serve` spec over HTTP from a
    background thread of this process; returns once the model answers.

        with llmos.serve("sentiment@production", server={"port": 0}) as server:
            httpx.post(f"{server.url}/v1/classify", json={"input": ["great"]})

    Keyword overrides are spec keys (`batching={"max_batch_size": 16}`). `llmos serve` runs the same
    job in the foreground with signal handling; `llmos deploy` runs it under the control plane."""
    from llmos.serve import Service, prepare, serve_in_thread

    is_spec = not isinstance(target, str) or is_spec_file(target)
    job = serve_job(None if is_spec else target, target if is_spec else None, as_dotted(overrides, dotted),
                    source="llmos.serve")
    source = prepare(job)
    context = serve_in_thread(Service(job, source, api_key=api_key), host=job.server.host, port=job.server.port,
                              ready_timeout_s=ready_timeout_s)
    running = context.__enter__()
    return Server(running.url, source.ref, str(source.version), context)
