"""Fixtures that several integration modules read: runs that cost a training process each."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration._util import llmos, tiny_bert_job


@pytest.fixture(scope="session")
def undisturbed_run(tmp_path_factory: pytest.TempPathFactory, sentiment_csv: tuple[Path, Path]) -> Path:
    """The run folder of `tiny_bert_job` trained by `llmos train` from start to end without a
    break: every killed, stopped or preempted run of that job must end with its weights, bit for
    bit; test_serve_cli serves its model. Trained once for the session, in a home of its own;
    tests only read it."""
    folder = tmp_path_factory.mktemp("undisturbed")
    llmos("train", str(tiny_bert_job(folder, sentiment_csv, folder / "run")), home=folder / "home")
    return folder / "run"
