"""A student with fewer transformer blocks, initialised from some of the teacher's blocks.

Starting from the teacher's own blocks (rather than random weights) is what makes a short
distillation work (DistilBERT took every other layer; Sanh et al. 2019). Everything outside the
blocks (embeddings, final norm, pooler, task head) is copied whole.
"""

from __future__ import annotations

import copy
from typing import Any

import torch

from llmos.errors import ModelError
from llmos.models._pruned import STRUCTURE_KEY

__all__ = ["block_list", "make_student", "spread_layers"]


def spread_layers(teacher_layers: int, student_layers: int) -> list[int]:
    """Teacher blocks to copy, evenly spread and always including the top one: 6 → 3 gives
    [1, 3, 5], 12 → 4 gives [2, 5, 8, 11]. The top block feeds the head the teacher trained."""
    if not 0 < student_layers < teacher_layers:
        raise ValueError(f"a student needs between 1 and {teacher_layers - 1} layers, got {student_layers}")
    step = teacher_layers / student_layers
    return [round((i + 1) * step) - 1 for i in range(student_layers)]


def block_list(hf_model: Any) -> tuple[Any, str]:
    """The ModuleList of transformer blocks of a Hugging Face model, and its attribute path."""
    n = hf_model.config.num_hidden_layers
    for name, module in hf_model.named_modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == n and \
                name.rsplit(".", 1)[-1] in ("layer", "layers", "h", "block", "blocks"):
            return module, name
    raise ModelError(f"cannot find the {n} transformer blocks of {type(hf_model).__name__}.",
                     hint="Distillation supports models whose blocks are a list named layer, layers or h.")


def make_student(model: Any, keep: list[int]) -> Any:
    """A copy of `model` (a task model or an EmbeddingModel) with only the blocks `keep`, in order."""
    student = copy.deepcopy(model)
    hf = student.encoder if not hasattr(student, "base_model") else student
    blocks, path = block_list(hf)
    new_blocks = torch.nn.ModuleList([blocks[i] for i in keep])
    for j, block in enumerate(new_blocks):
        for module in block.modules():  # decoders index their KV cache by layer
            if hasattr(module, "layer_idx"):
                module.layer_idx = j
    parent_path, _, attr = path.rpartition(".")
    setattr(hf.get_submodule(parent_path) if parent_path else hf, attr, new_blocks)
    _shrink_config(hf.config, keep)
    return student


def _shrink_config(config: Any, keep: list[int]) -> None:
    config.num_hidden_layers = len(keep)
    # Per-layer lists in the config follow the blocks: attention types, a pruned model's shapes.
    if isinstance(getattr(config, "layer_types", None), list):
        config.layer_types = [config.layer_types[i] for i in keep]
    structure = getattr(config, STRUCTURE_KEY, None)
    if structure:
        setattr(config, STRUCTURE_KEY, {key: [values[i] for i in keep] for key, values in structure.items()})
