"""A replica without its HTTP server: the same service, runtime, warm-up, batch worker and route
handler that `llmos serve` runs, over a model folder, answering requests called in-process.

For measuring what serving a model gives (the compression report times every model this way):
only the socket and the JSON text are left out, so a model's figures are the server's own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["ROUTES", "answer", "load_local", "openmp_defaults"]

# The route each task's requests take (the server's; its handler answers them here too).
ROUTES = {"classification": "/v1/classify", "embedding": "/v1/embeddings"}


def openmp_defaults() -> None:
    """The server's OpenMP settings, for a process about to load a model as a replica would
    (call before torch is imported: libgomp reads them once)."""
    from llmos.serve._run import _openmp_defaults

    _openmp_defaults()


def load_local(job: Any, folder: Path, load: bool = True) -> Any:
    """The `Service` of `job` (a `ServeJob`; its `model` is only a name here) over `folder`, loaded,
    warmed up and its batch worker running, as a replica has it when /readyz turns 200.
    Call `service.stop()` when done. `load=False`: not loaded yet, for `serve_in_thread`, which
    loads it as a server does (a causal LM's is driven that way: `answer` takes encoder routes only)."""
    from llmos.errors import SpecError
    from llmos.serve._runtime import read_info
    from llmos.serve._service import Service, Source

    info = read_info(folder)
    if info.task not in ROUTES and info.task != "causal-lm":
        raise SpecError(f"{folder} is a {info.task} model; only encoder models (classification, embedding) are "
                        "answered in-process.", hint="Serve it with llmos serve and drive it with llmos bench serve.")
    source = Source(ref=job.model, name=job.model, version=folder.name, folder=folder, info=info)
    service = Service(job, source)
    if load:
        service.load()
    return service


async def answer(service: Any, texts: list[str], pairs: list[str] | None = None) -> dict[str, Any]:
    """One request of `texts` (with `pairs`: text pairs), answered by the handler of the task's
    route: limits checked, tokenized, queued, batched with whatever else waits, run, answered."""
    from llmos.serve._routes_encode import DIRECT

    schema, handler = DIRECT[ROUTES[service.info.task]]
    payload: Any = texts if pairs is None else [[t, p] for t, p in zip(texts, pairs, strict=True)]
    return await handler(service, schema(input=payload))
