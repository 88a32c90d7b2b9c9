"""From what a caller holds (a spec file, a mapping, a validated job, a model reference) plus
keyword overrides to one validated job: the step every front-door function starts with."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from llmos.errors import SpecError

__all__ = ["SpecLike", "as_dotted", "is_spec_file", "resolve_job"]

SpecLike = str | Path | Mapping[str, Any] | Any  # a file, a mapping, or a validated job model


def as_dotted(overrides: Mapping[str, Any], dotted: Iterable[str] = ()) -> list[str]:
    """`train={"lr": 3e-5}, name="x"` as `["train.lr=3e-05", "name=x"]`, then the `dotted` strings.

    A mapping value sets the keys it names inside its section and keeps the others, exactly as
    `train.lr=3e-5` does on the command line; every value travels as JSON, which the override
    parser reads back as YAML, so lists, nulls and booleans arrive typed."""
    out: list[str] = []
    for key, value in overrides.items():
        if isinstance(value, Mapping) and value:
            out += as_dotted({f"{key}.{k}": v for k, v in value.items()})
        else:
            out.append(f"{key}={json.dumps(value, default=str)}")
    return out + list(dotted)


def is_spec_file(target: str | Path) -> bool:
    text = str(target)
    return isinstance(target, Path) or text.endswith((".yaml", ".yml", ".json")) or Path(text).is_file()


def resolve_job(spec: SpecLike, kind: str, dotted: list[str], *, ref_key: str | None = None,
                source: str = "the spec") -> Any:
    """Validate `spec` with the overrides applied and check it is a `kind` job.

    `spec` is a YAML/JSON file, a mapping, or a job model from `llmos.spec`; where `ref_key` is
    given (compress: `model`), a string that names no file is a registry reference put there."""
    from pydantic import BaseModel

    from llmos.spec import load_job, parse_job

    if isinstance(spec, BaseModel) and not dotted:
        job = spec
    elif isinstance(spec, BaseModel):
        job = parse_job(spec.model_dump(mode="json", by_alias=True, exclude_unset=True)
                        | {"kind": getattr(spec, "kind", kind)}, dotted, source=source)
    elif isinstance(spec, Mapping):
        job = parse_job({"kind": kind, **spec}, dotted, source=source)
    elif isinstance(spec, str | Path) and (ref_key is None or is_spec_file(spec)):
        job = load_job(spec, dotted)
    elif isinstance(spec, str):
        job = parse_job({"kind": kind, ref_key: spec}, dotted, source=source)
    else:
        raise SpecError(f"{source}: expected a spec file, a mapping or a job from llmos.spec, "
                        f"got {type(spec).__name__}.", hint=f"e.g. llmos.{kind}('job.yaml')")
    found = getattr(job, "kind", None)
    if found != kind:
        raise SpecError(f"{source} is a '{found}' spec; this runs kind: {kind}.",
                        hint=f"Start from: llmos spec example {kind}")
    return job
