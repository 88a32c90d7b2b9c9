"""`llmos models ...` through the real Typer app and a real MLflow store."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llmos.cli.main import app
from llmos.errors import RegistryError
from llmos.registry import register_model
from llmos.spec import TrackingSpec
from llmos.tracking import start_run

runner = CliRunner()


def _llmos(*args: str):
    return runner.invoke(app, ["models", *args], env={"COLUMNS": "200"})


@pytest.fixture
def versions(tmp_path: Path, make_model_dir: Callable[..., Path]) -> Callable[[str, int], None]:
    def make(name: str, n: int) -> None:
        for i in range(n):
            with start_run(TrackingSpec(system_metrics=False), run_name=name, job={}, tags={}) as tracker:
                tracker.log_metrics({"eval/accuracy": 0.5 + i / 10}, step=1)
                uri = tracker.log_model_dir(make_model_dir(tmp_path / f"{name}{i}"))
            register_model(name=name, run_id=tracker.run_id, artifact_uri=uri, alias="candidate",
                           tags={"data_hash": f"hash{i}"})
    return make


def test_ls_on_an_empty_registry_says_how_to_make_one() -> None:
    result = _llmos("ls")
    assert result.exit_code == 0, result.output
    assert "no registered models yet" in result.output
    assert "llmos quickstart" in result.output


def test_ls_show_alias_rollback(versions) -> None:
    versions("clidemo", 2)

    result = _llmos("ls")
    assert result.exit_code == 0, result.output
    assert "clidemo" in result.output and "candidate→2" in result.output
    assert result.output.rstrip().endswith("next: llmos models show clidemo")

    result = _llmos("show", "clidemo")
    assert result.exit_code == 0, result.output
    assert "history: 1 → 2" in result.output
    assert "eval/accuracy=0.6" in result.output and "hash1" in result.output
    assert result.output.rstrip().endswith("next: llmos models show clidemo/2")

    result = _llmos("show", "clidemo@candidate")
    assert result.exit_code == 0, result.output
    assert "clidemo/2" in result.output and "metric eval/accuracy" in result.output
    assert "data_hash" in result.output and "hash1" in result.output

    result = _llmos("alias", "clidemo", "1", "production")
    assert result.exit_code == 0, result.output
    assert "clidemo@production → version 1" in result.output
    assert "next: llmos models show clidemo@production" in result.output

    result = _llmos("rollback", "clidemo", "candidate")
    assert result.exit_code == 0, result.output
    assert "clidemo@candidate: version 2 → 1" in result.output
    assert result.output.rstrip().endswith("next: llmos models show clidemo@candidate")


def test_errors_reach_the_cli_as_registry_errors(versions) -> None:
    versions("clierr", 1)
    result = _llmos("show", "clierr@nope")
    assert isinstance(result.exception, RegistryError)  # main() prints it without a traceback
    assert "Aliases: candidate -> 1" in str(result.exception)
    result = _llmos("rollback", "clierr", "candidate")
    assert isinstance(result.exception, RegistryError)
    assert "no earlier version" in str(result.exception)
    result = _llmos("show", "bad ref!")
    assert isinstance(result.exception, RegistryError)


def test_help_lists_the_commands() -> None:
    result = _llmos("--help")
    assert result.exit_code == 0
    for command in ("ls", "show", "alias", "rollback"):
        assert command in result.output
