"""`llmos spec example KIND`: a commented YAML example written from the field descriptions."""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from llmos.spec._load import KINDS, _submodel

__all__ = ["example_yaml"]

# Values shown for required fields and for sections that default to null but deserve a sample.
_SAMPLES: dict[str, dict[str, Any]] = {
    "train": {
        "name": "sentiment",
        "data.train": "data/train.csv",
        "data.eval": "data/test.csv",
        "register": {"name": "sentiment", "alias": "candidate"},
    },
    "serve": {"name": "sentiment", "model": "sentiment@production"},
    "compress": {"model": "sentiment@candidate", "recipe": ["int8", "onnx-int8", "bf16"], "eval": "data/dev.csv",
                 "gate": {"max_metric_drop": 0.5, "min_speedup": 1.5, "max_size_ratio": 0.5}, "alias": "fast"},
    "command": {"name": "preprocess", "run": ["python", "prep.py", "--shard", "3"]},
    "sweep": {"name": "sentiment-sweep", "base.name": "sentiment", "base.data.train": "data/train.csv",
              "base.data.eval": "data/test.csv", "base.train.eval_every_steps": 50,
              "params": {"train.lr": {"log_range": [1.0e-5, 1.0e-3]}, "train.batch_size": {"choices": [16, 32]},
                         "train.warmup_ratio": {"range": [0.0, 0.2]}},
              "register": {"name": "sentiment", "alias": "best"}},
    "pipeline": {"name": "sentiment", "stages": [
        {"name": "train", "train": {"model": {"name": "minilm-l6"}, "data": {"train": "data/train.csv"},
                                    "train": {"epochs": 1}, "register": {"name": "sentiment", "alias": "candidate"}}},
        {"name": "compress", "compress": {"model": "${stages.train.model}", "recipe": ["int8"], "eval": "data/dev.csv",
                                          "gate": {"max_metric_drop": 1.0, "min_speedup": 1.2}}},
        {"name": "evaluate", "evaluate": {"model": "${stages.compress.model}", "data": "data/test.csv",
                                          "min": {"accuracy": 0.8}}},
        {"name": "promote", "after": ["evaluate"],
         "promote": {"model": "${stages.compress.model}", "alias": "production"}},
        {"name": "deploy", "deploy": {"model": "${stages.promote.model}", "replicas": {"min": 1, "max": 2}}},
    ]},
}


def example_yaml(kind: str) -> str:
    if kind not in KINDS:
        from llmos.errors import SpecError

        raise SpecError(f"no example for kind '{kind}'.", problems=[("kind", f"expected one of: {', '.join(KINDS)}")])
    lines = [f"# llmos {kind} job. Validate with: llmos spec validate FILE", f"kind: {kind}"]
    _emit(KINDS[kind], _SAMPLES.get(kind, {}), prefix="", indent=0, lines=lines, skip={"kind"})
    return "\n".join(lines) + "\n"


def _emit(model: type[BaseModel], samples: dict[str, Any], prefix: str, indent: int,
          lines: list[str], skip: set[str] = frozenset()) -> None:  # type: ignore[assignment]
    pad = "  " * indent
    for name, field in model.model_fields.items():
        if name in skip:
            continue
        name = field.alias or name
        dotted = f"{prefix}{name}"
        lines.append(f"{pad}# {field.description}")
        sub = _submodel(field.annotation)
        sample = samples.get(dotted, PydanticUndefined)
        default = field.default
        if isinstance(sample, list) and sample and isinstance(sample[0], dict):  # a list of sections (stages)
            sub = _submodel(field.annotation)
            for part, doc in _field_docs(sub).items():
                lines.append(f"{pad}#   {part}: {doc}")
            lines.append(f"{pad}{name}:")
            block = yaml.safe_dump(sample, sort_keys=False, default_flow_style=None, width=110)
            lines.extend(f"{pad}  {line}" for line in block.splitlines())
        elif sample is not PydanticUndefined and isinstance(sample, dict):
            lines.append(f"{pad}{name}:")
            for key, value in sample.items():
                lines.append(f"{pad}  {key}: {_dump(value)}")
        elif sub is not None and (default is None or default is PydanticUndefined) and sample is PydanticUndefined:
            if default is None:
                lines.append(f"{pad}{name}: null")
            else:
                lines.append(f"{pad}{name}:")
                _emit(sub, samples, f"{dotted}.", indent + 1, lines)
        elif sub is not None and isinstance(default, BaseModel):
            lines.append(f"{pad}{name}:")
            _emit(sub, samples, f"{dotted}.", indent + 1, lines)
        else:
            value = sample if sample is not PydanticUndefined else default
            value = None if value is PydanticUndefined else value
            lines.append(f"{pad}{name}: {_dump(value)}")


def _field_docs(model: Any, prefix: str = "") -> dict[str, str]:
    """Dotted field -> description of a section model and of its typed sub-sections."""
    docs: dict[str, str] = {}
    for name, field in getattr(model, "model_fields", {}).items():
        docs[prefix + name] = str(field.description)
        sub = getattr(model, "SECTIONS", {}).get(name) or _submodel(field.annotation)
        if sub is not None:
            docs.update(_field_docs(sub, f"{prefix}{name}."))
    return docs


def _dump(value: Any) -> str:
    if isinstance(value, tuple):
        value = list(value)
    if hasattr(value, "__fspath__"):
        value = str(value)
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()
