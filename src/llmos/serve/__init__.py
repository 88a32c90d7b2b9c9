"""Serving: one registered model version behind an HTTP server with dynamic batching,
OpenAI-compatible routes, Prometheus metrics, overload protection and draining shutdown.

`run_job(ServeJob)` runs a replica in the foreground (what `llmos serve` and
`python -m llmos.serve JOB.json` do); `prepare` + `Service` + `serve_in_thread` run one inside
this process (tests, benchmarks). Batch formation (`form_batch`) is a pure function.
"""

from llmos.serve._batching import BatchDecision, BatchPolicy, Waiting, form_batch, retry_after_s
from llmos.serve._run import run_job
from llmos.serve._server import Running, begin_drain, serve_in_thread
from llmos.serve._service import Service, Source, prepare

__all__ = [
    "BatchDecision",
    "BatchPolicy",
    "Running",
    "Service",
    "Source",
    "Waiting",
    "begin_drain",
    "form_batch",
    "prepare",
    "retry_after_s",
    "run_job",
    "serve_in_thread",
]
