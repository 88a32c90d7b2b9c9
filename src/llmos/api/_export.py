"""`llmos.export(...)`: a registered version as files other tools load without llmos."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

__all__ = ["export"]


def export(model: str, format: Literal["hf", "onnx"] = "hf", out: str | Path | None = None) -> Any:
    """Write the version `model` names as a plain Hugging Face folder (`format="hf"`) or an ONNX
    graph with its tokenizer (`"onnx"`); returns a `llmos.registry.Exported` (out, files, task)."""
    from llmos.registry import export as run_export

    return run_export(model, format=format, out=out)
