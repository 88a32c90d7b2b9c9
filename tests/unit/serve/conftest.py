"""Tiny registered models (classification, embedding, causal LM) in one MLflow store for the whole
session, and servers of them on free ports (module-scoped: one model load per test module)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

LABELS = ["negative", "positive"]


def register_tiny(home: Path, task: str, name: str) -> str:
    """Build a tiny random model, log it to MLflow and register it; returns `name@candidate`."""
    import torch

    from llmos.models import build, save_trained
    from llmos.registry import register_model
    from llmos.spec import TrackingSpec
    from llmos.tracking import start_run

    torch.manual_seed(0)
    preset = "tiny-gpt2" if task == "causal-lm" else "tiny-bert"
    built = build(preset, task, label_names=LABELS if task == "classification" else None)
    folder = save_trained(built.model, built.tokenizer, home / "work" / name, task=task, base=preset,
                          label_names=LABELS if task == "classification" else None, max_length=64)
    uri = f"sqlite:///{home / 'mlflow.db'}"
    tracker = start_run(TrackingSpec(uri=uri, system_metrics=False), run_name=name, job={"task": task}, tags={})
    artifact = tracker.log_model_dir(folder)
    tracker.finish()
    register_model(name=name, run_id=tracker.run_id, artifact_uri=artifact, alias="candidate", tags={},
                   tracking_uri=uri)
    return f"{name}@candidate"


@pytest.fixture(scope="session")
def serve_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    home = tmp_path_factory.mktemp("serve-home")
    old = os.environ.get("LLMOS_HOME")
    os.environ["LLMOS_HOME"] = str(home)  # the session fixtures below register into this home
    try:
        yield home
    finally:
        if old is None:
            os.environ.pop("LLMOS_HOME", None)
        else:
            os.environ["LLMOS_HOME"] = old
        import sys

        if "mlflow" in sys.modules:
            sys.modules["mlflow"].set_tracking_uri(None)


@pytest.fixture(scope="session")
def tiny_refs(serve_home: Path) -> dict[str, str]:
    return {task: register_tiny(serve_home, task, name)
            for task, name in (("classification", "tiny-cls"), ("embedding", "tiny-emb"), ("causal-lm", "tiny-lm"))}


@pytest.fixture
def llmos_home(serve_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Overrides the suite's per-test home: every test here reads the session's registry."""
    monkeypatch.setenv("LLMOS_HOME", str(serve_home))
    monkeypatch.delenv("LLMOS_TRACKING_URI", raising=False)
    return serve_home


def serve_job(ref: str, **sections: Any) -> Any:
    from llmos.spec import validate_dict

    # One model thread: the test machine is shared, and tiny models gain nothing from two.
    sections.setdefault("runtime", {"num_threads": 1})
    return validate_dict({"kind": "serve", "model": ref, "name": ref.split("@")[0], **sections})


@pytest.fixture(scope="session")
def start_server(serve_home: Path) -> Callable[..., Any]:
    """`with start_server(job, api_key=None) as running:` a real server on a free port."""
    from llmos.serve import Service, prepare, serve_in_thread

    def start(job: Any, api_key: str | None = None) -> Any:
        return serve_in_thread(Service(job, prepare(job), api_key=api_key))

    return start


def register_folder(home: Path, folder: Path, name: str, tags: dict[str, str]) -> str:
    from llmos.registry import register_model
    from llmos.spec import TrackingSpec
    from llmos.tracking import start_run

    uri = f"sqlite:///{home / 'mlflow.db'}"
    tracker = start_run(TrackingSpec(uri=uri, system_metrics=False), run_name=name, job={}, tags={})
    artifact = tracker.log_model_dir(folder)
    tracker.finish()
    register_model(name=name, run_id=tracker.run_id, artifact_uri=artifact, alias="candidate", tags=tags,
                   tracking_uri=uri)
    return f"{name}@candidate"


def compress_child(home: Path, parent_ref: str, name: str, eval_csv: Path, data: dict[str, Any],
                   recipe: str = "onnx-int8") -> str:
    """A compression `recipe` on a registered parent, set up as `llmos compress` sets it up; the child
    registered as `name@candidate` (the report and gate of a full compression are not needed here)."""
    from transformers import AutoTokenizer

    from llmos.compress import RecipeContext, get_recipe
    from llmos.compress._data import load_data
    from llmos.compress._pipeline import resolve_parent
    from llmos.spec import parse_job
    from llmos.tracking import NullTracker

    job: Any = parse_job({"kind": "compress", "model": parent_ref, "recipe": [recipe], "eval": str(eval_csv),
                          "data": data})
    parent = resolve_parent(job)
    loaded = load_data(job, parent, AutoTokenizer.from_pretrained(str(parent.folder)))
    out, work = home / "work" / name / "child", home / "work" / name / "scratch"
    out.mkdir(parents=True)
    work.mkdir(parents=True)
    spec = job.recipe[0]
    ctx = RecipeContext(parent=parent, job=job, label=spec.label, out_dir=out, work_dir=work, data=loaded,
                        tracker=NullTracker(), note=lambda _: None)
    child = get_recipe(recipe).run(ctx, spec.typed_params())
    return register_folder(home, child, name, {"recipe": recipe, "parent": parent.ref})
