"""A PyTorch model as an ONNX graph that plain ONNX Runtime runs: the logits of a classifier, or
the pooled, L2-normalised embedding of an encoder, for any batch size and sequence length."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmos.errors import ModelError

__all__ = ["OPSET", "export_onnx", "onnx_graph"]

OPSET = 17
_TOLERANCE = 1e-3  # max |ONNX - PyTorch| on the check batch: kernels differ, a good export matches


def export_onnx(model: Any, task: str, tokenizer: Any, path: Path) -> list[str]:
    """Write `model` to `path` (inputs input_ids, attention_mask and token_type_ids where the
    tokenizer makes them; one output, `output`), check it against PyTorch; returns the input names."""
    import warnings

    import torch

    if task not in ("classification", "embedding"):
        raise ModelError(f"ONNX export covers classification and embedding models, not {task}.",
                         hint="Export a causal LM with --format hf.")
    sample = dict(tokenizer(["a short example sentence", "another, somewhat longer, example sentence"],
                            padding=True, return_tensors="pt"))
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in sample]
    axes = {name: {0: "batch", 1: "sequence"} for name in names} | {"output": {0: "batch"}}
    graph = onnx_graph(model.float(), task, names)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's tracing warnings; the check below matters
        torch.onnx.export(graph, tuple(sample[n] for n in names), str(path), input_names=names,
                          output_names=["output"], dynamic_axes=axes, opset_version=OPSET, dynamo=False)
        expected = graph(*(sample[n] for n in names))
    _check(path, {n: sample[n].numpy() for n in names}, expected.numpy())
    return names


def onnx_graph(model: Any, task: str, names: list[str]) -> Any:
    """The module an ONNX export traces: positional inputs (`names`, in order) to keyword inputs,
    and the one tensor exported (a classifier's logits, an embedding model's pooled output)."""
    import torch

    class Graph(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            out = self.model(**dict(zip(names, inputs, strict=True)))
            return out if task == "embedding" else out.logits

    return Graph().eval()


def _check(path: Path, feed: dict[str, Any], expected: Any) -> None:
    from llmos._lazy import require

    ort = require("onnxruntime")
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feed)[0]
    error = float(abs(got - expected).max())
    if error > _TOLERANCE:
        path.unlink(missing_ok=True)
        raise ModelError(f"the ONNX export differs from PyTorch by {error:.2e} (tolerance {_TOLERANCE:g}); "
                         "it was not written.", hint="This architecture does not export cleanly; use --format hf.")
