"""Build a model and tokenizer for a task, and save/load trained models as Hugging Face folders.

A saved model folder holds config, tokenizer, `model.safetensors` and `llmos_model.json`
(task, label names, base model, max length). Loading never unpickles: safetensors only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmos.errors import ModelError
from llmos.models import _pruned as pruned
from llmos.models._presets import resolve

__all__ = ["MODEL_INFO", "Built", "build", "load_trained", "save_trained"]

MODEL_INFO = "llmos_model.json"


@dataclass
class Built:
    model: Any  # torch.nn.Module
    tokenizer: Any
    base: str  # what the weights came from (preset name, folder or hub id)
    format: str = "hf-safetensors"  # how it was stored (llmos_model.json's `format`)


def build(name: str, task: str, *, label_names: list[str] | None = None, lora: Any = None,
          trust_remote_code: bool = False) -> Built:
    """A trainable model for `task` from a preset, a local folder or a hub id.

    Random-init presets draw from torch's global RNG: seed it first for reproducible weights.
    """
    import transformers
    from transformers import AutoConfig, AutoTokenizer

    transformers.logging.set_verbosity_error()  # "newly initialized head" is expected here
    preset = resolve(name, task)
    source = preset.path() if preset.path else None
    tok_source = preset.tokenizer() if preset.tokenizer else source
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(tok_source), trust_remote_code=trust_remote_code)
        if preset.config is not None:
            config = preset.config(task)
        else:
            config = AutoConfig.from_pretrained(str(source), trust_remote_code=trust_remote_code)
        model = _instantiate(task, config, source, label_names, trust_remote_code)
    except OSError as exc:
        raise ModelError(f"cannot load model '{name}': {exc}".splitlines()[0],
                         hint="Without network only local folders and presets load, and only safetensors "
                              "weights (never pickled .bin files); see llmos models presets.") from None
    except ValueError as exc:  # an architecture that has no class for this task
        raise ModelError(f"model '{name}' cannot be built for task '{task}': {exc}".splitlines()[0],
                         hint="Check model.task, or pick a model of a supported architecture.") from None
    if tokenizer.pad_token is None:
        # Decoder-only models ship without a pad token; padding with EOS is the usual choice
        # and is masked out of attention and loss.
        tokenizer.pad_token = tokenizer.eos_token
        (model.encoder if task == "embedding" else model).config.pad_token_id = tokenizer.pad_token_id
    if task == "causal-lm" and lora is not None:
        model = _with_lora(model, lora)
    return Built(model=model, tokenizer=tokenizer, base=name)


def _instantiate(task: str, config: Any, source: Path | None, label_names: list[str] | None,
                 trust_remote_code: bool) -> Any:
    from transformers import AutoModel, AutoModelForCausalLM, AutoModelForSequenceClassification

    if task == "classification":
        if not label_names:
            raise ModelError("classification needs label names.", hint="Set data.labels or a label column.")
        config.num_labels = len(label_names)
        config.id2label = dict(enumerate(label_names))
        config.label2id = {n: i for i, n in enumerate(label_names)}
        cls: Any = AutoModelForSequenceClassification
    elif task == "causal-lm":
        cls = AutoModelForCausalLM
    else:
        cls = AutoModel
    if source is None:
        model = cls.from_config(config, trust_remote_code=trust_remote_code)
    else:
        # safetensors only: a folder or hub repo with nothing but pickled weights is refused.
        model = pruned.from_pretrained(cls, source, config, trust_remote_code=trust_remote_code)
    if task == "embedding":
        from llmos.models._embedding import EmbeddingModel

        return EmbeddingModel(model)
    return model


def _with_lora(model: Any, lora: Any) -> Any:
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                        target_modules=lora.target_modules, task_type="CAUSAL_LM")
    try:
        return get_peft_model(model, config)
    except ValueError as exc:
        raise ModelError(f"LoRA cannot adapt this model: {exc}",
                         hint="Set model.lora.target_modules to the names of its Linear layers.") from None


def save_trained(model: Any, tokenizer: Any, out_dir: Path, *, task: str, base: str,
                 label_names: list[str] | None, max_length: int) -> Path:
    """Write a standalone Hugging Face folder (LoRA merged in) plus `llmos_model.json`."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # one small folder: the run's own progress is enough
    out_dir.mkdir(parents=True, exist_ok=True)
    inner = model.encoder if task == "embedding" else model
    if hasattr(inner, "merge_and_unload"):  # peft: serve a plain model, no adapter runtime needed
        inner = inner.merge_and_unload()
    inner.save_pretrained(str(out_dir), safe_serialization=True)
    tokenizer.save_pretrained(str(out_dir))
    info = {"task": task, "base_model": base, "label_names": label_names, "max_length": max_length,
            "format": "hf-safetensors"}
    (out_dir / MODEL_INFO).write_text(json.dumps(info, indent=2))
    return out_dir


def load_trained(model_dir: Path) -> Built:
    """Load a folder written by `save_trained` or a compression recipe for inference, by the
    `format` in its `llmos_model.json` (safetensors or ONNX only; see `llmos.models._formats`)."""
    from transformers import AutoTokenizer

    from llmos.models import _formats as formats

    info_file = model_dir / MODEL_INFO
    if not info_file.is_file():
        raise ModelError(f"{model_dir} has no {MODEL_INFO}; it was not written by llmos.",
                         hint="Load it as a plain Hugging Face folder instead.")
    info = json.loads(info_file.read_text())
    task, fmt = info["task"], info.get("format") or "hf-safetensors"
    if fmt == "onnx-int8":  # ONNX Runtime; an embedding graph already pools and normalises
        model: Any = formats.load_onnx(model_dir, task)
    else:
        if fmt == "hf-safetensors":
            model = pruned.from_pretrained(formats.task_class(task), model_dir)  # pruned: rebuilt to its shapes
        elif fmt == "bf16":
            model = formats.load_bf16(model_dir, task)
        elif fmt in formats.TORCHAO_FORMATS:
            model = formats.load_torchao(model_dir, task)
        else:
            raise ModelError(f"{info_file}: unknown format '{fmt}' (known: {', '.join(formats.FORMATS)}).",
                             hint="It was written by a newer llmos; upgrade llmos to load it.")
        if task == "embedding":
            from llmos.models._embedding import EmbeddingModel

            model = EmbeddingModel(model)
    return Built(model=model.eval(), tokenizer=AutoTokenizer.from_pretrained(str(model_dir)),
                 base=info.get("base_model", ""), format=fmt)
