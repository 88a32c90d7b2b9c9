"""The recipe contract: what every compression recipe is and what it is handed.

A recipe is one file (`_int8.py`, `_prune_structured.py`, ...) that exports a `Recipe` and reads
top to bottom: load the parent → transform → save the child → return the child folder. The
name → recipe table lives in `_recipes.py`.

The contract, which every recipe keeps:

- `params` is a strict Pydantic model (`extra="forbid"`) of the recipe's parameters: the text after
  the colon of `--recipe prune-structured:heads=0.3,ffn=0.3` (values parse as YAML scalars) or the
  `params:` mapping of a spec's `recipe:` entry. Field constraints (a sparsity in (0, 1)) live there.
- `check(parent, params, job)` raises `SpecError`/`ModelError` when the recipe cannot handle this
  model or job (int4 on an encoder, a head count that does not divide, no training data for a
  recipe that trains). It runs for every recipe before any recipe does work, loads no weights, and
  must be quick: it may read `parent.info` and `parent.config`, never modify anything.
- `run(ctx, params)` writes the child model into `ctx.out_dir` (empty, created for it) and returns
  that folder. The folder must hold `llmos_model.json` with `task`, `label_names`, `max_length`,
  `format` (how `llmos.models.load_trained` loads it) and the `parent` lineage: write it with
  `write_child_info` (or use `save_hf_child` for plain Hugging Face children). Scratch files
  (checkpoints of a recovery fine-tune) go under `ctx.work_dir`, never into `ctx.out_dir`.
- `ctx.parent.folder` is the verified registry copy of the parent: NEVER modify it. Get a fresh,
  modifiable model with `ctx.load_parent()`.
- Heavy imports (torch, transformers, torchao, onnx) happen inside functions, so that importing
  the recipe table (spec validation, `llmos --help`) stays light.
- Metrics a recipe wants to keep (e.g. a recovery loss) go through `ctx.log_metrics`, which prefixes
  them with `recipe/<slug of the label>/`; progress text goes through `ctx.note`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from llmos.compress._data import CompressData
    from llmos.models import Built
    from llmos.spec import CompressJob

__all__ = ["NoParams", "Params", "Parent", "Recipe", "RecipeContext", "save_hf_child", "slug", "write_child_info"]


class Params(BaseModel):
    """Base of every recipe's parameter model: unknown keys are errors, values are validated."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class NoParams(Params):
    """For recipes without parameters."""


@dataclass(frozen=True)
class Parent:
    """The parent version, fetched and verified against its manifest. Read-only."""

    name: str  # registered model name
    version: str  # registered version number
    folder: Path  # verified local copy: never write here
    info: dict[str, Any]  # its llmos_model.json (task, label_names, max_length, format, ...)
    config: dict[str, Any]  # its config.json ({} for formats without one)

    @property
    def ref(self) -> str:
        return f"{self.name}/{self.version}"

    @property
    def task(self) -> str:
        return str(self.info["task"])

    @property
    def format(self) -> str:
        return str(self.info.get("format", "hf-safetensors"))

    @property
    def max_length(self) -> int:
        return int(self.info.get("max_length") or 128)


@dataclass(frozen=True)
class Recipe:
    name: str  # the word on the command line: `--recipe NAME[:k=v,...]`
    summary: str  # one line, shown by `llmos compress --list`
    params: type[Params]
    check: Callable[[Parent, Any, CompressJob], None]
    run: Callable[[RecipeContext, Any], Path]
    tasks: tuple[str, ...] = ("classification", "embedding", "causal-lm")  # tasks it can handle at all


@dataclass
class RecipeContext:
    """Everything one recipe run gets. Built by the compress pipeline, one per recipe."""

    parent: Parent
    job: CompressJob
    label: str  # the recipe as written (`prune-structured:heads=0.3`); names metrics and folders
    out_dir: Path  # the child model folder to fill (exists, empty)
    work_dir: Path  # scratch space of this recipe (exists)
    data: CompressData  # calibration / eval / training data, loaded once for all recipes
    tracker: Any  # llmos.tracking.Tracker or NullTracker of the compression run
    note: Callable[[str], None] = print  # one line of progress for the user
    _step: dict[str, int] = field(default_factory=dict)

    def load_parent(self) -> Built:
        """A fresh fp32 copy of the parent model (eval mode) and its tokenizer; safe to modify."""
        from llmos.models import load_trained

        return load_trained(self.parent.folder)

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        """Log metrics under `recipe/<label>/...` on the compression run."""
        step = self._step.get("n", 0) if step is None else step
        self._step["n"] = step + 1
        prefix = f"recipe/{slug(self.label)}/"
        self.tracker.log_metrics({prefix + k: float(v) for k, v in metrics.items()}, step)


def write_child_info(ctx: RecipeContext, params: Params, *, format: str, **extra: Any) -> Path:
    """Write the child's `llmos_model.json`: the parent's task, labels and length, the child's
    `format`, and its lineage (`parent`, `recipe`). `extra` adds fields (e.g. `sparsity`)."""
    from llmos.models import MODEL_INFO

    parent = ctx.parent
    info = {"task": parent.task, "base_model": parent.info.get("base_model", ""),
            "label_names": parent.info.get("label_names"), "max_length": parent.max_length,
            "format": format,
            "parent": {"name": parent.name, "version": parent.version, "format": parent.format},
            "recipe": {"name": _recipe_name(ctx.label), "params": params.model_dump(mode="json")},
            **extra}
    path = ctx.out_dir / MODEL_INFO
    path.write_text(json.dumps(info, indent=2))
    return path


def save_hf_child(ctx: RecipeContext, params: Params, model: Any, tokenizer: Any, **extra: Any) -> Path:
    """Save a plain (fp32 or bf16) Hugging Face child into `ctx.out_dir` with lineage; returns it."""
    from llmos.models import save_trained

    parent = ctx.parent
    save_trained(model, tokenizer, ctx.out_dir, task=parent.task, base=parent.info.get("base_model", ""),
                 label_names=parent.info.get("label_names"), max_length=parent.max_length)
    write_child_info(ctx, params, format="hf-safetensors", **extra)
    return ctx.out_dir


def slug(label: str) -> str:
    """A recipe label as a folder name and MLflow key: `prune-structured:heads=0.3` → `prune-structured.heads-0.3`."""
    table = str.maketrans({":": ".", "=": "-", ",": "_"})
    return "".join(c for c in label.translate(table) if c.isalnum() or c in "-_.")


def _recipe_name(label: str) -> str:
    return label.split(":", 1)[0]
