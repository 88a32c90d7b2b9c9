"""Reading a spec: YAML → dotted overrides → one validation that reports every problem at once."""

from __future__ import annotations

import difflib
import json
import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from llmos.errors import SpecError
from llmos.spec._command import CommandJob
from llmos.spec._compress import CompressJob
from llmos.spec._models import TrainJob
from llmos.spec._pipeline import PipelineJob
from llmos.spec._serve import ServeJob
from llmos.spec._sweep import SweepJob

__all__ = ["KINDS", "apply_overrides", "load_job", "parse_job", "validate_dict"]

# kind -> model; evaluate and pipeline join this table as they land.
KINDS: dict[str, type[BaseModel]] = {"train": TrainJob, "serve": ServeJob, "compress": CompressJob,
                                     "command": CommandJob, "sweep": SweepJob, "pipeline": PipelineJob}
_PLANNED_KINDS = ("evaluate",)
# spec fields holding file paths, resolved against the spec file's folder
_PATH_FIELDS = (("data", "train"), ("data", "eval"), ("output",), ("distill", "teacher"),
                ("eval",), ("calib",), ("train",),
                ("base", "data", "train"), ("base", "data", "eval"), ("base", "distill", "teacher"))  # a sweep's base


def load_job(path: str | Path, overrides: list[str] | None = None, without: tuple[str, ...] = ()) -> BaseModel:
    """Read a YAML (or JSON) job file, apply `a.b=value` overrides and validate it. `without`: top-level
    keys that belong to the submission, not to the job (the control plane's `project:`), left out."""
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"spec file '{path}' does not exist.",
                        hint="Check the path, or write one with: llmos spec example train > job.yaml")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise SpecError(f"{path} is not valid YAML{where}: {getattr(exc, 'problem', exc)}.",
                        hint="Fix the YAML syntax (indentation, colons, quotes) and run "
                             f"llmos spec validate {path}") from None
    if not isinstance(raw, dict):
        raise SpecError(f"{path} must hold one mapping (key: value lines), got {type(raw).__name__}.",
                        hint="Start from: llmos spec example train")
    raw = {k: v for k, v in raw.items() if k not in without}
    _resolve_paths(raw, base=path.resolve().parent)
    return parse_job(raw, overrides, source=str(path))


def parse_job(raw: dict[str, Any], overrides: list[str] | None = None, source: str = "spec") -> BaseModel:
    """Validate an already-parsed mapping (plus overrides, whose paths resolve against the cwd)."""
    data = apply_overrides(raw, overrides or [])
    _resolve_paths(data, base=Path.cwd())
    return validate_dict(data, source)


def validate_dict(data: dict[str, Any], source: str = "spec") -> BaseModel:
    kind = data.get("kind", "train")
    if kind not in KINDS:
        known = ", ".join(KINDS)
        if kind in _PLANNED_KINDS:
            raise SpecError(f"{source}: kind '{kind}' is not available in this version of llmos.",
                            problems=[("kind", f"supported kinds: {known}")])
        raise SpecError(f"{source}: unknown kind '{kind}'.", problems=[("kind", f"expected one of: {known}")])
    model = KINDS[kind]
    try:
        job = model.model_validate(data)
    except ValidationError as exc:
        raise SpecError(f"{source} has {exc.error_count()} problem(s):",
                        problems=[_describe(err, model) for err in exc.errors()],
                        hint=f"Fix the fields above; `llmos spec example {kind}` shows every field.") from None
    # Checks across fields that one field's validator cannot report with their own paths (pipelines).
    problems = job.check() if hasattr(job, "check") else []
    if problems:
        raise SpecError(f"{source} has {len(problems)} problem(s):", problems=problems,
                        hint=f"Fix the fields above; `llmos spec example {kind}` shows every field.")
    return job


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of `raw` with each `dotted.key=value` applied; values parse as YAML scalars."""
    data = json.loads(json.dumps(raw, default=str))
    problems = []
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            problems.append((item, "an override must look like key.path=value, e.g. train.lr=3e-5"))
            continue
        parts = key.strip().split(".")
        node = data
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                problems.append((".".join(parts[: i + 1]), f"is a value, not a section; cannot set '{key}'"))
                break
            node = child
        else:
            node[parts[-1]] = _scalar(text)
    if problems:
        raise SpecError("bad override(s) on the command line:", problems=problems)
    return data


def _scalar(text: str) -> Any:
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    # YAML 1.1 reads 3e-5 as a string; accept the usual float forms too.
    if isinstance(value, str):
        try:
            return float(value) if any(c in value for c in ".eE") else value
        except ValueError:
            return value
    return value


def _resolve_paths(data: dict[str, Any], base: Path) -> None:
    if data.get("kind") == "pipeline":  # each stage body is a spec of its own, with the same path fields
        for stage in data.get("stages") or []:
            for body in (stage.values() if isinstance(stage, dict) else ()):
                if isinstance(body, dict):
                    _resolve_paths(body, base)
                    if isinstance(body.get("data"), str):  # an evaluate stage's data file
                        moved = {"eval": body["data"]}
                        _resolve_paths(moved, base)
                        body["data"] = moved["eval"]
        return
    for keys in _PATH_FIELDS:
        node: Any = data
        for key in keys[:-1]:
            node = node.get(key) if isinstance(node, dict) else None
        if not isinstance(node, dict):
            continue
        value = node.get(keys[-1])
        is_hf = str(value).startswith("hf:") or (keys[0] == "data" and node.get("format") == "hf")
        if isinstance(value, str) and value and not is_hf:
            path = Path(os.path.expanduser(value))  # `~nobody/x` stays as written (Path.expanduser raises)
            node[keys[-1]] = str(path if path.is_absolute() else (base / path).resolve())


def _describe(err: dict[str, Any], model: type[BaseModel]) -> tuple[str, str]:
    loc = [str(p) for p in err["loc"]]
    path = ".".join(loc) or "(spec)"
    kind, value = err["type"], err.get("input")
    if kind == "extra_forbidden":
        known = _fields_at(model, loc[:-1])
        close = difflib.get_close_matches(loc[-1], known, n=1)
        tip = f"; did you mean '{close[0]}'?" if close else f"; known fields: {', '.join(known)}"
        return path, f"unknown field{tip}"
    if kind == "missing":
        return path, "required field is missing"
    if kind in ("float_parsing", "float_type", "int_parsing", "int_type", "int_from_float"):
        want = "a whole number" if kind.startswith("int") else "a number"
        return path, f"expected {want}, got {value!r}"
    if kind in ("bool_parsing", "bool_type"):
        return path, f"expected true or false, got {value!r}"
    if kind == "literal_error":
        return path, f"expected {err['ctx']['expected']}, got {value!r}"
    msg = err["msg"].removeprefix("Value error, ")
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal", "string_pattern_mismatch"):
        msg = f"{msg}, got {value!r}"
    return path, msg


def _fields_at(model: type[BaseModel], loc: list[str]) -> list[str]:
    """Field names of the sub-model at `loc` (for 'did you mean' hints)."""
    current: Any = model
    for part in loc:
        fields = getattr(current, "model_fields", {})
        field = next((f for n, f in fields.items() if part in (n, f.alias)), None)
        if field is None:
            return []
        current = _submodel(field.annotation)
    return [f.alias or n for n, f in getattr(current, "model_fields", {}).items()]


def _submodel(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _submodel(arg)
        if found is not None:
            return found
    return None
