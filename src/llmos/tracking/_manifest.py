"""The manifest of a model folder: sha256 and size of every file, checked before anything loads.

A model is a Hugging Face folder (config, tokenizer, `model.safetensors`). `manifest.json` lists
its files; `verify_manifest` refuses a folder whose files were changed, lost, or joined by a new
weight, pickle or code file, because loading any of those could run or serve something nobody
registered.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

from llmos import __version__
from llmos.errors import RegistryError

__all__ = ["MANIFEST", "sha256_file", "verify_manifest", "write_manifest"]

MANIFEST = "manifest.json"
_CHUNK_BYTES = 1 << 20
# Formats that unpickle on load: refused wherever they appear, listed or not.
_PICKLE_SUFFIXES = frozenset({".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib"})
# Files that change what a loader runs or serves; an unlisted one is refused. Other unlisted
# files (a stray README, an editor's backup) are only reported in the log.
_LOADABLE_SUFFIXES = _PICKLE_SUFFIXES | frozenset(
    {".safetensors", ".gguf", ".onnx", ".h5", ".msgpack", ".npy", ".npz", ".py", ".so"})

_log = logging.getLogger(__name__)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _files(model_dir: Path) -> dict[str, Path]:
    """Every file under `model_dir` but the manifest, keyed by its POSIX relative path."""
    return {p.relative_to(model_dir).as_posix(): p for p in sorted(model_dir.rglob("*"))
            if p.is_file() and p.relative_to(model_dir).as_posix() != MANIFEST}


def _refuse_pickle(rel: str, model_dir: Path) -> None:
    if Path(rel).suffix.lower() in _PICKLE_SUFFIXES:
        raise RegistryError(
            f"{model_dir / rel} is a pickle-format file; llmos never loads pickles.",
            hint="Save weights as safetensors (save_pretrained(..., safe_serialization=True)) "
                 "and remove the file.")


def write_manifest(model_dir: Path) -> dict:
    """Hash every file of `model_dir` into `model_dir/manifest.json` and return the manifest."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise RegistryError(f"model folder {model_dir} does not exist.",
                            hint="Save the model (save_pretrained) before logging it.")
    files = _files(model_dir)
    for rel in files:
        _refuse_pickle(rel, model_dir)
    manifest = {
        "files": {rel: {"sha256": sha256_file(p), "bytes": p.stat().st_size} for rel, p in files.items()},
        "llmos_version": __version__,
    }
    (model_dir / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def _read(model_dir: Path) -> dict[str, dict]:
    path = model_dir / MANIFEST
    if not path.is_file():
        raise RegistryError(f"{model_dir} has no {MANIFEST}, so its files cannot be checked.",
                            hint="Log models with Tracker.log_model_dir, which writes the manifest.")
    try:
        files = json.loads(path.read_text())["files"]
        if not isinstance(files, dict):
            raise TypeError("'files' is not an object")
    except (ValueError, KeyError, TypeError) as exc:
        raise RegistryError(f"{path} is not a valid manifest ({exc}).",
                            hint="Fetch the model again or re-log it.") from exc
    return files


def verify_manifest(model_dir: Path) -> None:
    """Raise RegistryError unless every listed file is present with its size and sha256, and no
    pickle or unlisted weight/code file sits beside them."""
    model_dir = Path(model_dir)
    listed, present = _read(model_dir), _files(model_dir)
    for rel in present:
        _refuse_pickle(rel, model_dir)
    for rel, entry in listed.items():
        # A listed path that climbs out of the folder would make us hash files elsewhere.
        if rel.startswith("/") or ".." in Path(rel).parts:
            raise RegistryError(f"{model_dir / MANIFEST} lists an unsafe path: {rel}.",
                                hint="The manifest was tampered with; do not use this model.")
        path = present.get(rel)
        if path is None:
            raise RegistryError(f"{model_dir / rel} is missing (listed in the manifest).",
                                hint="Fetch the model again; if it persists, the stored copy is damaged.")
        if path.stat().st_size != entry.get("bytes") or sha256_file(path) != entry.get("sha256"):
            raise RegistryError(f"{model_dir / rel} does not match its sha256 in the manifest.",
                                hint="The file was changed or corrupted; fetch the model again.")
    for rel in sorted(set(present) - set(listed)):
        if Path(rel).suffix.lower() in _LOADABLE_SUFFIXES:
            raise RegistryError(f"{model_dir / rel} is not in the manifest: an unexpected weight or code "
                                "file is never loaded.", hint="Remove the file or re-log the model.")
        _log.warning("%s is not in the manifest; it is ignored", model_dir / rel)
