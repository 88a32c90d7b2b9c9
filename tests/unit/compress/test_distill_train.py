"""The training recipe with a `distill` section: it runs, it learns, a bad teacher is refused up
front, and alpha 0 trains exactly as a job without the section does."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from llmos.errors import ModelError, SpecError
from llmos.models import build, save_trained
from llmos.run import prepare_run_dir
from llmos.run.train import train
from llmos.spec import parse_job

LABELS = ["negative", "positive"]


@pytest.fixture(autouse=True)
def keep_signal_handlers() -> Iterator[None]:
    """The recipe installs its graceful-stop handlers; give pytest its own back afterwards."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def run(tmp_path: Path, name: str, data: tuple[Path, Path], max_steps: int | None = None, **sections: object) -> Path:
    job = parse_job({"name": name, "output": str(tmp_path / name),
                     "model": {"name": "tiny-bert", "max_length": 32},
                     "data": {"train": str(data[0]), "eval": str(data[1])},
                     "train": {"epochs": 2, "batch_size": 8, "lr": 0.003, "precision": "fp32",
                               "log_every_steps": 5, "max_steps": max_steps,
                               # one thread: a count that follows the machine's load (CoreWatch) changes float sums
                               "num_threads": 1},
                     "checkpoint": {"every_steps": None}, "tracking": {"enabled": False}, **sections})
    assert train(prepare_run_dir(job)) == 0  # type: ignore[arg-type]
    return tmp_path / name


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory, sentiment_csv: tuple[Path, Path]) -> Path:
    """A run without a distill section; its model is also the teacher of the others."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        return run(tmp_path_factory.mktemp("plain"), "plain", sentiment_csv)
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def test_a_distilled_run_learns_and_says_so(tmp_path: Path, sentiment_csv: tuple[Path, Path], plain: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    teacher = plain / "model"
    run_dir = run(tmp_path, "kd", sentiment_csv, distill={"teacher": str(teacher), "temperature": 2.0, "alpha": 0.5})
    losses = [float(line.split("loss ")[1].split()[0]) for line in capsys.readouterr().out.splitlines()
              if line.startswith("step ")]
    assert len(losses) >= 5 and losses[-1] < 0.8 * losses[0], losses  # the teacher ends near 0.43 from 0.69
    assert (run_dir / "model" / "model.safetensors").is_file()


def test_alpha_zero_trains_bit_for_bit_like_no_distill_section(tmp_path: Path, sentiment_csv: tuple[Path, Path],
                                                                plain: Path) -> None:
    short = run(tmp_path, "short", sentiment_csv, max_steps=4)
    kd0 = run(tmp_path, "kd0", sentiment_csv, max_steps=4, distill={"teacher": str(plain / "model"), "alpha": 0.0})
    before, after = (load_file(str(folder / "model" / "model.safetensors")) for folder in (short, kd0))
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_a_teacher_with_other_labels_is_refused_before_training(tmp_path: Path, sentiment_csv: tuple[Path, Path],
                                                                tmp_path_factory: pytest.TempPathFactory) -> None:
    built = build("tiny-bert", "classification", label_names=["positive", "negative"])
    other = save_trained(built.model, built.tokenizer, tmp_path / "other", task="classification", base="x",
                         label_names=["positive", "negative"], max_length=32)
    with pytest.raises(ModelError, match=r"data\.labels"):
        run(tmp_path, "bad", sentiment_csv, distill={"teacher": str(other)})
    assert not (tmp_path / "bad" / "checkpoints").exists()
    with pytest.raises(ModelError, match="not a model folder written by llmos"):
        run(tmp_path, "missing", sentiment_csv, distill={"teacher": str(tmp_path / "nowhere")})


def test_distill_section_is_validated_with_dotted_paths() -> None:
    with pytest.raises(SpecError) as err:
        parse_job({"data": {"train": "a.csv"}, "distill": {"teacher": "t", "alpha": 1.5, "temperature": 0}})
    problems = dict(err.value.problems)
    assert "distill.alpha" in problems and "distill.temperature" in problems
