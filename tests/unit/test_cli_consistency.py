"""The CLI's shape, checked over the whole command tree: one listing verb, `--json` wherever
something is listed or shown, defaults shown one way, `--version`, completion, and every command
the README names resolves to a real command with real flags."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any, ClassVar

import pytest
import typer
from typer.testing import CliRunner

from llmos import __version__
from llmos.cli.main import app

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]
# Every command that lists or shows something.
LISTS_OR_SHOWS = ["jobs", "jobs ls", "jobs show", "tokens ls", "deploy ls", "deploy show", "models ls", "models show",
                  "models presets", "status", "top", "spec validate", "compress"]


def _tree() -> dict[str, Any]:
    """Every command by its path (`deploy ls`). Typer carries its own copy of click: duck typing."""
    out: dict[str, Any] = {}

    def walk(cmd: Any, path: str) -> None:
        out[path] = cmd
        if hasattr(cmd, "commands"):
            for name, sub in cmd.commands.items():
                walk(sub, f"{path} {name}".strip())

    walk(typer.main.get_command(app), "")
    return out


def test_version_flag_and_completion() -> None:
    assert runner.invoke(app, ["--version"]).output.strip() == __version__
    assert runner.invoke(app, ["version"]).output.strip() == __version__  # the old command still answers
    root = typer.main.get_command(app)
    assert {"--install-completion", "--show-completion"} <= {o for p in root.params for o in p.opts}


@pytest.mark.parametrize("path", LISTS_OR_SHOWS)
def test_every_listing_and_showing_command_takes_json(path: str) -> None:
    assert "--json" in {o for p in _tree()[path].params for o in p.opts}, f"llmos {path} has no --json"


def test_one_listing_verb() -> None:
    tree = _tree()
    for group in ("models", "jobs", "tokens", "deploy"):
        assert f"{group} ls" in tree, f"llmos {group} has no ls"
    visible_lists = [p for p, c in tree.items() if p.endswith(" list") and not c.hidden]
    assert not visible_lists, f"listing verbs other than ls: {visible_lists}"
    assert tree["tokens list"].hidden  # the old verb keeps working, out of sight


def test_defaults_are_shown_one_way() -> None:
    """`[default: X]` comes from Typer (show_default); no help text spells a default its own way."""
    for path, cmd in _tree().items():
        for param in cmd.params:
            text = getattr(param, "help", None) or ""
            assert not re.search(r"\(default\b|\bdefault:|\[default", text), f"llmos {path} {param.name}: {text!r}"


def test_renamed_flags_keep_their_old_names_hidden() -> None:
    serve = _tree()["serve"]
    by_opt = {o: p for p in serve.params for o in p.opts}
    assert "--num-threads" in by_opt and not by_opt["--num-threads"].hidden  # runtime.num_threads
    assert by_opt["--threads"].hidden


def test_spec_example_and_validate_take_kind_command(tmp_path: Path) -> None:
    example = runner.invoke(app, ["spec", "example", "command"])
    assert example.exit_code == 0 and "kind: command" in example.output
    path = tmp_path / "cmd.yaml"
    path.write_text(example.output)
    result = runner.invoke(app, ["spec", "validate", str(path), "resources.cpus=2", "--json"])
    assert result.exit_code == 0, result.output
    job = json.loads(result.output)
    assert job["kind"] == "command" and job["resources"]["cpus"] == 2
    bad = runner.invoke(app, ["spec", "validate", str(path), "resources.cpu=2"])
    assert bad.exit_code != 0 and "resources.cpu: unknown field" in bad.exception.message


def test_train_refuses_a_spec_of_another_kind(tmp_path: Path) -> None:
    path = tmp_path / "cmd.yaml"
    path.write_text("kind: command\nrun: [echo, hi]\n")
    result = runner.invoke(app, ["train", str(path)])
    assert "a 'command' spec" in result.exception.message and "llmos spec example train" in result.exception.hint


class FakeClient:
    """Stands in for llmos.api.Client: records the calls, answers with typed records."""

    calls: ClassVar[list[tuple[str, Any, dict]]] = []

    def __init__(self, *_: Any, **__: Any) -> None:
        pass

    def __enter__(self) -> FakeClient:
        return self

    def __exit__(self, *_: Any) -> None:
        pass

    def deploy(self, model: str | None, **kwargs: Any) -> Any:
        from llmos.api import Deployment

        FakeClient.calls.append(("deploy", model, kwargs))
        return Deployment("tiny", model="tiny@prod", url="http://127.0.0.1:1")

    def deployments(self) -> list[Any]:
        from llmos.api import Deployment, Replica

        return [Deployment("tiny", model="tiny@prod", model_version="tiny/2", url="http://127.0.0.1:1", desired=1,
                           ready=1, replicas=[Replica("r1", 10, 2, "tiny/2", "ready", [0])])]

    def deployment(self, name: str) -> Any:
        return self.deployments()[0]

    def jobs(self, **kwargs: Any) -> list[Any]:
        from llmos.api import Job

        FakeClient.calls.append(("jobs", None, kwargs))
        return [Job(1, "t", "train", "RUNNING", placement={"cores": [0, 1], "gpus": []})]


@pytest.fixture
def fake_client(monkeypatch: pytest.MonkeyPatch) -> type[FakeClient]:
    import llmos.api

    FakeClient.calls = []
    monkeypatch.setattr(llmos.api, "Client", FakeClient)
    return FakeClient


def test_deploy_model_is_deploy_create_and_ls_show_are_subcommands(fake_client: type[FakeClient]) -> None:
    out = runner.invoke(app, ["deploy", "tiny@prod", "--port", "5", "batching.max_wait_ms=1", "--replicas", "1:3"])
    assert out.exit_code == 0, out.output
    (_, model, kwargs), = fake_client.calls
    assert model == "tiny@prod" and kwargs["dotted"] == ["batching.max_wait_ms=1", "server.port=5", "replicas.min=1",
                                                         "replicas.max=3"]
    assert "next: llmos deploy show tiny" in out.output
    listed = json.loads(runner.invoke(app, ["deploy", "ls", "--json"]).output)
    assert listed[0]["name"] == "tiny" and listed[0]["replicas"][0]["state"] == "ready"
    shown = runner.invoke(app, ["deploy", "show", "tiny"])
    assert shown.exit_code == 0 and "r1" in shown.output and "tiny/2" in shown.output


def test_jobs_and_jobs_ls_list_the_same_json(fake_client: type[FakeClient]) -> None:
    bare = json.loads(runner.invoke(app, ["jobs", "--json", "--state", "RUNNING"]).output)
    ls = json.loads(runner.invoke(app, ["jobs", "ls", "--json", "--state", "RUNNING"]).output)
    assert bare == ls and bare["jobs"][0]["state"] == "RUNNING" and bare["deployments"][0]["name"] == "tiny"
    assert [c[2]["state"] for c in fake_client.calls] == ["RUNNING", "RUNNING"]


def test_models_presets_json() -> None:
    presets = json.loads(runner.invoke(app, ["models", "presets", "--json"]).output)
    assert {"minilm-l6", "tiny-gpt2"} <= {p["name"] for p in presets}


def readme_commands() -> list[str]:
    """Every `llmos ...` command in the README's shell blocks (continued lines joined, `;` split)."""
    text = (ROOT / "README.md").read_text()
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            for part in line.split("#", 1)[0].split(";"):
                part = part.strip().split(">", 1)[0].strip()  # `llmos spec example train > job.yaml`
                if part.startswith("llmos"):
                    commands.append(part)
    return commands


@pytest.mark.parametrize("command", readme_commands())
def test_every_readme_command_names_real_commands_and_flags(command: str) -> None:
    """Resolved and parsed, not run (tests/integration/test_readme.py runs them): a renamed
    command or flag fails here in milliseconds."""
    args = [a for a in shlex.split(command)[1:] if a not in ("--help", "--version")]  # they print and exit
    if not args:
        return
    cmd: Any = typer.main.get_command(app)
    ctx = cmd.make_context("llmos", list(args), resilient_parsing=False)
    while hasattr(cmd, "commands"):
        rest = [*(getattr(ctx, "_protected_args", None) or getattr(ctx, "protected_args", None) or []), *ctx.args]
        if not rest:
            break
        name, cmd, rest = cmd.resolve_command(ctx, rest)
        ctx = cmd.make_context(name, rest, parent=ctx)


def test_readme_has_commands() -> None:
    assert len(readme_commands()) >= 20
