"""Serving: one registered model version behind an HTTP server with dynamic batching,
OpenAI-compatible routes, Prometheus metrics, overload protection and draining shutdown.

`run_job(ServeJob)` runs a replica in the foreground (what `llmos serve` and
`python -m llmos.serve JOB.json` do); `prepare` + `Service` + `serve_in_thread` run one inside
this process (tests, benchmarks); `load_local` + `answer` run a replica's service and route
handler over a model folder without HTTP (the compression report's served figures). Batch
formation (`form_batch`) is a pure function.
"""

from llmos.serve._batching import BatchDecision, BatchPolicy, Waiting, form_batch, retry_after_s
from llmos.serve._local import answer, load_local, openmp_defaults
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
    "answer",
    "begin_drain",
    "form_batch",
    "load_local",
    "openmp_defaults",
    "prepare",
    "retry_after_s",
    "run_job",
    "serve_in_thread",
]
