"""Content hashes of the input data, recorded as lineage with every run and model version."""

from __future__ import annotations

import hashlib
from pathlib import Path

__all__ = ["combine_digests", "data_hash", "file_digest", "text_digest"]

_CHUNK_BYTES = 1 << 20


def file_digest(path: Path) -> str:
    """sha256 hex digest of a file's bytes, read in chunks so big files do not fill memory."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while chunk := handle.read(_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def text_digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def combine_digests(digests: list[str]) -> str:
    """One digest stays as it is (so it equals `sha256sum FILE`); several are hashed together in order,
    as the sha256 of their hex digests, one per line."""
    if len(digests) == 1:
        return digests[0]
    return text_digest("".join(f"{d}\n" for d in digests))


def data_hash(paths: list[Path]) -> str:
    """sha256 of the files' bytes: for one file exactly what `sha256sum` prints; for several (train,
    eval) the sha256 of their digests in the given order. File names do not enter the hash, so a
    moved or renamed copy of the same data keeps its hash."""
    if not paths:
        raise ValueError("data_hash needs at least one path")
    return combine_digests([file_digest(Path(p)) for p in paths])
