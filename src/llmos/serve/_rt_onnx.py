"""ONNX Runtime: models stored as `.onnx` (e.g. the compression recipes' int8 exports).

ONNX Runtime cannot pack sentences into rows as the PyTorch runtime does (the exported graph takes a
padded batch and a 2-D mask), so a batch of mixed lengths is split into length buckets instead: calls
that each pad only to their own longest input (`length_buckets`, a pure function)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmos.serve._runtime import ModelInfo, Padded

__all__ = ["OnnxRuntime"]


class OnnxRuntime:
    name = "onnx"
    model = None  # no torch module: ONNX models classify and embed, they do not generate
    watch = None  # ONNX Runtime fixes its thread pool when the session is made

    def __init__(self, folder: Path, info: ModelInfo, spec: Any) -> None:
        from transformers import AutoTokenizer

        from llmos._lazy import require
        from llmos._threads import keep_to_cores
        from llmos.errors import ModelError, SpecError
        from llmos.serve._rt_torch import serving_threads

        ort = require("onnxruntime")
        files = sorted(folder.glob("*.onnx"))
        if not files:
            raise ModelError(f"{folder} is stored as '{info.format}' but holds no .onnx file.",
                             hint="Register the ONNX export again; the folder is incomplete.")
        options = ort.SessionOptions()
        threads = serving_threads(spec.num_threads)
        keep_to_cores(threads)
        options.intra_op_num_threads = threads.threads
        options.inter_op_num_threads = 1
        providers = ["CPUExecutionProvider"]
        if spec.device in ("auto", "cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        self.session = ort.InferenceSession(str(files[0]), sess_options=options, providers=providers)
        # ONNX Runtime falls back to the CPU silently (no onnxruntime-gpu, no GPU visible): an explicit
        # `cuda` is refused instead, as the PyTorch runtime refuses it.
        self.device = "cuda" if self.session.get_providers()[0].startswith("CUDA") else "cpu"
        if spec.device == "cuda" and self.device != "cuda":
            raise SpecError("runtime.device is cuda but ONNX Runtime cannot use a CUDA device here "
                            f"(providers: {', '.join(ort.get_available_providers())}).",
                            hint="Set runtime.device to auto or cpu, or install onnxruntime-gpu on a GPU machine.")
        self._inputs = {i.name for i in self.session.get_inputs()}
        self.info = info
        self.precision = info.format
        self.tokenizer = AutoTokenizer.from_pretrained(str(folder))
        self.last_positions = 0  # token positions the last `infer` ran (padding included)
        self.buckets = spec.packing == "auto"
        self.packing = ("off: length buckets (ONNX Runtime runs padded batches)" if self.buckets
                        else "off (runtime.packing: off; one padded call per batch)")

    def infer(self, batch: Padded) -> Any:
        """Probabilities (classifiers) or unit embeddings, one row per input, in the batch's order."""
        import numpy as np

        from llmos.serve._batching import length_buckets

        lengths = batch.attention_mask.sum(1).tolist()
        out: Any = None
        self.last_positions = 0
        for call in length_buckets(lengths) if self.buckets else [list(range(len(lengths)))]:
            width = max(lengths[i] for i in call)
            rows = np.asarray(call)
            part = Padded(batch.input_ids[rows, :width], batch.attention_mask[rows, :width],
                          None if batch.token_type_ids is None else batch.token_type_ids[rows, :width])
            values = self._run(part)
            if out is None:
                out = np.empty((len(lengths), *values.shape[1:]), dtype=values.dtype)
            out[rows] = values
            self.last_positions += len(call) * width
        return out

    def _run(self, batch: Padded) -> Any:
        import numpy as np

        feed = {"input_ids": batch.input_ids, "attention_mask": batch.attention_mask}
        if "token_type_ids" in self._inputs:
            feed["token_type_ids"] = (batch.token_type_ids if batch.token_type_ids is not None
                                      else np.zeros_like(batch.input_ids))
        out = self.session.run(None, {k: v for k, v in feed.items() if k in self._inputs})[0].astype(np.float32)
        if self.info.task == "classification":
            out = np.exp(out - out.max(-1, keepdims=True))
            return out / out.sum(-1, keepdims=True)
        if out.ndim == 3:  # exported without pooling: mean over real tokens, as EmbeddingModel does
            mask = batch.attention_mask[..., None].astype(np.float32)
            out = (out * mask).sum(1) / np.clip(mask.sum(1), 1e-6, None)
        return out / np.clip(np.linalg.norm(out, axis=-1, keepdims=True), 1e-12, None)
