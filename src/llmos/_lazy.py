"""Lazy imports of heavy or optional packages with the exact fix when they are missing."""

from __future__ import annotations

import importlib
from types import ModuleType

from llmos.errors import DependencyError

# package to import -> the pip requirement that provides it: each names an extra in pyproject.toml
# (tests/unit/test_packaging.py holds them to it).
_EXTRAS = {
    "datasets": "pip install 'llmos[hf]'",
    "onnx": "pip install 'llmos[onnx]'",
    "onnxscript": "pip install 'llmos[onnx]'",
    "onnxruntime": "pip install 'llmos[onnx]'",
    "psycopg": "pip install 'llmos[postgres]'",
}


def require(module: str) -> ModuleType:
    """Import `module` or raise a DependencyError naming the install command."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        fix = _EXTRAS.get(top, f"pip install {top}")
        raise DependencyError(f"the package '{top}' is needed here but is not installed ({exc}).",
                              hint=f"Install it with: {fix}") from exc
