"""`onnx-int8`: export to ONNX, fuse attention with ONNX Runtime's transformer optimizer (BERT-style
encoders), then ONNX Runtime dynamic int8 quantization of the weights (activations quantized per
batch at run time). The child runs in ONNX Runtime, a second runtime beside PyTorch.

The fp32 export is checked against PyTorch on real inputs before quantizing, so a bad export is
an error here, not a silent accuracy loss later."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field

from llmos.compress._checks import require_fp32_parent, require_task
from llmos.compress._recipe import Params, Parent, Recipe, RecipeContext, write_child_info
from llmos.errors import ModelError

__all__ = ["RECIPE"]

_OPSET = 17
_FLOAT = 1  # onnx.TensorProto.FLOAT
_EXPORT_TOLERANCE = 1e-3  # max |fp32 ONNX - PyTorch| on the check batch; kernels differ, exports match
_FUSABLE = ("bert", "roberta", "xlm-roberta", "camembert", "electra", "distilbert")


class OnnxInt8Params(Params):
    per_channel: Annotated[bool, Field(description="one weight scale per output channel (more accurate)")] = True
    optimize: Annotated[bool, Field(description=(
        "fuse attention and layer norms with ONNX Runtime's transformer optimizer before quantizing"))] = True


def check(parent: Parent, params: OnnxInt8Params, job: object) -> None:
    require_task("onnx-int8", parent, ("classification", "embedding"),
                 "generation loops stay in PyTorch; use int8-weight or int4-weight")
    require_fp32_parent("onnx-int8", parent)


def run(ctx: RecipeContext, params: OnnxInt8Params) -> Path:
    from llmos._lazy import require

    require("onnxruntime")
    from onnxruntime.quantization import QuantType, quantize_dynamic

    built = ctx.load_parent()
    sample = _sample(ctx, built.tokenizer)
    fp32 = ctx.work_dir / "model-fp32.onnx"
    names = _export(built.model, ctx.parent.task, sample, fp32)
    _verify(built.model, ctx.parent.task, fp32, sample)
    config = getattr(built.model, "config", None)
    if params.optimize and getattr(config, "model_type", "") in _FUSABLE:
        fp32 = _optimize(fp32, config, ctx)
    # Fused operators (com.microsoft domain) defeat ONNX shape inference; their outputs are float.
    # Its advice to pre-process the graph (shape inference) targets static quantization: muted.
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        quantize_dynamic(str(fp32), str(ctx.out_dir / "model.onnx"), weight_type=QuantType.QInt8,
                         per_channel=params.per_channel, extra_options={"DefaultTensorType": _FLOAT})
    finally:
        root.setLevel(level)
    built.tokenizer.save_pretrained(str(ctx.out_dir))
    if config is not None:  # for people who read the folder; ONNX Runtime needs only the graph
        config.save_pretrained(str(ctx.out_dir))
    write_child_info(ctx, params, format="onnx-int8", onnx={"inputs": names, "opset": _OPSET})
    ctx.note(f"{ctx.label}: exported ({', '.join(names)}), quantized to int8")
    return ctx.out_dir


def _sample(ctx: RecipeContext, tokenizer: Any) -> dict[str, Any]:
    """A few real calibration (else eval) rows, padded: the export's example and its check."""
    import torch

    from llmos.data import collate

    encoded = ctx.data.calib if ctx.data.calib is not None else ctx.data.eval
    if encoded is None or len(encoded) == 0:
        ids = tokenizer(["a short example sentence", "another one"], padding=True, return_tensors="pt")
        return {k: v for k, v in ids.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
    # task "plain": ids and mask only, whatever the data's task
    batch = collate(encoded, list(range(min(4, len(encoded)))), pad_id=ctx.data.pad_id, task="plain")
    out = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    if "token_type_ids" in tokenizer.model_input_names:
        out["token_type_ids"] = batch.get("token_type_ids", torch.zeros_like(batch["input_ids"]))
    return out


def _export(model: Any, task: str, sample: dict[str, Any], path: Path) -> list[str]:
    import warnings

    import torch

    from llmos.models import onnx_graph

    names = list(sample)
    axes = {name: {0: "batch", 1: "sequence"} for name in names}
    axes["output"] = {0: "batch"}
    with warnings.catch_warnings(), torch.no_grad():
        # The TorchScript exporter warns about tracing Python control flow on every BERT; the
        # export is checked numerically right after, which is the check that matters.
        warnings.simplefilter("ignore")
        torch.onnx.export(onnx_graph(model, task, names), tuple(sample[n] for n in names), str(path),
                          input_names=names, output_names=["output"], dynamic_axes=axes, opset_version=_OPSET,
                          dynamo=False)
    return names


def _verify(model: Any, task: str, path: Path, sample: dict[str, Any]) -> None:
    import torch

    from llmos.models._onnx import OnnxModel

    with torch.no_grad():
        expected = model(**sample)
        got = OnnxModel(path, task)(**sample)
    expected = expected if task == "embedding" else expected.logits
    got = got if task == "embedding" else got.logits
    error = (expected.float() - got).abs().max().item()
    if error > _EXPORT_TOLERANCE:
        raise ModelError(f"the ONNX export of this model differs from PyTorch by {error:.2e} "
                         f"(tolerance {_EXPORT_TOLERANCE:g}); it is not used.",
                         hint="This architecture does not export cleanly; use the int8 recipe (PyTorch) instead.")


def _optimize(path: Path, config: Any, ctx: RecipeContext) -> Path:
    from onnxruntime.transformers.optimizer import optimize_model

    out = path.with_name("model-fp32-opt.onnx")
    try:
        # num_heads=0 / hidden_size=0: read them from the graph (a pruned model has its own).
        optimized = optimize_model(str(path), model_type="bert", num_heads=0, hidden_size=0, opt_level=1)
        optimized.save_model_to_file(str(out))
    except Exception as exc:  # fusion is an optimisation: the plain graph is still correct
        ctx.note(f"{ctx.label}: attention fusion skipped ({type(exc).__name__}: {exc})")
        return path
    return out


RECIPE = Recipe(name="onnx-int8", summary="ONNX export + ONNX Runtime dynamic int8 (runs in ONNX Runtime)",
                params=OnnxInt8Params, check=check, run=run, tasks=("classification", "embedding"))
