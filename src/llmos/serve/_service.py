"""One served model: where it came from, its runtime and worker, its limits and its state.

`prepare` does the quick, fallible part before the server listens (registry lookup, manifest
check, spec/model compatibility); `Service.load` loads weights and warms up in the background
while `/readyz` answers 503.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmos.serve._batching import BatchPolicy
from llmos.serve._errors import HttpError
from llmos.serve._metrics import Metrics
from llmos.serve._runtime import ModelInfo, Runtime, is_onnx, load_runtime, read_info

__all__ = ["Service", "prepare"]

_log = logging.getLogger(__name__)
_WARMUP_TEXT = "warming up the model with a sentence of ordinary length before traffic arrives"


@dataclass(frozen=True)
class Source:
    ref: str
    name: str  # registered model name
    version: str
    folder: Path
    info: ModelInfo


def prepare(job: Any) -> Source:
    """Fetch the version `job.model` names from the registry (verified against its manifest)."""
    from llmos.errors import SpecError
    from llmos.registry import fetch, parse_ref

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # a server log wants no progress bars
    ref = parse_ref(job.model)
    folder = fetch(ref, tracking_uri=job.tracking_uri)
    info = read_info(folder)
    if is_onnx(folder, info) and info.task == "causal-lm":
        raise SpecError(f"{job.model} is a causal LM stored as ONNX; generation runs on PyTorch only.",
                        hint="Serve the PyTorch version of this model.")
    # fetch() keeps versions under .../NAME/VERSION; the folder name is the resolved version.
    return Source(ref=str(ref), name=ref.name, version=folder.name, folder=folder, info=info)


class Service:
    def __init__(self, job: Any, source: Source, api_key: str | None = None) -> None:
        self.job = job
        self.source = source
        self.info = source.info
        self.metrics = Metrics()
        env = job.server.api_key_env
        self.api_key = api_key or (os.environ.get(env) if env else None) or None
        self.names = {job.name, source.ref, source.name, f"{source.name}/{source.version}"}
        self.model_id = job.name
        self.created = int(time.time())
        self.ready = False
        self.draining = False
        self.inflight = 0
        self.failed: BaseException | None = None
        self.runtime: Runtime | None = None
        self.worker: Any = None
        self.max_positions = 0
        self.load_s = 0.0
        self.width = 0  # output width (labels or embedding dimensions), known after warm-up
        self._encoder: Any = None  # see direct_encoder

    # -- loading ------------------------------------------------------------------------------
    def load(self) -> None:
        """Load, start the worker and warm up; then mark ready. Runs in a background thread."""
        start = time.perf_counter()
        self.runtime = load_runtime(self.source.folder, self.job.runtime)
        import transformers

        transformers.logging.set_verbosity_error()  # over-long inputs are refused by us, not truncated
        self._encoder = direct_encoder(self.runtime.tokenizer)
        batching, limits = self.job.batching, self.job.limits
        self.max_positions = _model_positions(self.runtime, self.source.folder)
        if self.info.task == "causal-lm":
            from llmos.serve._generate import GenerationWorker

            self.max_positions = self.max_positions or 2048
            from llmos.serve._prefix import PrefixCache

            prefixes = PrefixCache(max_entries=batching.prefix_cache) if batching.prefix_cache else None
            self.worker = GenerationWorker(self.runtime, batching.max_batch_size, batching.max_batch_tokens,
                                           limits.max_queue, self.max_positions, self.metrics, prefixes)
        else:
            from llmos.serve._worker import BatchWorker

            policy = BatchPolicy(batching.max_batch_size, batching.max_batch_tokens, batching.max_wait_ms,
                                 batching.linger_ms)
            self.worker = BatchWorker(self.runtime, policy, limits.max_queue, self.metrics,
                                      max_width=self.max_input_tokens)
        self.metrics.watch_queue(self.worker.queued)
        self._warm_up()
        self.worker.start()
        self.load_s = time.perf_counter() - start
        self.ready = True

    def _warm_up(self) -> None:
        # First calls pay for lazy kernel selection and allocator growth: spend that before traffic.
        from llmos.serve._runtime import pad_batch
        from llmos.serve._worker import PAD_MULTIPLE

        runtime = self.runtime
        assert runtime is not None
        ids = self.tokenize([_WARMUP_TEXT])[0][0]
        if self.info.task == "causal-lm":
            torch = runtime._torch  # type: ignore[attr-defined]
            with torch.inference_mode(), runtime.autocast():  # type: ignore[attr-defined]
                for n in (1, 4):
                    runtime.model(input_ids=torch.tensor([ids] * n, device=runtime.device), use_cache=True)
            return
        # One input; two of different lengths (one packed row, or padding); sixteen of mixed lengths
        # (several packed rows): each shape family a compiled model builds a graph for, before traffic.
        mixed = [ids[:max(2, len(ids) - i % 8)] for i in range(16)]
        for rows in ([ids], mixed[:2], mixed, [ids]):
            out = runtime.infer(pad_batch(rows, runtime.tokenizer.pad_token_id or 0, multiple=PAD_MULTIPLE))
        self.width = int(out.shape[-1])

    def stop(self) -> None:
        if self.worker is not None:
            self.worker.stop()

    # -- requests -----------------------------------------------------------------------------
    @property
    def max_input_tokens(self) -> int:
        if self.info.task == "causal-lm":
            model_limit = self.max_positions - 1  # room for one generated token
        else:
            model_limit = self.max_positions or self.info.max_length
        if self.job.limits.max_input_tokens is not None:
            # Never above what the position embeddings hold: a longer input would crash the forward pass.
            return min(self.job.limits.max_input_tokens, model_limit)
        return min(self.info.max_length, model_limit)

    def check_model(self, requested: str | None) -> None:
        if requested is not None and requested not in self.names:
            raise HttpError(404, f"model '{requested}' is not served here; this server serves '{self.model_id}'.",
                            param="model", code="model_not_found")

    def tokenize(self, texts: list[str], pairs: list[str] | None = None,
                 special: bool = True) -> list[tuple[list[int], list[int] | None]]:
        encoder = self._encoder
        if encoder is not None:
            if pairs is not None:
                encoded = encoder.encode_batch(list(zip(texts, pairs, strict=True)), add_special_tokens=special)
                return [(e.ids, e.type_ids) for e in encoded]
            if len(texts) == 1:  # encode_batch would wake a thread pool for one text
                return [(encoder.encode(texts[0], add_special_tokens=special).ids, None)]
            return [(e.ids, None) for e in encoder.encode_batch(texts, add_special_tokens=special)]
        tok = self.runtime.tokenizer  # type: ignore[union-attr]
        if pairs is not None:
            enc = tok(texts, pairs, return_token_type_ids=True, return_attention_mask=False)
            types = enc.get("token_type_ids") or [None] * len(texts)
            return list(zip(enc["input_ids"], types, strict=True))
        enc = tok(texts, add_special_tokens=special, return_attention_mask=False, return_token_type_ids=False)
        return [(ids, None) for ids in enc["input_ids"]]

    def check_inputs(self, n_inputs: int) -> None:
        limit = self.job.limits.max_inputs
        if n_inputs == 0:
            raise HttpError(400, "input is empty; send at least one text.", param="input")
        if n_inputs > limit:
            raise HttpError(413, f"the request has {n_inputs} inputs; the limit (limits.max_inputs) is {limit}. "
                                 "Split it into several requests.", param="input", code="too_many_inputs")

    def check_lengths(self, rows: list[tuple[list[int], list[int] | None]], param: str = "input") -> None:
        limit = self.max_input_tokens
        for i, (ids, _) in enumerate(rows):
            if len(ids) > limit:
                raise HttpError(400, f"{param}[{i}] has {len(ids)} tokens; the limit (limits.max_input_tokens) is "
                                     f"{limit}. Shorten it.", param=param, code="input_too_long")

    def deadline_s(self) -> float:
        return self.job.limits.timeout_s


def _model_positions(runtime: Runtime, folder: Path) -> int:
    """Positions the model's embeddings hold (0 when its config does not say)."""
    config: Any = getattr(runtime.model, "config", None) if runtime.model is not None else None
    if config is None:
        import json

        path = folder / "config.json"
        config = json.loads(path.read_text()) if path.is_file() else {}
    get = config.get if isinstance(config, dict) else (lambda key: getattr(config, key, None))
    return int(get("max_position_embeddings") or get("n_positions") or 0)


# Texts on which the direct encoder must give what the tokenizer gives (ids and token types).
_CHECK_TEXTS = [_WARMUP_TEXT, "  Spaces,  PUNCTUATION!!  and ÜNICODE: naïve café — 東京 🙂 ", "don't stop", "x", ""]


def direct_encoder(tokenizer: Any) -> Any:
    """A private copy of a fast tokenizer's Rust backend, padding and truncation off, or None.

    The transformers call around the backend costs about as much again as the encoding itself
    (0.53 vs 0.25 ms for one sentence here); requests are tokenized on the event loop, where that
    is time taken from everything else. The copy is used only if it agrees with the tokenizer on
    a few texts and pairs, with and without special tokens; otherwise requests keep the tokenizer.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return None
    from tokenizers import Tokenizer

    encoder = Tokenizer.from_str(backend.to_str())
    encoder.no_padding()
    encoder.no_truncation()
    texts, pairs = _CHECK_TEXTS, _CHECK_TEXTS[::-1]
    try:
        for special in (True, False):
            want = tokenizer(texts, add_special_tokens=special, return_attention_mask=False,
                             return_token_type_ids=False)["input_ids"]
            if want != [encoder.encode(t, add_special_tokens=special).ids for t in texts]:
                raise ValueError(f"ids differ (special tokens {special})")
        want_pairs = tokenizer(texts, pairs, return_token_type_ids=True, return_attention_mask=False)
        got = encoder.encode_batch(list(zip(texts, pairs, strict=True)))
        if want_pairs["input_ids"] != [e.ids for e in got] or want_pairs["token_type_ids"] != [e.type_ids for e in got]:
            raise ValueError("text pairs differ")
    except Exception as exc:  # any disagreement or failure: the tokenizer stays in charge
        _log.info("requests are tokenized through transformers (the tokenizer's backend alone: %s)", exc)
        return None
    return encoder
