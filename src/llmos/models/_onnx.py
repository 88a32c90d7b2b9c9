"""An ONNX model file behind the Hugging Face calling convention, run by ONNX Runtime.

`OnnxModel(input_ids=..., attention_mask=...)` takes and returns torch tensors, so evaluation,
the compression report and serving call it exactly like the PyTorch models.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmos._lazy import require
from llmos._threads import usable_cores
from llmos.errors import ModelError

__all__ = ["OnnxModel", "OnnxOutput"]


@dataclass
class OnnxOutput:
    logits: Any  # torch.Tensor, float32


class OnnxModel:
    """Classification models return `OnnxOutput(logits=...)`; embedding models the pooled tensor."""

    def __init__(self, path: Path, task: str, num_threads: int | None = None) -> None:
        ort = require("onnxruntime")
        if not path.is_file():
            raise ModelError(f"{path} does not exist.", hint="The folder is incomplete; fetch it again.")
        options = ort.SessionOptions()
        options.intra_op_num_threads = num_threads or len(usable_cores())
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # warnings about unused initializers are not for users
        self.session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.task = task
        self.path = path

    def __call__(self, input_ids: Any, attention_mask: Any, token_type_ids: Any = None, **_: Any) -> Any:
        import torch

        feed = {"input_ids": input_ids, "attention_mask": attention_mask}
        if "token_type_ids" in self.inputs:
            feed["token_type_ids"] = token_type_ids if token_type_ids is not None else torch.zeros_like(input_ids)
        arrays = {k: v.detach().cpu().numpy() for k, v in feed.items() if k in self.inputs}
        out = torch.from_numpy(self.session.run(None, arrays)[0]).float()
        return out if self.task == "embedding" else OnnxOutput(logits=out)

    # The small part of the nn.Module surface that callers of a loaded model use.
    def eval(self) -> OnnxModel:
        return self

    def train(self, mode: bool = True) -> OnnxModel:  # no training mode: the graph is fixed
        return self

    def to(self, *_: Any, **__: Any) -> OnnxModel:
        return self

    def parameters(self) -> Any:
        return iter(())

