"""Atomic, verifiable, pickle-free checkpoints.

A checkpoint is a folder `step-00000120/` holding `model.safetensors`, `optimizer.safetensors`,
`rng.safetensors` and `state.json` (step, data position, scheduler, optimizer hyper-parameters,
Python RNG), plus `manifest.json` with the sha256 of each file. It is written under a temporary
name, every file fsynced, then renamed into place, so a reader sees a whole checkpoint or none.
A torn or corrupt one fails its manifest and is skipped with a warning, never loaded.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, load_model, save_file, save_model

__all__ = ["Checkpoint", "at", "latest", "restore_rng", "save"]

_FILES = ("model.safetensors", "optimizer.safetensors", "rng.safetensors", "state.json")
_PREFIX = "step-"


@dataclass
class Checkpoint:
    path: Path
    state: dict[str, Any]

    @property
    def step(self) -> int:
        return int(self.state["step"])

    def load_model(self, model: torch.nn.Module) -> None:
        try:
            missing, unexpected = load_model(model, str(self.path / "model.safetensors"), strict=False)
        except RuntimeError as exc:  # shapes differ
            raise _mismatch(self.path, "the model", str(exc).splitlines()[0]) from None
        if missing or unexpected:
            raise _mismatch(self.path, "the model", f"missing {missing[:3]}, unexpected {unexpected[:3]}")

    def load_optimizer(self, optimizer: torch.optim.Optimizer) -> None:
        tensors = load_file(str(self.path / "optimizer.safetensors"))
        try:
            optimizer.load_state_dict(_unflatten_optimizer(tensors, self.state["optimizer"]))
        except (ValueError, KeyError) as exc:
            raise _mismatch(self.path, "the optimizer", str(exc)) from None

    def rng(self) -> dict[str, torch.Tensor]:
        return load_file(str(self.path / "rng.safetensors"))


def _mismatch(path: Path, what: str, detail: str) -> Exception:
    from llmos.errors import CheckpointError

    return CheckpointError(f"checkpoint {path} does not match {what} of this job ({detail}).",
                           hint="Resume with the spec the run started with, or start over with --fresh "
                                "(the old run folder is kept beside the new one).")


def save(folder: Path, *, step: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
         state: dict[str, Any], keep: int) -> Path:
    """Write a checkpoint for `step` atomically; keep the newest `keep` ones."""
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob(".tmp-*"):  # left by a writer that was killed mid-save
        shutil.rmtree(stale, ignore_errors=True)
    final = folder / f"{_PREFIX}{step:08d}"
    tmp = folder / f".tmp-{final.name}-{os.getpid()}"
    tmp.mkdir()
    save_model(model, str(tmp / "model.safetensors"))  # handles tied weights
    opt_tensors, opt_meta = _flatten_optimizer(optimizer.state_dict())
    save_file(opt_tensors, str(tmp / "optimizer.safetensors"))
    save_file(_rng_tensors(), str(tmp / "rng.safetensors"))
    full_state = {**state, "step": step, "optimizer": opt_meta, "python_rng": _py_rng()}
    (tmp / "state.json").write_text(json.dumps(full_state))
    manifest = {name: _sha256(tmp / name) for name in _FILES}
    (tmp / "manifest.json").write_text(json.dumps(manifest))
    for name in (*_FILES, "manifest.json"):
        _fsync(tmp / name)
    if final.exists():  # same step again: swap, so a complete copy exists at every moment
        old = folder / f".tmp-old-{final.name}-{os.getpid()}"
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)
    _fsync(folder)
    for old in _complete(folder)[keep:]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest(folder: Path) -> Checkpoint | None:
    """The newest checkpoint that passes its manifest; torn or corrupt ones are skipped."""
    for path in _complete(folder):
        problem = _verify(path)
        if problem is None:
            return Checkpoint(path, json.loads((path / "state.json").read_text()))
        warnings.warn(f"skipping checkpoint {path}: {problem}", stacklevel=2)
    return None


def at(folder: Path, step: int) -> Checkpoint:
    """The checkpoint of `step`, which another rank has verified (workers share the run folder)."""
    path = folder / f"{_PREFIX}{step:08d}"
    try:
        return Checkpoint(path, json.loads((path / "state.json").read_text()))
    except (OSError, ValueError):
        from llmos.errors import CheckpointError

        raise CheckpointError(f"rank 0 resumes from {path}, which this worker cannot read.",
                              hint="Put the run's output folder on storage that every node shares.") from None


def restore_rng(ckpt: Checkpoint) -> None:
    tensors = ckpt.rng()
    torch.set_rng_state(tensors["torch"])
    if torch.cuda.is_available():
        cuda = [tensors[k] for k in sorted(tensors) if k.startswith("cuda.")]
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)
    version, internal, gauss = ckpt.state["python_rng"]
    random.setstate((version, tuple(internal), gauss))


def _complete(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.iterdir() if p.is_dir() and p.name.startswith(_PREFIX)), reverse=True)


def _verify(path: Path) -> str | None:
    try:
        manifest = json.loads((path / "manifest.json").read_text())
    except (OSError, ValueError):
        return "manifest.json is missing or unreadable (torn write)"
    for name in _FILES:
        if name not in manifest or not (path / name).is_file():
            return f"{name} is missing"
        if _sha256(path / name) != manifest[name]:
            return f"{name} does not match its sha256 (corrupt)"
    return None


def _flatten_optimizer(sd: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors, scalars = {}, {}
    for pid, pstate in sd["state"].items():
        for key, value in pstate.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{pid}.{key}"] = value.detach().contiguous().cpu()
            else:
                scalars[f"{pid}.{key}"] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for flat, value in [*tensors.items(), *meta["scalars"].items()]:
        pid, key = flat.split(".", 1)
        state.setdefault(int(pid), {})[key] = value
    groups = [{k: tuple(v) if k == "betas" else v for k, v in g.items()} for g in meta["param_groups"]]
    return {"state": state, "param_groups": groups}


def _rng_tensors() -> dict[str, torch.Tensor]:
    out = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        out.update({f"cuda.{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())})
    return out


def _py_rng() -> list[Any]:
    version, internal, gauss = random.getstate()
    return [version, list(internal), gauss]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
