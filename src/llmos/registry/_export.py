"""A registered version in a form other tools load without llmos: a plain Hugging Face folder
(`transformers`' `from_pretrained`) or an ONNX graph with its tokenizer (plain ONNX Runtime).

What each stored format can become:

| format | `hf` | `onnx` |
|---|---|---|
| `hf-safetensors` (trained, unstructured-pruned, distilled) | the folder as it is | exported |
| `hf-safetensors` + structured pruning (`llmos_structure`) | refused: a HF config cannot describe it | exported |
| `bf16` | the folder (bf16 weights) | exported (fp32 graph) |
| `onnx-int8` | refused | the graph as it is |
| `torchao-*` | refused (for now) | refused |
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
    if stored not in _HF_FORMATS:
        raise ModelError(f"{ref} is stored as {stored}, which plain transformers cannot load.",
                         hint="Export it with --format onnx" if stored == "onnx-int8" else
                         "Export its parent, or a bf16 child, with --format hf (torchao-quantized weights load "
                         "only through llmos for now).")
    if "llmos_structure" in config:
        raise ModelError(f"{ref} is structurally pruned: its layers differ in size, which a Hugging Face config "
                         "cannot describe.", hint="Export it with --format onnx (the graph holds every shape).")
    for path in folder.iterdir():
        if path.name not in _LLMOS_FILES:
            (shutil.copytree if path.is_dir() else shutil.copy2)(path, target / path.name)


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
