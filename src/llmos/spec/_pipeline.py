"""The `kind: pipeline` spec: stages that pass models to each other by registry reference.

    kind: pipeline
    name: sentiment
    stages:
      - name: train
        train: {model: {name: minilm-l6}, data: {train: train.csv}, register: {name: sentiment}}
      - name: compress
        compress: {model: "${stages.train.model}", recipe: [int8], eval: dev.csv, gate: {max_metric_drop: 1}}
      - name: promote
        promote: {model: "${stages.compress.model}", alias: production}

Each stage does one thing (train, compress, evaluate, promote, deploy); `${stages.NAME.model}` is
the model version stage NAME yielded (NAME/VERSION), and using it makes the stage wait for NAME.
The stage bodies are the other kinds' specs (without `kind`), checked here with their own models,
so every problem of every stage is reported at once with its dotted path.
"""

from __future__ import annotations

import difflib
import re
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

__all__ = ["ACTIONS", "DEFAULT_READY_TIMEOUT_S", "SPEC_KIND", "EvaluateStage", "PipelineJob", "PromoteStage", "Stage",
           "fill_refs", "refs_in"]

ACTIONS = ("train", "compress", "evaluate", "promote", "deploy")
SPEC_KIND = {"train": "train", "compress": "compress", "deploy": "serve"}  # the stage bodies that are specs
_STAGE_NAME = r"^[A-Za-z0-9][A-Za-z0-9_-]*$"
_ANY_REF = re.compile(r"\$\{([^}]*)\}")
_MODEL_REF = re.compile(r"^\s*stages\.([A-Za-z0-9][A-Za-z0-9_-]*)\.model\s*$")
_REF_HELP = "write ${stages.NAME.model}: the model version stage NAME yielded"
DEFAULT_READY_TIMEOUT_S = 600.0  # a deploy stage's wait for ready replicas: a model download and load


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EvaluateStage(_Strict):
    """The task metric of a model version on named data; bounds stop the pipeline before promotion."""

    model: Annotated[str, Field(min_length=1, description=(
        "the model: a registry reference (NAME@ALIAS, NAME/VERSION) or ${stages.NAME.model}"))]
    data: Annotated[str, Field(min_length=1, description="the data it is measured on: a .csv/.tsv/.jsonl file")]
    text_column: Annotated[str, Field(description="column holding the text")] = "text"
    text_pair_column: Annotated[str | None, Field(description=(
        "second text of a pair; the positive for embedding models"))] = None
    label_column: Annotated[str | None, Field(description="column holding the label (classification)")] = "label"
    limit: Annotated[int | None, Field(gt=0, description="rows used at most; null: all")] = None
    min: Annotated[dict[str, float], Field(description=(
        "metrics that must be at least this, e.g. {accuracy: 0.8}; the stage fails naming each one missed"))] = {}
    max: Annotated[dict[str, float], Field(description=(
        "metrics that must be at most this, e.g. {loss: 0.7}"))] = {}
    cpus: Annotated[int, Field(gt=0, description="CPU cores its job asks for")] = 1


class PromoteStage(_Strict):
    """Point an alias at a model version (the registry remembers where it pointed before: rollback)."""

    model: Annotated[str, Field(min_length=1, description=(
        "the version to promote: a registry reference or ${stages.NAME.model}"))]
    alias: Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_-]*$", description=(
        "the alias moved to it, e.g. production"))]


class Stage(_Strict):
    # Bodies checked by `PipelineJob.check` (with every other problem at once), not field by field.
    SECTIONS: ClassVar[dict[str, type[BaseModel]]] = {"evaluate": EvaluateStage, "promote": PromoteStage}

    name: Annotated[str, Field(pattern=_STAGE_NAME, description=(
        "stage name: ${stages.NAME.model} refers to its model; letters, digits, _ and -"))]
    after: Annotated[list[str], Field(description=(
        "stages that must succeed first, besides those whose model it uses"))] = []
    train: Annotated[dict[str, Any] | None, Field(description=(
        "a train spec (llmos spec example train, without kind); its register section names the model it yields"))
    ] = None
    compress: Annotated[dict[str, Any] | None, Field(description=(
        "a compress spec (llmos spec example compress); it yields the best child that passes its gate, and "
        "fails, naming each bound missed and the figures, when none does"))] = None
    evaluate: Annotated[dict[str, Any] | None, Field(description=(
        "measure a model on named data; it yields the same model"))] = None
    promote: Annotated[dict[str, Any] | None, Field(description="point an alias at a model; it yields that model")
                       ] = None
    deploy: Annotated[dict[str, Any] | None, Field(description=(
        "a serve spec (llmos spec example serve): deployed on the control plane (name: the pipeline's); the "
        "stage succeeds once its replicas of the new version answer"))] = None
    ready_timeout_s: Annotated[float | None, Field(gt=0, le=86400, description=(
        "deploy stages: how long the deployment may take to have replicas.min replicas of the new version "
        "ready (null: 600); the stage fails after that, or as soon as they exit before ready 3 times in a row, "
        "with the replicas' last log lines"))] = None

    @model_validator(mode="after")
    def _one_action(self) -> Stage:
        given = [a for a in ACTIONS if getattr(self, a) is not None]
        if len(given) != 1:
            raise ValueError(f"a stage does exactly one thing: give one of {', '.join(ACTIONS)}"
                             + (f" (it has {', '.join(given)})" if given else ""))
        if self.ready_timeout_s is not None and given != ["deploy"]:
            raise ValueError("ready_timeout_s is for deploy stages only: the other stages end with their jobs")
        return self

    @property
    def ready_timeout(self) -> float:
        """A deploy stage's wait for ready replicas, in seconds."""
        return DEFAULT_READY_TIMEOUT_S if self.ready_timeout_s is None else self.ready_timeout_s

    @property
    def action(self) -> str:
        return next(a for a in ACTIONS if getattr(self, a) is not None)

    def body(self) -> dict[str, Any]:
        """The stage's spec as a mapping (references not yet filled in)."""
        return dict(getattr(self, self.action))

    def needs(self) -> list[str]:
        """The stages it waits for: `after`, then those whose model it uses, in order, once each."""
        return list(dict.fromkeys([*self.after, *(name for _, name in refs_in(self.body()) if name)]))

    def yields_model(self) -> bool:
        if self.action == "train":
            return bool((self.train or {}).get("register"))
        return self.action != "deploy"


class PipelineJob(_Strict):
    kind: Annotated[Literal["pipeline"], Field(description="what the job does")] = "pipeline"
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", description=(
        "pipeline name; its stages' jobs are named PIPELINE-STAGE"))] = "pipeline"
    stages: Annotated[list[Stage], Field(min_length=1, description=(
        "what it does, each stage one step; a stage starts once the stages it needs have succeeded"))]

    def stage(self, name: str) -> Stage:
        return next(s for s in self.stages if s.name == name)

    def check(self) -> list[tuple[str, str]]:
        """Every problem across stages: names, references, cycles, and each stage body against its kind."""
        names = [s.name for s in self.stages]
        problems: list[tuple[str, str]] = []
        for i, stage in enumerate(self.stages):
            where = f"stages.{i}"
            if names.index(stage.name) != i:
                first = names.index(stage.name)
                problems.append((f"{where}.name", f"'{stage.name}' is also the name of stages.{first}"))
            for j, other in enumerate(stage.after):
                problems += _name_problems(f"{where}.after.{j}", other, stage, self)
            for path, ref in refs_in(stage.body()):
                at = f"{where}.{stage.action}.{path}"
                if ref is None:
                    problems.append((at, f"unknown reference; {_REF_HELP}"))
                    continue
                problems += _name_problems(at, ref, stage, self)
                if ref in names and ref != stage.name and not self.stage(ref).yields_model():
                    why = "it has no register section" if self.stage(ref).action == "train" else "a deploy yields none"
                    problems.append((at, f"stage '{ref}' yields no model ({why})"))
            problems += _body_problems(where, stage, self.name)
        problems += _cycle_problems(self)
        return problems


def refs_in(value: Any, path: str = "") -> list[tuple[str, str | None]]:
    """(dotted path, stage name) of every `${...}` in a stage body; the name is None for a reference
    that is not ${stages.NAME.model}."""
    if isinstance(value, dict):
        return [r for k, v in value.items() for r in refs_in(v, f"{path}.{k}" if path else str(k))]
    if isinstance(value, list):
        return [r for i, v in enumerate(value) for r in refs_in(v, f"{path}.{i}" if path else str(i))]
    if isinstance(value, str):
        found = []
        for match in _ANY_REF.finditer(value):
            if match.group(1).startswith("secret:"):  # a project secret, filled in by the control plane
                continue
            ref = _MODEL_REF.match(match.group(1))
            found.append((path, ref.group(1) if ref else None))
        return found
    return []


def fill_refs(value: Any, models: dict[str, str]) -> Any:
    """`value` with each ${stages.NAME.model} replaced by models[NAME] (a NAME/VERSION reference)."""
    if isinstance(value, dict):
        return {k: fill_refs(v, models) for k, v in value.items()}
    if isinstance(value, list):
        return [fill_refs(v, models) for v in value]
    if isinstance(value, str):
        def one(match: re.Match[str]) -> str:
            ref = _MODEL_REF.match(match.group(1))
            return models[ref.group(1)] if ref and ref.group(1) in models else match.group(0)

        return _ANY_REF.sub(one, value)
    return value


def _name_problems(path: str, name: str, stage: Stage, job: PipelineJob) -> list[tuple[str, str]]:
    names = [s.name for s in job.stages]
    if name == stage.name:
        return [(path, f"stage '{name}' cannot wait for itself")]
    if name not in names:
        close = difflib.get_close_matches(name, names, n=1)
        tip = f"did you mean '{close[0]}'?" if close else f"stages: {', '.join(names)}"
        return [(path, f"no stage named '{name}'; {tip}")]
    return []


def _body_problems(where: str, stage: Stage, pipeline: str) -> list[tuple[str, str]]:
    """The stage body validated as its kind's spec, references standing in as NAME/1."""
    from llmos.errors import SpecError
    from llmos.spec._load import _describe, validate_dict

    body = stage.body()
    stand_in = fill_refs(body, {s: f"{s}/1" for _, s in refs_in(body) if s})
    if stage.action in Stage.SECTIONS:
        model = Stage.SECTIONS[stage.action]
        try:
            model.model_validate(stand_in)
        except ValidationError as exc:
            return [(f"{where}.{stage.action}.{p}", m) for p, m in (_describe(e, model) for e in exc.errors())]
        return []
    kind = SPEC_KIND[stage.action]
    if body.get("kind", kind) != kind:
        return [(f"{where}.{stage.action}.kind", f"leave kind out: this is a {stage.action} stage")]
    try:
        validate_dict({**stage_defaults(stage, pipeline), **stand_in, "kind": kind}, where)
    except SpecError as exc:
        return [(f"{where}.{stage.action}.{p}", m) for p, m in exc.problems] or [(where, exc.message)]
    return []


def stage_defaults(stage: Stage, pipeline: str) -> dict[str, Any]:
    """What a stage body gets unless it says otherwise: its job's name, a deployment's name."""
    return {"name": pipeline if stage.action == "deploy" else f"{pipeline}-{stage.name}"} \
        if stage.action in ("train", "deploy") else {}


def _cycle_problems(job: PipelineJob) -> list[tuple[str, str]]:
    needs = {s.name: [n for n in s.needs() if n != s.name] for s in job.stages}
    done: set[str] = set()
    for start in needs:
        loop = _find_loop(start, needs, [], done)
        if loop is not None:
            i = [s.name for s in job.stages].index(loop[0])
            return [(f"stages.{i}", "stages wait for each other in a circle: " + " -> ".join(loop)
                     + "; remove one of these after/${stages...} links")]
    return []


def _find_loop(name: str, needs: dict[str, list[str]], path: list[str], done: set[str]) -> list[str] | None:
    """A circle of stages reachable from `name` (depth first), as the names along it."""
    if name in done or name not in needs:
        return None
    if name in path:
        return [*path[path.index(name):], name]
    for nxt in needs[name]:
        if (loop := _find_loop(nxt, needs, [*path, name], done)) is not None:
            return loop
    done.add(name)
    return None
