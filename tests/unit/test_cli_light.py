"""The CLI shell: fast help without heavy imports, presets, spec commands."""

from __future__ import annotations

import subprocess
import sys

from typer.testing import CliRunner

from llmos.cli.main import app
from llmos.errors import DataError

runner = CliRunner()


def test_help_imports_no_heavy_package() -> None:
    code = ("import sys; sys.argv = ['llmos', '--help']\n"
            "from llmos.cli.main import app\n"
            "try:\n    app()\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in ('torch', 'transformers', 'mlflow', 'pandas', 'matplotlib') if m in sys.modules]\n"
            "print('HEAVY', heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "HEAVY []" in out
    for command in ("train", "quickstart", "spec", "models", "sim"):
        assert command in out


def test_presets_listed() -> None:
    result = runner.invoke(app, ["models", "presets"])
    assert result.exit_code == 0
    assert "minilm-l6" in result.output and "tiny-gpt2" in result.output


def test_spec_example_then_validate(tmp_path) -> None:
    example = runner.invoke(app, ["spec", "example", "train"])
    assert example.exit_code == 0
    path = tmp_path / "job.yaml"
    path.write_text(example.output)
    result = runner.invoke(app, ["spec", "validate", str(path), "train.lr=1e-4"])
    assert result.exit_code == 0, result.output
    assert '"lr": 0.0001' in result.output


def test_worker_command_single_ddp_and_multi_node(tmp_path) -> None:
    from llmos.run._launch import worker_command
    from llmos.spec import parse_job

    base = {"data": {"train": "a.csv"}}
    one = worker_command(parse_job(base), tmp_path / "job.json")
    assert one[1:] == ["-m", "llmos.run", str(tmp_path / "job.json")]
    ddp = worker_command(parse_job({**base, "resources": {"procs": 2}}), tmp_path / "job.json")
    assert ddp[1:7] == ["-m", "torch.distributed.run", "--nproc-per-node", "2", "--standalone", "-m"]
    multi = worker_command(parse_job({**base, "resources": {"procs": 4, "nodes": 2, "node_rank": 1,
                                                             "rdzv_endpoint": "10.0.0.5:29500"}}), tmp_path / "j")
    assert "--nnodes" in multi and multi[multi.index("--node-rank") + 1] == "1"
    assert multi[multi.index("--master-addr") + 1] == "10.0.0.5" and multi[multi.index("--master-port") + 1] == "29500"


def test_error_text_is_not_read_as_markup(capsys) -> None:
    import pytest

    from llmos.cli._render import fail
    from llmos.errors import DependencyError

    with pytest.raises(SystemExit):
        fail(DependencyError("datasets is missing [x]", hint="pip install 'llmos[hf]'"))
    err = capsys.readouterr().err
    assert "llmos[hf]" in err and "missing [x]" in err


def test_a_new_attempt_never_inherits_a_stale_preempted_status(tmp_path) -> None:
    import json

    from llmos.run import prepare_run_dir
    from llmos.spec import parse_job

    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"run_id": "abc", "status": "preempted"}))
    prepare_run_dir(parse_job({"data": {"train": "a.csv"}, "output": str(run)}))
    assert json.loads((run / "run.json").read_text()) == {"run_id": "abc", "status": "launching"}


def test_resume_false_moves_an_old_run_aside(tmp_path) -> None:
    from llmos.run import prepare_run_dir
    from llmos.spec import parse_job

    run = tmp_path / "run"
    (run / "checkpoints" / "step-00000200").mkdir(parents=True)
    prepare_run_dir(parse_job({"data": {"train": "a.csv"}, "output": str(run), "checkpoint": {"resume": False}}))
    assert not (run / "checkpoints").exists()
    assert len(list(tmp_path.glob("run.*"))) == 1


def test_a_second_launcher_on_the_same_run_folder_is_refused(tmp_path) -> None:
    import pytest

    from llmos.errors import LlmosError
    from llmos.run._launch import _exclusive
    from llmos.spec import parse_job

    job = parse_job({"data": {"train": "a.csv"}, "output": str(tmp_path / "run")})
    with _exclusive(job), pytest.raises(LlmosError, match="another llmos process"), _exclusive(job):
        pass
    with _exclusive(job):  # released when the first launcher ends
        pass


def test_train_refuses_a_missing_data_file_before_starting_anything(tmp_path, monkeypatch) -> None:
    import llmos.run

    def launch(*args, **kwargs):
        raise AssertionError("a training process was started for a job whose data file is missing")

    monkeypatch.setattr(llmos.run, "launch", launch)
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "job.yaml"
    path.write_text(runner.invoke(app, ["spec", "example", "train"]).output)
    result = runner.invoke(app, ["train", str(path), "data.train=gone/train.csv", "data.eval=null"])
    assert isinstance(result.exception, DataError)  # the CLI's entry point prints it with its fix
    assert result.exception.message.startswith("data.train: file not found") and str(tmp_path) in result.exception.hint
    (tmp_path / "t.csv").write_text("text,label\na,b\n")
    result = runner.invoke(app, ["train", str(path), "data.train=t.csv", "data.eval=e.tsv"])
    assert isinstance(result.exception, DataError) and result.exception.message.startswith("data.eval: file not found")
