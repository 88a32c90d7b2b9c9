"""A resolved job as MLflow params: dotted keys (`train.lr`), JSON-ish values, within MLflow's limits."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["MAX_KEY_CHARS", "MAX_PARAM_CHARS", "MAX_TAG_CHARS", "flatten", "truncate"]

# MLflow's limits (mlflow.utils.validation): longer values are refused by the store.
MAX_KEY_CHARS = 250
MAX_PARAM_CHARS = 6000
MAX_TAG_CHARS = 8000
_BAD_KEY_CHARS = re.compile(r"[^/\w.\- :]")
_ELLIPSIS = "..."


def truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - len(_ELLIPSIS)] + _ELLIPSIS


def _value(value: Any) -> str:
    # JSON spelling keeps a param readable the way it was written in YAML: true, null, [0.9, 0.999].
    if not isinstance(value, bool | int | float | list | tuple | dict | None):
        return str(value)  # str itself, and paths, enums, dates: their plain spelling
    try:
        return json.dumps(value, default=str)
    except ValueError:  # a circular structure; str() still says something useful
        return str(value)


def _key(key: str) -> str:
    return truncate(_BAD_KEY_CHARS.sub("_", key), MAX_KEY_CHARS)


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested mappings become dotted keys; lists and scalars become one JSON string each."""
    flat: dict[str, str] = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{dotted}."))
        else:
            flat[_key(dotted)] = truncate(_value(value), MAX_PARAM_CHARS)
    return flat
