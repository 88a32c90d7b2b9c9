"""Convert a GGUF model file once into a safetensors Hugging Face folder, cached under `models_dir()`.

transformers reads GGUF (`gguf` package) and dequantizes it into a dense model, but refuses to
`save_pretrained` a model loaded that way; a plain model built `from_config` and given the dense
state dict saves normally and reloads in a fraction of a second instead of the ~12 s a GGUF load
takes (`_parsed_once`; 25 s on a 2-core AVX2 host as transformers reads it by itself). The cache is
written atomically: the folder is built under a temporary name and renamed into place, so a
half-written folder is never read; a file lock makes concurrent first uses wait
for one conversion instead of doing it twice.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from llmos.errors import DependencyError

__all__ = ["cached_conversion", "convert_gguf", "load_gguf"]

_TMP = ".tmp-"


def load_gguf(gguf_file: Path) -> tuple[Any, Any]:
    """The dequantized (float32) model and the tokenizer, as transformers reads them from `gguf_file`."""
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    if _missing("gguf"):
        raise DependencyError("reading a GGUF model file needs the package 'gguf'.",
                              hint="pip install 'llmos[smollm2]'")
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    folder, name = str(gguf_file.parent), gguf_file.name
    with _parsed_once():
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name,
                                                     quantization_config=GgufConfig(dequantize=True))
    return model.eval(), tokenizer


@contextmanager
def _parsed_once() -> Iterator[None]:
    """transformers reads a GGUF file three times for one load (its tokenizer, its config, its
    weights), each time parsing the whole header with `gguf.GGUFReader` (SmolLM2's 49,152-token
    vocabulary and merges, field by field in Python), and builds `gguf`'s tensor-name table once per
    module of the model (~400 times): 25 s of a 2-core AVX2 host's load, 12 s with one reader per
    file and one table per (architecture, depth) for the duration of the load. Both are read-only
    (a memory-mapped file; a name lookup). Where `gguf` no longer has these names, nothing changes."""
    import functools

    import gguf

    reader, names = getattr(gguf, "GGUFReader", None), getattr(gguf, "get_tensor_name_map", None)
    if reader is None or names is None:
        yield
        return
    readers: dict[tuple[str, str], Any] = {}

    def one_reader(path: Any, mode: str = "r") -> Any:
        key = (os.fspath(path), mode)
        if key not in readers:
            readers[key] = reader(path, mode)
        return readers[key]

    gguf.GGUFReader, gguf.get_tensor_name_map = one_reader, functools.lru_cache(maxsize=None)(names)
    try:
        yield
    finally:
        gguf.GGUFReader, gguf.get_tensor_name_map = reader, names


def convert_gguf(gguf_file: Path, out_dir: Path, info: dict[str, Any]) -> Any:
    """Write `gguf_file` as a safetensors folder (weights, config, tokenizer, chat template) plus
    `llmos_model.json` holding `info`; returns the GGUF-loaded model (the reference it must match)."""
    from transformers import AutoModelForCausalLM

    from llmos.models._build import MODEL_INFO

    gguf_model, tokenizer = load_gguf(gguf_file)
    config = gguf_model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # dense now: nothing about GGUF belongs in the folder
    plain = AutoModelForCausalLM.from_config(config, dtype=gguf_model.dtype)
    plain.load_state_dict(gguf_model.state_dict(), strict=True)
    plain.generation_config = gguf_model.generation_config
    plain.save_pretrained(str(out_dir), safe_serialization=True)
    tokenizer.save_pretrained(str(out_dir))
    (out_dir / MODEL_INFO).write_text(json.dumps(info, indent=2))
    return gguf_model


def cached_conversion(cache_dir: Path, write: Callable[[Path], object], what: str) -> Path:
    """`cache_dir`, filled by `write(folder)` on first use; it exists only once complete."""
    if cache_dir.is_dir():
        return cache_dir
    with _lock(cache_dir.parent / f"{cache_dir.name}.lock"):
        if cache_dir.is_dir():  # another process converted it while this one waited
            return cache_dir
        _remove_stale(cache_dir)
        tmp = cache_dir.parent / f"{_TMP}{cache_dir.name}-{uuid.uuid4().hex[:8]}"
        print(f"llmos: converting {what} once, into {cache_dir}", file=sys.stderr, flush=True)
        try:
            tmp.mkdir(parents=True)
            write(tmp)
            for written in tmp.iterdir():  # some writers make 0600 files; a shared cache is read by others
                written.chmod(0o644)
            os.rename(tmp, cache_dir)  # atomic on one file system: the folder appears whole
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return cache_dir


def _remove_stale(cache_dir: Path) -> None:
    """Temporary folders left by a conversion that was killed (only ever removed under the lock)."""
    for stale in cache_dir.parent.glob(f"{_TMP}{cache_dir.name}-*"):
        shutil.rmtree(stale, ignore_errors=True)


@contextmanager
def _lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file closes, also if the process dies
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _missing(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is None
