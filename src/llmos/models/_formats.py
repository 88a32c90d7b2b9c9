"""Stored formats beyond plain fp32 Hugging Face folders, saved and loaded without pickle.

`llmos_model.json`'s `format` says how a folder loads:

- `hf-safetensors`: a Hugging Face folder (fp32, or whatever dtype its weights hold);
- `bf16`: a Hugging Face folder whose weights are bfloat16; loads as a bf16 model;
- `torchao-int8`, `torchao-int8-weight`, `torchao-int4-weight`: `config.json`, the tokenizer, and
  `model.safetensors` holding torchao's quantized tensors flattened to plain ones (int8 data,
  scales, zero points) with their layout as JSON in the safetensors header (torchao's own
  allow-listed flattening: it rebuilds only known tensor classes, never unpickles). int4 data is
  packed two values a byte on disk. `quantization.json` says which modules were quantized and how;
- `onnx-int8`: `model.onnx` (ONNX Runtime dynamic int8) and the tokenizer; runs in ONNX Runtime.

Every loaded model is called like a Hugging Face model, `model(input_ids=..., attention_mask=...)`,
and returns an object with `.logits` (classification, causal-lm) or the pooled, L2-normalised
embedding tensor (embedding).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from llmos.errors import ModelError

__all__ = ["FORMATS", "QUANT_FILE", "TORCHAO_FORMATS", "conv1d_to_linear", "load_bf16", "load_onnx",
           "load_torchao", "save_torchao"]

TORCHAO_FORMATS = ("torchao-int8", "torchao-int8-weight", "torchao-int4-weight")
FORMATS = ("hf-safetensors", "bf16", *TORCHAO_FORMATS, "onnx-int8")
QUANT_FILE = "quantization.json"
WEIGHTS = "model.safetensors"
_PACKED = "_packed4"  # suffix of int4 data stored two values a byte


def task_class(task: str) -> Any:
    from transformers import AutoModel, AutoModelForCausalLM, AutoModelForSequenceClassification

    return {"classification": AutoModelForSequenceClassification, "causal-lm": AutoModelForCausalLM,
            "embedding": AutoModel}[task]


def conv1d_to_linear(model: Any) -> int:
    """Replace GPT-2-style `Conv1D` layers (weight stored in × out) by equivalent `nn.Linear`s, in
    place, so torchao (which quantizes Linear layers) sees them. Returns how many were replaced."""
    import torch
    from transformers.pytorch_utils import Conv1D

    swaps = [(name, mod) for name, mod in model.named_modules() if isinstance(mod, Conv1D)]
    for name, mod in swaps:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        in_f, out_f = mod.weight.shape
        linear = torch.nn.Linear(in_f, out_f, bias=True, dtype=mod.weight.dtype, device=mod.weight.device)
        with torch.no_grad():
            linear.weight.copy_(mod.weight.t())
            linear.bias.copy_(mod.bias)
        setattr(parent, child, linear)
    return len(swaps)


# ---- torchao-quantized models --------------------------------------------------------------------


def save_torchao(model: Any, tokenizer: Any, out_dir: Path, *, task: str, layout: dict[str, Any]) -> None:
    """Write a torchao-quantized model: config, tokenizer, flattened safetensors, `quantization.json`.

    `layout` describes the quantization (scheme, group size, the quantized modules) and must say
    `"conv1d_to_linear": True` when `conv1d_to_linear` ran before quantizing, and list in
    `"int8_embeddings"` the embeddings replaced by `Int8Embedding`."""
    from safetensors.torch import save_file
    from torchao.prototype.safetensors.safetensors_support import flatten_tensor_state_dict

    inner = model.encoder if task == "embedding" else model
    state, tied = _untied_state(inner)
    tensors, metadata = flatten_tensor_state_dict(state)
    packed = [key for key in tensors if key.endswith("_weight_qdata") and _is_int4(metadata, key)]
    for key in packed:
        tensors[key + _PACKED] = _pack_int4(tensors.pop(key))
    out_dir.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(out_dir / WEIGHTS), metadata=metadata)
    inner.config.save_pretrained(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))
    (out_dir / QUANT_FILE).write_text(json.dumps({**layout, "tied": tied, "packed_int4": packed}, indent=2))


def load_torchao(model_dir: Path, task: str) -> Any:
    """Rebuild a model saved by `save_torchao`: the architecture from its config, the quantized
    tensors from safetensors, ties restored. Returns the eager torchao model (eval mode)."""
    from safetensors import safe_open
    from torchao.prototype.safetensors.safetensors_support import unflatten_tensor_state_dict

    layout = json.loads((model_dir / QUANT_FILE).read_text())
    with safe_open(str(model_dir / WEIGHTS), framework="pt") as fh:
        metadata = fh.metadata() or {}
        tensors = {key: fh.get_tensor(key) for key in fh.keys()}  # noqa: SIM118 (safe_open has no items)
    for key in layout.get("packed_int4", []):
        tensors[key] = _unpack_int4(tensors.pop(key + _PACKED))
    state, leftover = unflatten_tensor_state_dict(tensors, metadata)
    if leftover:
        raise ModelError(f"{model_dir / WEIGHTS} holds tensors its layout does not name: {sorted(leftover)[:5]}.",
                         hint="The folder is damaged; fetch it again from the registry.")
    model = skeleton(model_dir, task)
    if layout.get("conv1d_to_linear"):
        conv1d_to_linear(model)
    if layout.get("int8_embeddings"):
        from llmos.models._int8_embedding import swap_in_int8_embeddings

        swap_in_int8_embeddings(model, layout["int8_embeddings"])
    missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
    tied = set(layout.get("tied", {}))
    if set(missing) - tied or unexpected:
        raise ModelError(f"the weights in {model_dir} do not fit its config (missing "
                         f"{sorted(set(missing) - tied)[:5]}, unexpected {sorted(unexpected)[:5]}).",
                         hint="The folder is damaged; fetch it again from the registry.")
    if tied:
        model.tie_weights()
    for param in model.parameters():  # an inference model: quantized tensors have no gradient
        param.requires_grad_(False)
    return model.eval()


def skeleton(model_dir: Path, task: str) -> Any:
    """The model class for `task` built from `config.json` (random weights), shaped like a pruned
    model when the config carries the pruned structure."""
    from transformers import AutoConfig

    from llmos.models import _pruned as pruned

    config = AutoConfig.from_pretrained(str(model_dir))
    model = task_class(task).from_config(config)
    structure = pruned.structure_of(config)
    if structure is not None:
        for layer, n_heads, n_neurons in zip(pruned.encoder_layers(model), structure["attention_heads"],
                                             structure["intermediate_sizes"], strict=True):
            pruned.shrink_layer(layer, range(n_heads), range(n_neurons), pruned.head_size(config))
    return model


def _untied_state(model: Any) -> tuple[dict[str, Any], dict[str, str]]:
    """The state dict less tensors that share storage with an earlier one (safetensors refuses
    shared tensors); returns it and {dropped key: kept key}."""
    state, tied, seen = {}, {}, {}
    for key, value in model.state_dict().items():
        ident = _storage_id(value)
        if ident in seen:
            tied[key] = seen[ident]
            continue
        seen[ident] = key
        state[key] = value
    return state, tied


def _storage_id(tensor: Any) -> tuple[Any, ...]:
    inner = getattr(tensor, "qdata", tensor)  # a torchao tensor: identify it by its data
    return inner.untyped_storage().data_ptr(), inner.storage_offset(), tuple(inner.shape)


def _is_int4(metadata: dict[str, str], key: str) -> bool:
    module, _, _ = key.rpartition("._weight_qdata")
    entry = json.loads(metadata.get(f"{module}.weight", "{}"))
    target = entry.get("_data", {}).get("target_dtype", {})
    return isinstance(target, dict) and target.get("_data") == "int4"


def _pack_int4(q: Any) -> Any:
    """int8 values in [-8, 7], last dimension even → uint8, two values a byte (low nibble first)."""
    import torch

    u = (q.to(torch.int16) + 8).to(torch.uint8)
    return (u[..., 0::2] | (u[..., 1::2] << 4)).contiguous()


def _unpack_int4(packed: Any) -> Any:
    import torch

    low = (packed & 0x0F).to(torch.int16) - 8
    high = (packed >> 4).to(torch.int16) - 8
    return torch.stack([low, high], dim=-1).flatten(-2).to(torch.int8)


# ---- bf16 and ONNX ------------------------------------------------------------------------------


def load_bf16(model_dir: Path, task: str) -> Any:
    import torch

    from llmos.models import _pruned as pruned

    return pruned.from_pretrained(task_class(task), model_dir).to(torch.bfloat16).eval()


def load_onnx(model_dir: Path, task: str, num_threads: int | None = None) -> Any:
    from llmos.models._onnx import OnnxModel

    return OnnxModel(model_dir / "model.onnx", task, num_threads=num_threads)
