"""PyTorch runtime: fp32, or bf16 autocast where the hardware has fast bf16; inference mode."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Any

from llmos._cpu import cpu_has_bf16
from llmos._threads import CoreWatch, ThreadPlan, apply_plan, plan_threads
from llmos.serve._runtime import ModelInfo, Padded

__all__ = ["TorchRuntime", "cast_linear_weights", "default_threads", "serving_threads"]

_log = logging.getLogger(__name__)


def cast_linear_weights(model: Any, dtype: Any) -> None:
    """Cast each linear layer's weight and bias to the autocast dtype once, in place.

    Under bf16 autocast every linear layer casts its fp32 weight and bias on every call; cast
    once, autocast finds them cast, so the answers are the same bit for bit and each pass skips
    reading and writing every weight again (MiniLM-L6 in-process: +13-18% at batch 1, +0-7% at
    16). Weights an embedding shares (a tied LM head) stay fp32, as autocast leaves embedding
    lookups in fp32. Only plain `nn.Linear` layers: quantized or wrapped ones keep their own.
    """
    import torch

    tied = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.Embedding)}
    for module in model.modules():
        if type(module) is torch.nn.Linear and id(module.weight) not in tied:
            module.to(dtype)


def serving_threads(num_threads: int | None) -> ThreadPlan:
    """Model threads: runtime.num_threads, else OMP_NUM_THREADS, else every usable core (the
    cores a daemon in this LLMOS_HOME has not handed out, when one runs beside a hand-started
    server).

    Leaving a core to the event loop (HTTP, JSON, tokenizing) looks right on paper, but the loop
    needs a small part of a core per request, and on a small machine one core fewer is a large
    part of the model's compute. Measured with benchmarks/serve.py on a 2-core AVX2 host, with
    the same load: one model thread vs two gave 34.2 vs 34.4 req/s at batch 1 and 70 vs 102
    req/s with dynamic batching (concurrency 16), and the 3x flood's accepted p99 was 561 vs
    486 ms. On a machine shared with other busy processes, a count llmos chose shrinks while
    they keep cores busy (CoreWatch); runtime.num_threads fixes it.
    """
    return plan_threads(num_threads, field="runtime.num_threads")


def default_threads() -> int:
    """The model threads a server with runtime.num_threads null runs (for the benchmarks)."""
    return serving_threads(None).threads


class TorchRuntime:
    name = "torch"
    watch: CoreWatch | None = None
    threads: int | None = None  # the model's intra-op threads on CPU, as planned (None on CUDA)

    def __init__(self, folder: Path, info: ModelInfo, spec: Any) -> None:
        import torch

        from llmos.errors import SpecError
        from llmos.models import load_trained

        if spec.device == "cuda" and not torch.cuda.is_available():
            raise SpecError("runtime.device is cuda but no CUDA device is visible.",
                            hint="Set runtime.device to auto or cpu.")
        self._torch = torch
        self.device = "cuda" if spec.device in ("auto", "cuda") and torch.cuda.is_available() else "cpu"
        if self.device == "cpu":
            # One intra-op pool sized to the cores we were given; one inter-op thread, since batches
            # run one at a time from the worker thread.
            plan = serving_threads(spec.num_threads)
            apply_plan(plan)
            self.threads = plan.threads
            with contextlib.suppress(RuntimeError):  # only settable before the first parallel op
                torch.set_num_interop_threads(1)
            # A count llmos chose follows the cores other processes leave free (a training beside
            # the server): a pass whose threads share cores with busy processes waits at every
            # barrier for the descheduled ones. The batch worker calls it between passes.
            if plan.adaptive:
                self.watch = CoreWatch(plan.threads, plan.cores)
        self.info = info
        built = load_trained(folder)
        self.tokenizer = built.tokenizer
        self.model = built.model.to(self.device).eval()
        self._dtype = self._autocast_dtype(spec.precision)
        self.precision = "bf16" if self._dtype is not None else _stored_precision(info)
        self.packed: Any = None
        self.packing = "off (runtime.packing: off)"
        if spec.packing == "auto" and info.task != "causal-lm":
            self.packing = self._pack()
        if self._dtype is not None and not info.format.startswith("torchao"):
            cast_linear_weights(self.model, self._dtype)
        self.compiled = self._compile(spec.compile)

    def _pack(self) -> str:
        """Pack batches where the model allows it and the packed outputs match the padded ones."""
        from llmos.serve._packing import disable_packing, enable_packing, verify

        packed = enable_packing(self.model)
        if isinstance(packed, str):
            return f"off ({packed})"
        vocab = int(getattr(self.model.config, "vocab_size", 0) or 0) or self.tokenizer.vocab_size
        problem = verify(self.model, packed, vocab)
        if problem is not None:
            # The model's own stack goes back: every batch runs padded, and runtime.compile finds it
            # (an int8 model's dynamic activation scales differ packed and padded, and it compiles).
            disable_packing(self.model, packed)
            return f"off ({problem})"
        self.packed = packed
        return "on"

    def _compile(self, setting: str) -> str:
        """Compile the encoder's layer stack where asked (or where auto finds eager kernels slow):
        "on", or "off (reason)". The graphs build on the first calls, which warm-up makes."""
        from llmos.errors import SpecError
        from llmos.serve._packing import layer_stack

        slow_eager = self.info.format.startswith("torchao") and self.device == "cpu"
        if setting == "off" or (setting == "auto" and not slow_eager):
            if slow_eager:
                _log.warning("runtime.compile is off for a %s model on CPU: its eager int8 kernels are many times "
                             "slower than fp32 (set runtime.compile to auto)", self.info.format)
            return "off (runtime.compile: off)" if setting == "off" else "off (auto: eager kernels are fast here)"
        if self.info.task == "causal-lm":
            if setting == "on":
                raise SpecError("runtime.compile on applies to encoder models (classification, embedding); "
                                "generation runs eagerly.", hint="Set runtime.compile to auto or off.")
            _log.warning("a %s causal LM generates eagerly on CPU, many times slower than its fp32 parent: serve "
                         "the parent, or an encoder", self.info.format)
            return "off (generation runs eagerly)"
        owner, name, mask_kind = layer_stack(self.model, self.packed)
        if owner is None:
            raise SpecError(f"runtime.compile {setting}: {type(self.model).__name__} has no encoder layer stack to "
                            "compile.", hint="Set runtime.compile to off.")
        import torch._inductor.config as inductor

        from llmos.serve._compiled import CompiledStack

        # Frozen weights let inductor fold the quantized weights' handling into its CPU kernels.
        inductor.freezing = True
        setattr(owner, name, CompiledStack(getattr(owner, name), mask_kind))
        return "on"

    def _autocast_dtype(self, precision: str) -> Any:
        torch = self._torch
        if precision == "fp32":
            return None
        if precision == "bf16":
            if self.device == "cpu" and not cpu_has_bf16():
                _log.warning("runtime.precision is bf16 but this CPU has no bf16 units (AVX512-BF16 or AMX): "
                             "bf16 is emulated and several times slower than fp32 here; set runtime.precision "
                             "to auto or fp32")
            return torch.bfloat16
        if self.device == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
        return torch.bfloat16 if cpu_has_bf16() else None

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self._dtype is None:
            return contextlib.nullcontext()
        return self._torch.autocast(device_type=self.device, dtype=self._dtype)

    def infer(self, batch: Padded) -> Any:
        torch = self._torch
        inputs = {"input_ids": torch.from_numpy(batch.input_ids).to(self.device),
                  "attention_mask": torch.from_numpy(batch.attention_mask).to(self.device)}
        if batch.token_type_ids is not None:
            inputs["token_type_ids"] = torch.from_numpy(batch.token_type_ids).to(self.device)
        if self.packed is not None:
            self.packed.lengths = batch.attention_mask.sum(1).tolist()  # right-padded rows
        try:
            with torch.inference_mode(), self.autocast():
                out = self.model(**inputs)
        finally:
            if self.packed is not None:
                self.packed.lengths = None
        if self.info.task == "classification":
            return out.logits.float().softmax(-1).cpu().numpy()
        return out.float().cpu().numpy()  # embedding: pooled and normalised by the model itself


def _stored_precision(info: ModelInfo) -> str:
    return "fp32" if info.format in ("hf-safetensors", "") else info.format
