"""The Python front door: what the CLI does, as functions with typed results.

    import llmos
    result = llmos.train("job.yaml", train={"lr": 3e-5})     # TrainResult
    llmos.compress(result.registered.ref, recipe=["int8"], eval="dev.csv")
    with llmos.serve(result.registered.ref, server={"port": 0}) as server: ...
    with llmos.Client() as client: client.submit("job.yaml").id
    llmos.export("reviews@candidate", format="onnx", out="reviews-onnx")

The CLI parses its flags into the same overrides and calls these functions (or the ones they are
made of: `train_job` + `run_train`, `compress_job`, `serve_job`, `deploy_spec`). Importing this
package is cheap; torch, transformers and mlflow load when a function runs.
"""

from llmos.api._client import Client, deploy_spec
from llmos.api._compress import compress, compress_job
from llmos.api._export import export
from llmos.api._resolve import as_dotted
from llmos.api._serve import Server, serve, serve_job
from llmos.api._train import Registered, TrainResult, run_train, train, train_job
from llmos.api._types import Attempt, Deployment, Job, JobDetails, LogChunk, Replica, Transition

__all__ = [
    "Attempt",
    "Client",
    "Deployment",
    "Job",
    "JobDetails",
    "LogChunk",
    "Registered",
    "Replica",
    "Server",
    "TrainResult",
    "Transition",
    "as_dotted",
    "compress",
    "compress_job",
    "deploy_spec",
    "export",
    "run_train",
    "serve",
    "serve_job",
    "train",
    "train_job",
]
