"""Fixtures for unit tests that talk to a real MLflow store: one store per test module (opening
MLflow's SQLAlchemy stores for each test would add up). Conftests import these names."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def shared_home(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Path]:
    yield tmp_path_factory.mktemp(f"llmos-home-{request.module.__name__.rsplit('.', 1)[-1]}")
    import sys

    if "mlflow" in sys.modules:  # start_run sets MLflow's global URI; leave no trace for others
        sys.modules["mlflow"].set_tracking_uri(None)


@pytest.fixture(autouse=True)
def llmos_home(shared_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Overrides the suite's per-test home with the module's shared one."""
    monkeypatch.setenv("LLMOS_HOME", str(shared_home))
    for var in ("LLMOS_TRACKING_URI", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    return shared_home


def _model_dir(folder: Path, weights: bytes = b"\x00" * 256) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text('{"model_type": "bert"}')
    (folder / "model.safetensors").write_bytes(weights)
    (folder / "tokenizer").mkdir(exist_ok=True)
    (folder / "tokenizer" / "vocab.txt").write_text("[PAD]\n[UNK]\nhello\n")
    return folder


@pytest.fixture
def make_model_dir() -> Callable[..., Path]:
    """Writes a stand-in Hugging Face folder: the manifest cares about bytes, not tensors."""
    return _model_dir
