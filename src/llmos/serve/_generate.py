"""Generation with continuous batching: a thread keeps one running batch of sequences with a KV
cache. Each iteration either prefills the sequences that just arrived (one left-padded forward
pass; their cache is then merged into the running batch) or decodes one token for every running
sequence. A finished sequence leaves at once and its place is free for the next arrival.

A prompt that starts with a prefix kept in the `PrefixCache` (a shared system prompt) is prefilled
from the prefix's end, its cache starting from the prefix's keys and values.

Sequences report to their request through `sink(event)` on the event loop:
("delta", text, choices) with the `Choice` (token, logprobs) of each token the text covers,
("done", finish_reason) or ("error", HttpError).
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
from llmos.serve._prefix import PrefixCache
from llmos.serve._sampling import Choice, RowSampling, choose, scan_stop, seeded_generator
from llmos.serve._worker import Throughput, follow_free_cores, shutting_down

__all__ = ["GenParams", "GenerationWorker", "Sequence", "loop_sink"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GenParams:
    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    top_logprobs: int | None = None  # None: no logprobs


@dataclass
class Sequence:
    prompt_ids: list[int]
    params: GenParams
    sink: Callable[[tuple[Any, ...]], None]  # thread-safe: posts the event to the request's loop
    stream: int = 0  # which choice of its request (a seeded request's choices draw from different streams)
    out_ids: list[int] = field(default_factory=list)
    choices: list[Choice] = field(default_factory=list)  # one per token of out_ids (logprobs when asked)
    sent_chars: int = 0
    sent_tokens: int = 0
    cancelled: bool = False  # set by the request (deadline, client gone); read by the worker
    finish: str | None = None
    sampling: RowSampling = field(init=False)

    def __post_init__(self) -> None:
        p = self.params
        self.sampling = RowSampling(
            temperature=p.temperature, top_p=p.top_p, presence_penalty=p.presence_penalty,
            frequency_penalty=p.frequency_penalty, top_logprobs=p.top_logprobs,
            generator=None if p.seed is None or p.temperature == 0 else seeded_generator(p.seed, self.stream))


class GenerationWorker:
    unit = "sequences"  # what the queue counts, in 429 messages

    def __init__(self, runtime: Any, max_batch_size: int, max_batch_tokens: int, max_queue: int,
                 max_positions: int, metrics: Any, prefix_cache: PrefixCache | None = None) -> None:
        self.runtime = runtime
        self.max_batch_size = max_batch_size
        self.max_batch_tokens = max_batch_tokens
        self.max_queue = max_queue
        self.max_positions = max_positions
        self.metrics = metrics
        self.throughput = Throughput()
        self.prefix = prefix_cache
        tok = runtime.tokenizer
        self._pad_id = tok.pad_token_id if tok.pad_token_id is not None else 0
        eos = runtime.model.config.eos_token_id
        self._eos = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        # transformers 5.2x renamed `past_key_values` to `cache`; older 5.x only knows the old name.
        params = inspect.signature(runtime.model.forward).parameters
        self._cache_kw = "cache" if "cache" in params else "past_key_values"
        # A prefill needs the logits of each row's last position only: the LM head over every prompt
        # token (vocabulary 49k for SmolLM2) would cost as much as a third of the layers.
        self._last_only = {"logits_to_keep": 1} if "logits_to_keep" in params else {}
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
            follow_free_cores(self.runtime)
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
        """Prefill the admitted sequences, one forward pass per kept prefix they start from (or none)."""
        groups: dict[tuple[int, ...], tuple[Any, list[Sequence]]] = {}
        for seq in seqs:
            found = self.prefix.lookup(seq.prompt_ids) if self.prefix is not None else None
            key, kv = found if found is not None else ((), None)
            groups.setdefault(key, (kv, []))[1].append(seq)
        for key, (kv, group) in groups.items():
            self._prefill_group(group, len(key), kv)

    def _prefill_group(self, seqs: list[Sequence], start: int, kv: Any) -> None:
        torch = self.runtime._torch
        device = self.runtime.device
        rows = [s.prompt_ids[start:] for s in seqs]
        longest = max(len(r) for r in rows)
        ids = torch.full((len(seqs), longest), self._pad_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), longest), dtype=torch.long)
        for i, row in enumerate(rows):  # left padding: every row's last token sits in the last column
            ids[i, longest - len(row):] = torch.tensor(row)
            mask[i, longest - len(row):] = 1
        ids, mask = ids.to(device), mask.to(device)
        positions = start + (mask.cumsum(-1) - 1).clamp(min=0)
        extra: dict[str, Any] = {}
        if kv is not None:  # the kept prefix's cache, one copy per row; its columns are real tokens
            extra[self._cache_kw] = self._prefix_cache(kv, len(seqs))
            mask = torch.cat([torch.ones((len(seqs), start), dtype=mask.dtype, device=device), mask], dim=-1)
        with torch.inference_mode(), self.runtime.autocast():
            out = self.runtime.model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True,
                                     **extra, **self._last_only)
        self.metrics.batch_size.observe(len(seqs))
        self.metrics.tokens.labels(kind="prompt").inc(int(mask.sum()) - start * len(seqs))
        new = {"cache": _cache_of(out), "mask": mask}
        self._keep_prefixes(seqs, new)
        choices = choose(out.logits[:, -1, :], [s.sampling for s in seqs])
        tokens = torch.tensor([c.token if isinstance(c, Choice) else self._pad_id for c in choices],
                              dtype=torch.long, device=device)
        with self._cond:
            if self._state is None:
                self._state = new
            else:
                self._state = _merge(self._state, new, torch)
            self._running.extend(seqs)
            self._state["last"] = torch.cat([self._state["last"], tokens.unsqueeze(-1)]) if "last" in self._state \
                else tokens.unsqueeze(-1)
        self._advance(seqs, choices)

    def _prefix_cache(self, kv: list[tuple[Any, Any]], rows: int) -> Any:
        from transformers import DynamicCache

        data = [(k.expand(rows, -1, -1, -1).contiguous(), v.expand(rows, -1, -1, -1).contiguous()) for k, v in kv]
        return DynamicCache(ddp_cache_data=data, config=self.runtime.model.config)

    def _keep_prefixes(self, seqs: list[Sequence], new: dict[str, Any]) -> None:
        """Keep the keys and values of a prefix that recent prompts share, sliced from this prefill."""
        if self.prefix is None:
            return
        for i, seq in enumerate(seqs):
            if seq.stream != 0:  # the other choices of one request repeat its prompt: not a shared prefix
                continue
            length = self.prefix.worth_keeping(seq.prompt_ids)
            if length:
                real = new["mask"][i].nonzero().squeeze(-1)[:length]
                kv = [(layer.keys[i:i + 1, :, real, :].clone(), layer.values[i:i + 1, :, real, :].clone())
                      for layer in _layers(new["cache"])]
                self.prefix.keep(seq.prompt_ids[:length], kv)

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
        choices = choose(out.logits[:, -1, :], [s.sampling for s in self._running])
        state["last"] = torch.tensor([c.token if isinstance(c, Choice) else self._pad_id for c in choices],
                                     dtype=torch.long, device=mask.device).unsqueeze(-1)
        self._advance(list(self._running), choices)

    def _advance(self, seqs: list[Sequence], choices: list[Choice | Exception]) -> None:
        """Append each sequence's new token, send the text that is final, retire finished sequences.
        A sequence whose token could not be chosen fails alone; the others go on."""
        tok = self.runtime.tokenizer
        self.metrics.tokens.labels(kind="completion").inc(len(choices))
        for seq, choice in zip(seqs, choices, strict=True):
            if seq.cancelled:
                seq.finish = "cancelled"
                continue
            if isinstance(choice, Exception):
                _log.warning("sampling failed for one sequence: %s", choice)
                seq.finish = "error"
                seq.sink(("error", HttpError(500, f"sampling the next token failed ({choice}); other parameters "
                                                  "(temperature, top_p) may work.", code="server_error")))
                continue
            self._step(tok, seq, choice)
        self._retire()

    def _step(self, tok: Any, seq: Sequence, choice: Choice) -> None:
        if choice.token in self._eos:
            seq.finish = "stop"
        else:
            seq.out_ids.append(choice.token)
            seq.choices.append(choice)
            if seq.sampling.presence_penalty or seq.sampling.frequency_penalty:
                seq.sampling.counts[choice.token] = seq.sampling.counts.get(choice.token, 0) + 1
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
            seq.sink(("delta", text[seq.sent_chars:safe], seq.choices[seq.sent_tokens:]))
            seq.sent_chars, seq.sent_tokens = safe, len(seq.choices)
        if seq.finish is not None:
            seq.sink(("done", seq.finish))

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
