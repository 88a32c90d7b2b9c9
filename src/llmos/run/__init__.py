"""Running jobs: the single entrypoint `python -m llmos.run JOB.json` and the local launcher.

Every way of running a job (the CLI in the foreground, the control plane, the Ray executor)
starts that same entrypoint, under `torchrun` when the job has several workers.
"""

from llmos.run._evalfile import read as read_evals
from llmos.run._launch import Launch, job_file, launch, prepare_run_dir, worker_command
from llmos.run._runfile import read as read_runfile
from llmos.run._runfile import update as update_runfile
from llmos.run._signals import EXIT_PREEMPTED

__all__ = ["EXIT_PREEMPTED", "Launch", "job_file", "launch", "prepare_run_dir", "read_evals", "read_runfile",
           "update_runfile", "worker_command"]
