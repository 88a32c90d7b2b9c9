"""`run_job`: one replica from a `ServeJob`, with the lines a person (or a log file) wants to see."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

__all__ = ["run_job"]


def run_job(job: Any, *, api_key: str | None = None, echo: Callable[[str], None] | None = None) -> int:
    """Fetch, listen, load, serve; returns the exit code (0 after a drain). Errors in the model,
    the spec or the address raise before the server listens."""
    _openmp_defaults()
    from llmos.serve._server import bind, serve
    from llmos.serve._service import Service, prepare

    say = echo or (lambda line: print(line, file=sys.stderr, flush=True))
    source = prepare(job)
    service = Service(job, source, api_key=api_key)
    sock = bind(job.server.host, job.server.port)
    host, port = sock.getsockname()[:2]
    url = f"http://{host if ':' not in host else f'[{host}]'}:{port}"
    say(f"llmos serve: {source.ref} (version {source.version}, {source.info.task}) on {url}; loading")

    def ready() -> None:
        runtime = service.runtime
        routes = {"classification": "POST /v1/classify", "embedding": "POST /v1/embeddings",
                  "causal-lm": "POST /v1/completions, /v1/chat/completions"}[source.info.task]
        say(f"ready in {service.load_s:.1f} s: {runtime.name} {runtime.precision} on {runtime.device}, "
            f"packing {getattr(runtime, 'packing', 'off')}, compiled {getattr(runtime, 'compiled', 'off')}; "
            f"{routes}; auth {'on' if service.api_key else 'off'}")
        say(f"next: llmos bench serve {url} --duration 10s   (or curl {url}/v1/models)")

    code = serve(service, sock, on_ready=ready)
    say("llmos serve: drained and stopped")
    return code


def _openmp_defaults() -> None:
    """The server's OpenMP waiting (llmos._threads); it takes effect only if torch (and with it
    libgomp, which reads it once) is not loaded yet, as in `llmos serve` and `python -m
    llmos.serve`, whose imports stay light until here."""
    from llmos._threads import prepare_process

    if "torch" not in sys.modules:
        prepare_process(role="server")
