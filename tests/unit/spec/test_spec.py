from pathlib import Path

import pytest
import yaml

from llmos.errors import SpecError
from llmos.spec import TrainJob, apply_overrides, example_yaml, load_job, parse_job

EXAMPLES = sorted((Path(__file__).parents[3] / "examples").glob("*.yaml"))


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "job.yaml"
    path.write_text(text)
    return path


def test_minimal_job_gets_defaults(tmp_path: Path) -> None:
    job = load_job(write(tmp_path, "data:\n  train: train.csv\n"))
    assert isinstance(job, TrainJob)
    assert job.train.lr == 5e-5 and job.resources.procs == 1
    # relative paths resolve against the spec file's folder
    assert job.data.train == str(tmp_path / "train.csv")


def test_all_errors_reported_at_once_with_dotted_paths(tmp_path: Path) -> None:
    spec = "data:\n  train: x.csv\ntrain:\n  lr: fast\n  bach_size: 3\nregister: {name: a, alais: b}\n"
    with pytest.raises(SpecError) as err:
        load_job(write(tmp_path, spec), ["resources.procs=0"])
    problems = dict(err.value.problems)
    assert problems["train.lr"] == "expected a number, got 'fast'"
    assert "did you mean 'batch_size'" in problems["train.bach_size"]
    assert "did you mean 'alias'" in problems["register.alais"]
    assert "resources.procs" in problems


def test_missing_required_field(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as err:
        load_job(write(tmp_path, "kind: train\n"))
    assert dict(err.value.problems)["data"] == "required field is missing"


def test_overrides_parse_values_and_create_sections() -> None:
    data = apply_overrides({"data": {"train": "a.csv"}}, ["train.lr=3e-5", "resources.procs=2",
                                                          "train.group_by_length=false"])
    assert data["train"] == {"lr": 3e-5, "group_by_length": False}
    assert data["resources"]["procs"] == 2


def test_bad_override_syntax() -> None:
    with pytest.raises(SpecError, match=r"key\.path=value"):
        apply_overrides({}, ["train.lr"])
    with pytest.raises(SpecError, match="is a value, not a section"):
        apply_overrides({"name": "x"}, ["name.sub=1"])


def test_unknown_and_planned_kinds() -> None:
    with pytest.raises(SpecError, match="not available"):
        parse_job({"kind": "evaluate"})
    with pytest.raises(SpecError, match="unknown kind"):
        parse_job({"kind": "dance"})


def test_cross_field_rules() -> None:
    with pytest.raises(SpecError, match="lora is supported for task 'causal-lm' only"):
        parse_job({"data": {"train": "a.csv"}, "model": {"lora": {"r": 4}}})
    with pytest.raises(SpecError, match="text_pair_column"):
        parse_job({"data": {"train": "a.csv"}, "model": {"task": "embedding"}})
    with pytest.raises(SpecError, match="register needs the model in MLflow"):
        parse_job({"data": {"train": "a.csv"}, "register": {"name": "m"}, "tracking": {"enabled": False}})
    # nodes > 1 needs no rendezvous under a Ray control plane; `llmos train` on each node asks for one
    two = parse_job({"data": {"train": "a.csv"}, "resources": {"nodes": 2}})
    from llmos.errors import LlmosError
    from llmos.run import worker_command

    with pytest.raises(LlmosError, match="rdzv_endpoint"):
        worker_command(two, Path("job.json"))


def test_yaml_syntax_error_names_line(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="line 2"):
        load_job(write(tmp_path, "data:\n  train: a: b\n"))


def test_register_section_round_trips() -> None:
    job = parse_job({"data": {"train": "a.csv"}, "register": {"name": "m", "alias": "candidate"}})
    assert job.registration.name == "m"
    assert job.model_dump(mode="json")["register"]["alias"] == "candidate"


def test_example_is_valid_and_commented() -> None:
    text = example_yaml("train")
    assert "# peak learning rate" in text
    job = parse_job(yaml.safe_load(text))
    assert job.registration.alias == "candidate"


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_shipped_examples_validate(path: Path) -> None:
    assert load_job(path).kind == "train"


def test_examples_exist() -> None:
    assert EXAMPLES, "examples/*.yaml should ship with the repo"
