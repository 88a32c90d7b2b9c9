"""A registered version in a form other tools load without llmos: a plain Hugging Face folder
(`transformers`' `from_pretrained`) or an ONNX graph with its tokenizer (plain ONNX Runtime).

What each stored format can become:

| format | `hf` | `onnx` |
|---|---|---|
| `hf-safetensors` (trained, unstructured-pruned, distilled) | the folder as it is | exported |
| `hf-safetensors` + structured pruning (`llmos_structure`) | refused: a HF config cannot describe it | exported |
| `bf16` | the folder (bf16 weights) | exported (fp32 graph) |
| `onnx-int8` | refused | the graph as it is |
| `torchao-*` | transformers' torchao format (below) | refused |
| `torchao-*` of a GPT-2-style model (Conv1D layers) | refused: its quantized Linear layers have no HF class | refused |

A torchao child exports as transformers itself saves a torchao-quantized model: `config.json` with a
`quantization_config` (`quant_method: torchao` and the torchao config the recipe used) and
`model.safetensors` holding the quantized tensors flattened the way torchao's safetensors support
writes them; `from_pretrained` on it needs only transformers and torchao. Token embeddings that llmos
keeps in int8 (its own per-row module, which transformers does not know) are written back in full
precision, so the export is larger than the stored child by that table.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from llmos.errors import ModelError
from llmos.registry._fetch import fetch
from llmos.registry._ref import parse_ref

__all__ = ["Exported", "export"]

_LLMOS_FILES = ("llmos_model.json", "manifest.json", "quantization.json")
_HF_FORMATS = ("hf-safetensors", "bf16")


@dataclass(frozen=True)
class Exported:
    ref: str
    format: Literal["hf", "onnx"]
    out: Path
    task: str
    stored_as: str  # the version's llmos format
    files: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self) | {"out": str(self.out)}


def export(ref: str, format: Literal["hf", "onnx"] = "hf", out: str | Path | None = None,
           tracking_uri: str | None = None) -> Exported:
    """Write the version `ref` names (verified against its manifest) to `out` (default
    `./NAME-VERSION-FORMAT`), which must not exist or be empty."""
    if format not in ("hf", "onnx"):
        raise ModelError(f"unknown export format {format!r}.", hint="Use --format hf or --format onnx.")
    folder = fetch(parse_ref(ref), tracking_uri=tracking_uri)
    info = json.loads((folder / "llmos_model.json").read_text())
    task, stored = info["task"], info.get("format") or "hf-safetensors"
    target = Path(out) if out else Path.cwd() / f"{parse_ref(ref).name}-{folder.name}-{format}"
    if target.exists() and any(target.iterdir()):
        raise ModelError(f"{target} already exists and is not empty.", hint="Pass another --out folder.")
    target.mkdir(parents=True, exist_ok=True)
    if format == "hf":
        _to_hf(folder, stored, ref, target)
    else:
        _to_onnx(folder, task, stored, ref, target)
    (target / "README.md").write_text(_card(f"{parse_ref(ref).name}/{folder.name}", format, task, info))
    files = sorted(p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file())
    return Exported(ref, format, target, task, stored, files)


def _to_hf(folder: Path, stored: str, ref: str, target: Path) -> None:
    config = json.loads((folder / "config.json").read_text())
    if stored.startswith("torchao-"):
        _torchao_to_hf(folder, ref, target)
        return
    if stored not in _HF_FORMATS:
        raise ModelError(f"{ref} is stored as {stored}, which plain transformers cannot load.",
                         hint="Export it with --format onnx" if stored == "onnx-int8" else
                         "Export its parent, or a bf16 child, with --format hf.")
    if "llmos_structure" in config:
        raise ModelError(f"{ref} is structurally pruned: its layers differ in size, which a Hugging Face config "
                         "cannot describe.", hint="Export it with --format onnx (the graph holds every shape).")
    for path in folder.iterdir():
        if path.name not in _LLMOS_FILES:
            (shutil.copytree if path.is_dir() else shutil.copy2)(path, target / path.name)


def _torchao_to_hf(folder: Path, ref: str, target: Path) -> None:
    """A torchao child in transformers' own torchao format (see the module docstring)."""
    import torch
    from safetensors.torch import save_file
    from torchao.prototype.safetensors.safetensors_support import flatten_tensor_state_dict
    from transformers import TorchAoConfig

    from llmos.models._formats import QUANT_FILE, load_torchao
    from llmos.models._int8_embedding import Int8Embedding

    layout = json.loads((folder / QUANT_FILE).read_text())
    if layout.get("conv1d_to_linear"):
        raise ModelError(f"{ref} is a GPT-2-style model whose Conv1D layers llmos turned into Linear ones to "
                         "quantize them; its Hugging Face class cannot hold those.",
                         hint="Export its parent with --format hf, or a bf16 child.")
    task = json.loads((folder / "llmos_model.json").read_text())["task"]
    model = load_torchao(folder, task)
    for name, module in list(model.named_modules()):
        if isinstance(module, Int8Embedding):  # back to a plain table: transformers knows no int8 one
            plain = torch.nn.Embedding(module.num_embeddings, module.embedding_dim, module.padding_idx)
            plain.weight.data.copy_(module.weight)
            parent, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent) if parent else model, child, plain)
    model.tie_weights()
    model.config.quantization_config = TorchAoConfig(quant_type=_torchao_config(layout)).to_dict()
    state = {k: v for k, v in model.state_dict().items() if k not in layout.get("tied", {})}
    tensors, metadata = flatten_tensor_state_dict(state)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(target / "model.safetensors"), metadata=metadata)
    model.config.save_pretrained(str(target))
    for path in folder.iterdir():  # the tokenizer, a generation config: all but what was rewritten
        if path.name not in (*_LLMOS_FILES, "config.json", "model.safetensors"):
            (shutil.copytree if path.is_dir() else shutil.copy2)(path, target / path.name)


def _torchao_config(layout: dict) -> object:
    """The torchao config a recipe quantized with, from its `quantization.json`."""
    import torch
    from torchao.quantization import (
        Int8DynamicActivationInt8WeightConfig,
        Int8WeightOnlyConfig,
        IntxWeightOnlyConfig,
        PerGroup,
    )

    scheme = layout["scheme"]
    if scheme == "int8-dynamic":
        return Int8DynamicActivationInt8WeightConfig()
    if scheme == "int8-weight-only":
        return Int8WeightOnlyConfig()
    if scheme == "int4-weight-only":
        return IntxWeightOnlyConfig(weight_dtype=torch.int4, granularity=PerGroup(layout["group_size"]))
    raise ModelError(f"unknown torchao scheme {scheme!r} in quantization.json.",
                     hint="The folder is damaged or from a newer llmos; fetch it again or upgrade llmos.")


def _to_onnx(folder: Path, task: str, stored: str, ref: str, target: Path) -> None:
    if stored.startswith("torchao"):
        raise ModelError(f"{ref} is stored as {stored}; its quantized weights do not export to ONNX.",
                         hint="Export its parent with --format onnx, or compress it with the onnx-int8 recipe.")
    tokenizer_files = [p for p in folder.iterdir() if p.name.startswith(("tokenizer", "special_tokens", "vocab"))]
    for path in [*tokenizer_files, folder / "config.json"]:
        shutil.copy2(path, target / path.name)
    if stored == "onnx-int8":
        shutil.copy2(folder / "model.onnx", target / "model.onnx")
        return
    from llmos.models import export_onnx, load_trained

    built = load_trained(folder)
    export_onnx(built.model, task, built.tokenizer, target / "model.onnx")


def _card(version: str, format: str, task: str, info: dict) -> str:
    """How to load the export, in the folder: what a user of another tool needs to know."""
    lines = [f"# {version}", "", f"Exported by llmos from the registered version {version} ({task}, stored as "
             f"{info.get('format') or 'hf-safetensors'}; base model {info.get('base_model') or '-'}).", ""]
    if format == "hf":
        cls = {"classification": "AutoModelForSequenceClassification", "causal-lm": "AutoModelForCausalLM"}.get(
            task, "AutoModel")
        lines += [f"Load it with `transformers`: `{cls}.from_pretrained(FOLDER)` and "
                  "`AutoTokenizer.from_pretrained(FOLDER)`."]
    else:
        lines += ["Run `model.onnx` with ONNX Runtime; tokenize with `AutoTokenizer.from_pretrained(FOLDER)` (or the "
                  "`tokenizers` package and `tokenizer.json`). Inputs: the tokenizer's `input_ids`, `attention_mask` "
                  "(and `token_type_ids` where it makes them), int64, batch x sequence; output `output`."]
    if task == "classification" and info.get("label_names"):
        lines += ["", "Labels, by output index: " + ", ".join(f"{i}: {n}" for i, n in enumerate(info["label_names"]))
                  + "."]
    if task == "embedding":
        lines += ["", "Sentence embedding: the mean of the last hidden state over the attention mask, L2-normalised"
                  + (" (the ONNX graph's output already is)." if format == "onnx" else ".")]
    lines += ["", f"Texts longer than {info.get('max_length', 512)} tokens were cut at training time; do the same.", ""]
    return "\n".join(lines)
