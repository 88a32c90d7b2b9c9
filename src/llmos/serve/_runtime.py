"""The runtime layer: one model folder from the registry, ready to run batches.

`load_runtime` reads `llmos_model.json` and picks the runtime module for the folder's `format`:
ONNX Runtime for ONNX models, PyTorch for everything else (fp32, bf16 autocast, and whatever
quantized formats `llmos.models.load_trained` knows). Every runtime answers `infer(batch)` with
class probabilities (classification) or pooled, normalised vectors (embedding) as float32 numpy;
PyTorch runtimes also expose the model for generation.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from llmos.errors import ModelError, SpecError

if TYPE_CHECKING:
    from llmos._threads import CoreWatch

__all__ = ["ModelInfo", "Padded", "Runtime", "load_runtime", "pad_batch", "read_info"]

_INFO = "llmos_model.json"
_TASKS = ("classification", "embedding", "causal-lm")


@dataclass(frozen=True)
class ModelInfo:
    task: str
    label_names: list[str] | None
    max_length: int
    format: str


@dataclass(frozen=True)
class Padded:
    """A right-padded batch of token ids (numpy int64 arrays of shape [batch, longest])."""

    input_ids: Any
    attention_mask: Any
    token_type_ids: Any | None = None


class Runtime(Protocol):
    name: str  # "torch" or "onnx"
    precision: str  # "fp32", "bf16", or what the stored format fixes ("int8")
    device: str
    info: ModelInfo
    tokenizer: Any
    model: Any | None  # the torch module (generation needs it); None for ONNX Runtime
    watch: CoreWatch | None  # resizes the model's threads between passes (torch on CPU, a count llmos chose)

    def infer(self, batch: Padded) -> Any: ...


def read_info(folder: Path) -> ModelInfo:
    path = folder / _INFO
    if not path.is_file():
        raise ModelError(f"{folder} has no {_INFO}; it was not written by llmos.",
                         hint="Serve models registered by `llmos train` or `llmos compress`.")
    raw = json.loads(path.read_text())
    task = raw.get("task")
    if task not in _TASKS:
        raise ModelError(f"{path}: task {task!r} cannot be served (expected one of {', '.join(_TASKS)}).",
                         hint="Register a classification, embedding or causal-lm model.")
    return ModelInfo(task=task, label_names=raw.get("label_names"), max_length=int(raw.get("max_length") or 512),
                     format=str(raw.get("format") or "hf-safetensors"))


def is_onnx(folder: Path, info: ModelInfo) -> bool:
    return info.format.startswith("onnx") or any(folder.glob("*.onnx"))


def load_runtime(folder: Path, spec: Any) -> Runtime:
    """The runtime for `folder` under a `RuntimeSpec`; refuses combinations that cannot work."""
    info = read_info(folder)
    onnx = is_onnx(folder, info)
    if spec.kind == "torch" and onnx:
        raise SpecError("runtime.kind 'torch' cannot run this model: it is stored as ONNX "
                        f"(format '{info.format}').", hint="Set runtime.kind to auto or onnx.")
    if spec.kind == "onnx" and not onnx:
        raise SpecError(f"runtime.kind 'onnx' needs an ONNX model; this one is stored as '{info.format}'.",
                        hint="Set runtime.kind to auto, or register an ONNX export "
                             "(llmos compress with the onnx-int8 recipe).")
    if onnx:
        if info.task == "causal-lm":
            raise SpecError("generation runs on PyTorch only; this causal LM is stored as ONNX.",
                        hint="Serve the PyTorch version of this model.")
        if spec.precision == "bf16":
            raise SpecError("runtime.precision bf16 applies to PyTorch; an ONNX model keeps its stored precision.",
                            hint="Set runtime.precision to auto or fp32.")
        if spec.compile == "on":
            raise SpecError("runtime.compile on applies to PyTorch; ONNX Runtime optimises an ONNX model's graph "
                            "itself.", hint="Set runtime.compile to auto or off.")
        from llmos.serve._rt_onnx import OnnxRuntime

        return OnnxRuntime(folder, info, spec)
    from llmos.serve._rt_torch import TorchRuntime

    return TorchRuntime(folder, info, spec)


def pad_batch(rows: list[list[int]], pad_id: int, type_rows: list[list[int]] | None = None,
              multiple: int = 1, max_width: int | None = None) -> Padded:
    """Right-pad token-id rows to the longest one; masks mark real tokens. With several rows, the
    width rounds up to a `multiple` (at most `max_width`): fewer distinct shapes, so the kernels
    chosen (and cached) per shape are reused instead of piling up."""
    import numpy as np

    longest = max(len(r) for r in rows)
    if len(rows) > 1 and multiple > 1:
        rounded = -(-longest // multiple) * multiple
        longest = max(longest, rounded if max_width is None else min(rounded, max_width))
    ids = np.full((len(rows), longest), pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), longest), dtype=np.int64)
    types = np.zeros((len(rows), longest), dtype=np.int64) if type_rows is not None else None
    for i, row in enumerate(rows):
        ids[i, :len(row)] = row
        mask[i, :len(row)] = 1
        if types is not None and type_rows is not None:
            types[i, :len(row)] = type_rows[i]
    return Padded(ids, mask, types)
