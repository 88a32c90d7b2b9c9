"""Generation with continuous batching: a thread keeps one running batch of sequences with a KV
cache. Each iteration either prefills the sequences that just arrived (one left-padded forward
pass; their cache is then merged into the running batch) or decodes one token for every running
sequence. A finished sequence leaves at once and its place is free for the next arrival.

Sequences report to their request through `sink(event)` on the event loop:
("delta", text), ("done", finish_reason) or ("error", HttpError).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from llmos.serve._batching import retry_after_s
from llmos.serve._errors import HttpError, queue_full
from llmos.serve._sampling import sample_next, scan_stop
from llmos.serve._worker import Throughput, shutting_down

__all__ = ["GenParams", "GenerationWorker", "Sequence", "loop_sink"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GenParams:
    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()


@dataclass
class Sequence:
    prompt_ids: list[int]
    params: GenParams
    sink: Callable[[tuple[Any, ...]], None]  # thread-safe: posts the event to the request's loop
    out_ids: list[int] = field(default_factory=list)
    sent_chars: int = 0
    cancelled: bool = False  # set by the request (deadline, client gone); read by the worker
    finish: str | None = None


class GenerationWorker:
    unit = "sequences"  # what the queue counts, in 429 messages

    def __init__(self, runtime: Any, max_batch_size: int, max_batch_tokens: int, max_queue: int,
                 max_positions: int, metrics: Any) -> None:
        self.runtime = runtime
        self.max_batch_size = max_batch_size
        self.max_batch_tokens = max_batch_tokens
        self.max_queue = max_queue
        self.max_positions = max_positions
        self.metrics = metrics
        self.throughput = Throughput()
        tok = runtime.tokenizer
        self._pad_id = tok.pad_token_id if tok.pad_token_id is not None else 0
        eos = runtime.model.config.eos_token_id
        self._eos = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        # transformers 5.2x renamed `past_key_values` to `cache`; older 5.x only knows the old name.
        params = inspect.signature(runtime.model.forward).parameters
        self._cache_kw = "cache" if "cache" in params else "past_key_values"
        self._cond = threading.Condition()
        self._pending: deque[Sequence] = deque()
        self._running: list[Sequence] = []
        self._state: dict[str, Any] | None = None  # cache, attention mask, last tokens of the running batch
        self._stop = False
        self._thread = threading.Thread(target=self._loop, name="llmos-generation-worker", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop after the step in progress; every sequence still pending or running gets a 503, so
        no request waits for tokens that will never come (the server drained what it could)."""
        with self._cond:
            self._stop = True
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        with self._cond:
            left = [*self._pending, *self._running]
            self._pending.clear()
            self._running, self._state = [], None
        for seq in left:
            seq.sink(("error", shutting_down()))

    def queued(self) -> int:
        return len(self._pending)

    def outstanding(self) -> int:
        return len(self._pending) + len(self._running)

    def submit(self, seqs: list[Sequence]) -> None:
        with self._cond:
            if self._stop:
                raise shutting_down()
            if self.outstanding() + len(seqs) > self.max_queue:
                raise queue_full(self.max_queue, self.unit, self.retry_after_s())
            self._pending.extend(seqs)
            self._cond.notify()

    def retry_after_s(self) -> int:
        return retry_after_s(self.outstanding(), self.throughput.items_per_s)

    # -- the loop -----------------------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._stop and not self._pending and not self._running:
                    self._cond.wait()
                if self._stop:
                    return  # stop() answers what is left
                admitted = self._admit()
            try:
                if admitted:
                    self._prefill(admitted)
                else:
                    self._decode()
            except Exception:
                # The admitted sequences are not in the running batch until their prefill merged:
                # fail them too, or their requests would wait for the deadline.
                _log.exception("generation step failed")
                failed = HttpError(500, "generation failed on the server; see its log.", code="server_error")
                self._fail_all([s for s in admitted if s not in self._running], failed)

    def _admit(self) -> list[Sequence]:
        """Pending sequences (oldest first) that fit beside the running ones; cancelled ones leave."""
        admitted: list[Sequence] = []
        longest = 0
        while self._pending and len(self._running) + len(admitted) < self.max_batch_size:
            seq = self._pending[0]
            if seq.cancelled:
                self._pending.popleft()
                continue
            grown = max(longest, len(seq.prompt_ids))
            if admitted and grown * (len(admitted) + 1) > self.max_batch_tokens:
                break
            admitted.append(self._pending.popleft())
            longest = grown
        return admitted

    def _prefill(self, seqs: list[Sequence]) -> None:
        torch = self.runtime._torch
        device = self.runtime.device
        longest = max(len(s.prompt_ids) for s in seqs)
        ids = torch.full((len(seqs), longest), self._pad_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), longest), dtype=torch.long)
        for i, seq in enumerate(seqs):  # left padding: every row's last token sits in the last column
            ids[i, longest - len(seq.prompt_ids):] = torch.tensor(seq.prompt_ids)
            mask[i, longest - len(seq.prompt_ids):] = 1
        ids, mask = ids.to(device), mask.to(device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        with torch.inference_mode(), self.runtime.autocast():
            out = self.runtime.model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True)
        self.metrics.batch_size.observe(len(seqs))
        self.metrics.tokens.labels(kind="prompt").inc(int(mask.sum()))
        new = {"cache": _cache_of(out), "mask": mask}
        tokens = sample_next(out.logits[:, -1, :], [s.params.temperature for s in seqs],
                             [s.params.top_p for s in seqs])
        with self._cond:
            if self._state is None:
                self._state = new
            else:
                self._state = _merge(self._state, new, torch)
            self._running.extend(seqs)
            self._state["last"] = torch.cat([self._state["last"], tokens.unsqueeze(-1)]) if "last" in self._state \
                else tokens.unsqueeze(-1)
        self._advance(seqs, tokens.tolist())

    def _decode(self) -> None:
        torch = self.runtime._torch
        state = self._state
        assert state is not None  # _running is non-empty, so a batch exists
        mask = torch.cat([state["mask"], torch.ones_like(state["last"])], dim=-1)
        positions = state["mask"].sum(-1, keepdim=True)  # real tokens before the new one
        with torch.inference_mode(), self.runtime.autocast():
            out = self.runtime.model(input_ids=state["last"], attention_mask=mask, position_ids=positions,
                                     use_cache=True, **{self._cache_kw: state["cache"]})
        self.metrics.batch_size.observe(len(self._running))
        state["cache"], state["mask"] = _cache_of(out), mask
        tokens = sample_next(out.logits[:, -1, :], [s.params.temperature for s in self._running],
                             [s.params.top_p for s in self._running])
        state["last"] = tokens.unsqueeze(-1)
        self._advance(list(self._running), tokens.tolist())

    def _advance(self, seqs: list[Sequence], tokens: list[int]) -> None:
        """Append each sequence's new token, send the text that is final, retire finished sequences."""
        tok = self.runtime.tokenizer
        self.metrics.tokens.labels(kind="completion").inc(len(tokens))
        for seq, token in zip(seqs, tokens, strict=True):
            if seq.cancelled:
                seq.finish = "cancelled"
                continue
            if token in self._eos:
                seq.finish = "stop"
            else:
                seq.out_ids.append(token)
            text = tok.decode(seq.out_ids, skip_special_tokens=True)
            safe, stopped = scan_stop(text, seq.params.stop)
            if stopped:
                seq.finish = "stop"
            elif seq.finish is None and (len(seq.out_ids) >= seq.params.max_tokens
                                         or len(seq.prompt_ids) + len(seq.out_ids) >= self.max_positions):
                seq.finish, safe = "length", len(text)
            elif seq.finish is not None:
                safe = len(text)  # at EOS nothing more can complete a stop string
            if text.endswith("\ufffd") and seq.finish is None:  # half a multi-byte character: wait
                safe = min(safe, len(text) - 1)
            if safe > seq.sent_chars:
                seq.sink(("delta", text[seq.sent_chars:safe]))
                seq.sent_chars = safe
            if seq.finish is not None:
                seq.sink(("done", seq.finish))
        self._retire()

    def _retire(self) -> None:
        torch = self.runtime._torch
        with self._cond:
            keep = [i for i, s in enumerate(self._running) if s.finish is None]
            done = len(self._running) - len(keep)
            if done == 0:
                return
            self.throughput.add(done, time.perf_counter())
            self._running = [self._running[i] for i in keep]
            if not keep:
                self._state = None
                return
            self._state = _select(self._state, torch.tensor(keep), torch)

    def _fail_all(self, admitted: list[Sequence], error: HttpError) -> None:
        """Fail the running batch (its cache may be half updated) and the sequences being admitted."""
        with self._cond:
            failed = [*self._running, *admitted]
            self._running, self._state = [], None
        for seq in failed:
            if seq.finish is None:
                seq.sink(("error", error))


def _cache_of(out: Any) -> Any:
    cache = out.get("cache") if hasattr(out, "get") else None
    return cache if cache is not None else out.past_key_values


def _layers(cache: Any) -> list[Any]:
    layers = getattr(cache, "layers", None)
    if layers is None or not all(hasattr(layer, "keys") for layer in layers):
        raise RuntimeError(f"continuous batching needs a DynamicCache with per-layer keys/values, got {type(cache)}")
    return layers


def _merge(running: dict[str, Any], new: dict[str, Any], torch: Any) -> dict[str, Any]:
    """One batch from two: left-pad the shorter cache and mask to the longer, stack the rows."""
    length = max(running["mask"].shape[-1], new["mask"].shape[-1])

    def left_pad(t: Any, dim_from_end: int) -> Any:
        missing = length - t.shape[-dim_from_end]
        if missing == 0:
            return t
        pad = [0, 0] * (dim_from_end - 1) + [missing, 0]
        return torch.nn.functional.pad(t, pad)

    for a, b in zip(_layers(running["cache"]), _layers(new["cache"]), strict=True):
        a.keys = torch.cat([left_pad(a.keys, 2), left_pad(b.keys, 2)])
        a.values = torch.cat([left_pad(a.values, 2), left_pad(b.values, 2)])
    running["mask"] = torch.cat([left_pad(running["mask"], 1), left_pad(new["mask"], 1)])
    return running


def _select(state: dict[str, Any], keep: Any, torch: Any) -> dict[str, Any]:
    """Keep the rows `keep`, then drop leading columns that are padding in every remaining row."""
    mask = state["mask"][keep]
    first = int((mask.sum(0) > 0).nonzero()[0])
    for layer in _layers(state["cache"]):
        layer.keys = layer.keys[keep][..., first:, :]
        layer.values = layer.values[keep][..., first:, :]
    state["mask"], state["last"] = mask[:, first:], state["last"][keep]
    return state


def loop_sink(loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[Any]) -> Callable[[tuple[Any, ...]], None]:
    """A sink that posts events to `queue` on `loop` from the worker thread (a loop already closed
    has no one left to tell, and must not stop the worker)."""
    def post(event: tuple[Any, ...]) -> None:
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(queue.put_nowait, event)

    return post
