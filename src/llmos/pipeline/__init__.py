"""Pipelines: a `kind: pipeline` spec's stages run in order, passing models by registry reference.

`advance` decides what starts next from the stages' states (pure); `read_verdict` reads what a
finished stage yielded; `deploy_readiness` whether a deploy stage's deployment serves yet;
`stage_spec` turns a stage into a spec of its kind; `run_foreground` runs a
whole pipeline in this process (`llmos run`). The control plane's driver is `llmos.control._pipelines`.
"""

from llmos.pipeline._checks import stage_problems
from llmos.pipeline._outputs import Verdict, bounds_missed, compress_verdict, read_verdict, train_verdict
from llmos.pipeline._plan import make_pipeline_folder, pipeline_folder, stage_spec
from llmos.pipeline._progress import DONE, STAGE_STATES, Progress, advance, stage_state_of_job
from llmos.pipeline._ready import Readiness, deploy_readiness, expected_version, log_tail

__all__ = [
    "DONE",
    "STAGE_STATES",
    "Progress",
    "Readiness",
    "Verdict",
    "advance",
    "bounds_missed",
    "compress_verdict",
    "deploy_readiness",
    "expected_version",
    "log_tail",
    "make_pipeline_folder",
    "pipeline_folder",
    "read_verdict",
    "run_foreground",
    "stage_problems",
    "stage_spec",
    "stage_state_of_job",
    "train_verdict",
]


def __getattr__(name: str):  # type: ignore[no-untyped-def]
    if name == "run_foreground":  # it imports the training launcher and the registry: only when used
        from llmos.pipeline._foreground import run_foreground

        return run_foreground
    raise AttributeError(name)
