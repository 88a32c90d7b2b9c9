"""The quickstart job: MiniLM-L6 fine-tuned on the bundled support-intents data, registered as
`quickstart@candidate`."""

from __future__ import annotations

from llmos.spec import TrainJob

__all__ = ["quickstart_job"]


def quickstart_job(model: str = "minilm-l6", epochs: float = 4, max_steps: int | None = None,
                   procs: int = 1) -> TrainJob:
    from llmos.data import bundled_dataset_path
    from llmos.paths import runs_dir

    data = bundled_dataset_path("support-intents")
    return TrainJob.model_validate({
        "kind": "train",
        "name": "quickstart",
        "output": str(runs_dir() / "quickstart"),
        "model": {"name": model, "task": "classification", "max_length": 64},
        "data": {"train": str(data / "train.csv"), "eval": str(data / "test.csv"),
                 "text_column": "text", "label_column": "label"},
        # A small set: a higher learning rate and a short warmup converge in a few epochs.
        "train": {"epochs": epochs, "max_steps": max_steps, "batch_size": 16, "lr": 1e-4,
                  "warmup_ratio": 0.1, "log_every_steps": 5},
        "checkpoint": {"every_steps": None, "keep": 1},
        "resources": {"procs": procs},
        "register": {"name": "quickstart", "alias": "candidate",
                     "description": "MiniLM-L6 fine-tuned on the bundled support-intents data"},
    })
