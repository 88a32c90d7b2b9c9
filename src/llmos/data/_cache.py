"""Ragged token-id lists on disk: each list of rows is a flat int32 tensor plus int64 offsets in one
safetensors file. Never pickle: the file holds numbers and string metadata, nothing executable."""

from __future__ import annotations

import itertools
import logging
import os
from pathlib import Path

import numpy as np

__all__ = ["load_ragged", "save_ragged"]

log = logging.getLogger(__name__)
_FORMAT = "llmos-tokenized/1"


def _flatten(rows: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum([len(row) for row in rows], out=offsets[1:])
    flat = np.fromiter(itertools.chain.from_iterable(rows), dtype=np.int32, count=int(offsets[-1]))
    return flat, offsets


def save_ragged(path: Path, columns: dict[str, list[list[int]]], key: str) -> None:
    """Write atomically (temporary file, fsync, rename): readers see the old file or the whole new
    one. A failed write only costs the cache, so it warns instead of failing the run."""
    from safetensors.numpy import save

    tensors: dict[str, np.ndarray] = {}
    for name, rows in columns.items():
        tensors[f"{name}.flat"], tensors[f"{name}.offsets"] = _flatten(rows)
    rows_count = len(next(iter(columns.values()))) if columns else 0
    blob = save(tensors, metadata={"format": _FORMAT, "key": key, "rows": str(rows_count)})
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # per process: DDP ranks may race here
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tmp.open("wb") as handle:
            handle.write(blob)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        log.warning("could not write the tokenized cache %s: %s", path, exc)


def _unflatten(flat: np.ndarray, offsets: np.ndarray) -> list[list[int]]:
    values, bounds = flat.tolist(), offsets.tolist()
    return [values[a:b] for a, b in itertools.pairwise(bounds)]


def _valid(flat: np.ndarray, offsets: np.ndarray, rows: int) -> bool:
    return (offsets.ndim == 1 and len(offsets) == rows + 1 and offsets[0] == 0
            and offsets[-1] == len(flat) and bool(np.all(np.diff(offsets) >= 0)))


def load_ragged(path: Path, key: str, rows: int) -> dict[str, list[list[int]]] | None:
    """The cached columns, or None when the file is absent, torn, corrupt or for other data; a bad
    file is left for the next write to replace."""
    from safetensors import SafetensorError, safe_open

    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="np") as handle:
            meta = handle.metadata() or {}
            if meta.get("format") != _FORMAT or meta.get("key") != key or meta.get("rows") != str(rows):
                raise ValueError(f"metadata {meta} does not match")
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118
        columns = {}
        for name in {n.rsplit(".", 1)[0] for n in tensors}:
            flat, offsets = tensors[f"{name}.flat"], tensors[f"{name}.offsets"]
            if not _valid(flat, offsets, rows):
                raise ValueError(f"column {name} has inconsistent offsets")
            columns[name] = _unflatten(flat, offsets)
    except (SafetensorError, OSError, ValueError, KeyError) as exc:
        log.warning("ignoring the unreadable tokenized cache %s (%s); tokenizing again", path, exc)
        return None
    return columns
