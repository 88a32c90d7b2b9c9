"""`kind: pipeline` specs: references between stages, checked at `llmos spec validate` time, every
problem at once with its dotted path; the example that `llmos spec example pipeline` prints is valid."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from llmos.errors import SpecError
from llmos.spec import example_yaml, load_job
from llmos.spec._pipeline import fill_refs

TRAIN = {"model": {"name": "tiny-bert"}, "data": {"train": "train.csv"}, "register": {"name": "intents"}}


def _load(tmp_path: Path, spec: dict) -> object:
    path = tmp_path / "pipe.yaml"
    path.write_text(yaml.safe_dump(spec))
    return load_job(path)


def test_the_printed_example_is_valid_and_its_stages_wait_for_the_models_they_use(tmp_path: Path) -> None:
    path = tmp_path / "pipe.yaml"
    path.write_text(example_yaml("pipeline"))
    job = load_job(path)
    assert [s.action for s in job.stages] == ["train", "compress", "evaluate", "promote", "deploy"]
    assert {s.name: s.needs() for s in job.stages} == {
        "train": [], "compress": ["train"], "evaluate": ["compress"], "promote": ["evaluate", "compress"],
        "deploy": ["promote"]}
    # paths inside stage bodies resolve against the spec's folder, as a train spec's do
    assert job.stage("train").train["data"]["train"] == str(tmp_path / "data" / "train.csv")
    assert job.stage("evaluate").evaluate["data"] == str(tmp_path / "data" / "test.csv")


def test_every_problem_of_every_stage_is_reported_at_once_with_its_dotted_path(tmp_path: Path) -> None:
    spec = {"kind": "pipeline", "name": "bad", "stages": [
        {"name": "train", "train": {"data": {"train": "x.csv"}, "train": {"lr": "fast"}}},
        {"name": "compress", "compress": {"model": "${stages.trian.model}", "recipe": ["int8"], "eval": "d.csv"}},
        {"name": "promote", "after": ["deploy"], "promote": {"model": "${stages.train.model}", "alias": "prod"}},
        {"name": "deploy", "deploy": {"model": "${stages.promote.model}", "replicas": {"mn": 1}}},
        {"name": "check", "evaluate": {"model": "${stages.compress.version}", "data": "x.csv", "bogus": 1}},
        {"name": "check", "promote": {"model": "m/1", "alias": "x"}, "deploy": {"model": "m/1"}}]}
    with pytest.raises(SpecError) as caught:
        _load(tmp_path, spec)
    assert "problem" in caught.value.message
    spec["stages"].pop()  # a stage that does two things is a structural problem, reported on its own
    with pytest.raises(SpecError) as caught:
        _load(tmp_path, spec)
    problems = dict(caught.value.problems)
    assert problems == {
        "stages.0.train.train.lr": "expected a number, got 'fast'",
        "stages.1.compress.model": "no stage named 'trian'; did you mean 'train'?",
        "stages.2.promote.model": "stage 'train' yields no model (it has no register section)",
        "stages.3.deploy.replicas.mn": "unknown field; did you mean 'min'?",
        "stages.4.evaluate.model": "unknown reference; write ${stages.NAME.model}: the model version stage NAME "
                                   "yielded",
        "stages.4.evaluate.bogus": "unknown field; known fields: model, data, text_column, text_pair_column, "
                                   "label_column, limit, min, max, cpus",
        "stages.2": "stages wait for each other in a circle: promote -> deploy -> promote; remove one of these "
                    "after/${stages...} links"}


def test_a_stage_does_exactly_one_thing_and_names_are_unique(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as caught:
        _load(tmp_path, {"kind": "pipeline", "stages": [{"name": "a"}]})
    assert "give one of train, compress, evaluate, promote, deploy" in dict(caught.value.problems)["stages.0"]
    with pytest.raises(SpecError) as caught:
        _load(tmp_path, {"kind": "pipeline", "stages": [{"name": "a", "train": TRAIN}, {"name": "a", "train": TRAIN}]})
    assert dict(caught.value.problems) == {"stages.1.name": "'a' is also the name of stages.0"}


def test_references_are_filled_with_the_versions_stages_yielded() -> None:
    body = {"model": "${stages.train.model}", "recipe": ["int8"], "note": "from ${ stages.train.model }",
            "env": {"KEY": "${secret:KEY}"}}
    assert fill_refs(body, {"train": "intents/4"}) == {"model": "intents/4", "recipe": ["int8"],
                                                       "note": "from intents/4", "env": {"KEY": "${secret:KEY}"}}
