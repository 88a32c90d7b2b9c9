"""Routes of causal LMs, in OpenAI's shapes: POST /v1/completions and POST /v1/chat/completions,
whole answers or server-sent events (`data: {chunk}` ... `data: [DONE]`)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from llmos.serve._errors import HttpError
from llmos.serve._generate import GenParams, Sequence, loop_sink
from llmos.serve._logprobs import chat_logprobs, completion_logprobs
from llmos.serve._schemas import MAX_STOPS, ChatRequest, ChatResponse, CompletionRequest, CompletionResponse

__all__ = ["add_generation"]

_log = logging.getLogger(__name__)


def _params(service: Any, request: Any, max_tokens: int, top_logprobs: int | None) -> GenParams:
    limit = service.job.limits.max_new_tokens
    for name in ("max_tokens", "max_completion_tokens"):  # chat has both: neither may pass the limit
        value = getattr(request, name, None)
        if value is not None and value > limit:
            raise HttpError(400, f"{name} {value} is above the limit (limits.max_new_tokens) of {limit}.",
                            param=name, code="max_tokens_too_large")
    stops = [request.stop] if isinstance(request.stop, str) else list(request.stop or [])
    if len(stops) > MAX_STOPS:
        raise HttpError(400, f"stop holds {len(stops)} strings; at most {MAX_STOPS} are allowed.", param="stop")
    if request.user is not None:  # OpenAI's `user`: who asked, for whoever reads the server's log
        _log.info("generation request from user %r", request.user)
    return GenParams(max_tokens=max_tokens, temperature=request.temperature, top_p=request.top_p,
                     stop=tuple(s for s in stops if s), seed=request.seed, presence_penalty=request.presence_penalty,
                     frequency_penalty=request.frequency_penalty, top_logprobs=top_logprobs)


def _prompt_ids(service: Any, prompts: list[str], param: str) -> list[list[int]]:
    rows = service.tokenize(prompts, special=False)
    service.check_lengths(rows, param=param)
    tok = service.runtime.tokenizer
    start = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
    # An empty prompt still needs one token to condition on.
    return [ids or [start if start is not None else 0] for ids, _ in rows]


def _chat_prompt(service: Any, request: ChatRequest) -> str:
    messages = [{"role": m.role, "content": m.content if isinstance(m.content, str)
                 else "".join(part.text for part in m.content)} for m in request.messages]
    tok = service.runtime.tokenizer
    if getattr(tok, "chat_template", None):
        return tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    # No template shipped with the model: a plain transcript that ends where the answer begins.
    return "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant:"


class _Run:
    """The sequences of one request and the queue their events arrive on: `n` per prompt, choice
    `p * n + j` being prompt p's j-th (OpenAI's order); a prompt's tokens count once in usage."""

    def __init__(self, service: Any, prompts: list[list[int]], params: GenParams, n: int = 1) -> None:
        loop = asyncio.get_running_loop()
        self.events: asyncio.Queue[tuple[int, tuple[Any, ...]]] = asyncio.Queue()
        self.seqs = [Sequence(ids, params, self._sink(loop, p * n + j), stream=j)
                     for p, ids in enumerate(prompts) for j in range(n)]
        self.prompt_tokens = sum(len(ids) for ids in prompts)
        limits = service.job.limits
        service.worker.submit(self.seqs)  # 429 when they do not fit
        self.deadline_s = time.monotonic() + limits.timeout_s
        self.timeout_s = limits.timeout_s
        self.peeked: tuple[int, tuple[Any, ...]] | None = None

    def _sink(self, loop: asyncio.AbstractEventLoop, index: int) -> Any:
        post = loop_sink(loop, self.events)
        return lambda event: post((index, event))

    def cancel(self) -> None:
        for seq in self.seqs:
            seq.cancelled = True

    async def next(self) -> tuple[int, tuple[Any, ...]]:
        if self.peeked is not None:
            event, self.peeked = self.peeked, None
            return event
        try:
            return await asyncio.wait_for(self.events.get(), timeout=max(0.0, self.deadline_s - time.monotonic()))
        except TimeoutError:
            self.cancel()
            raise HttpError(504, f"the request did not finish within its deadline (limits.timeout_s = "
                                 f"{self.timeout_s:g} s).", code="deadline_exceeded") from None

    async def collect(self) -> tuple[list[str], list[str], list[list[Any]]]:
        """Each choice's text, finish reason and the `Choice` of each token its text covers."""
        texts, finishes = [""] * len(self.seqs), [""] * len(self.seqs)
        tokens: list[list[Any]] = [[] for _ in self.seqs]
        left = len(self.seqs)
        try:
            while left:
                index, event = await self.next()
                if event[0] == "delta":
                    texts[index] += event[1]
                    tokens[index].extend(event[2])
                elif event[0] == "done":
                    finishes[index], left = event[1], left - 1
                else:
                    raise event[1]
        finally:
            self.cancel()  # no-op for finished sequences; frees the batch slot of the others
        return texts, finishes, tokens

    def completion_tokens(self) -> int:
        return sum(len(seq.out_ids) for seq in self.seqs)

    def usage(self) -> dict[str, int]:
        done = self.completion_tokens()
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": done,
                "total_tokens": self.prompt_tokens + done}


def _sse(payload: dict[str, Any] | str) -> bytes:
    text = payload if isinstance(payload, str) else json.dumps(payload)
    return f"data: {text}\n\n".encode()


async def _stream(run: _Run, chunk: Any, include_usage: bool, base: dict[str, Any]) -> AsyncIterator[bytes]:
    """SSE body: one chunk per text delta, a final chunk per choice with its finish reason."""
    try:
        left = len(run.seqs)
        while left:
            try:
                index, event = await run.next()
            except HttpError as exc:  # the deadline passed mid-stream: the status is already sent
                yield _sse({"error": {"message": exc.message, "type": "timeout", "code": exc.code}})
                return
            if event[0] == "error":
                yield _sse({"error": {"message": event[1].message, "type": "server_error"}})
                return
            if event[0] == "delta":
                yield _sse({**base, "choices": [chunk(index, event[1], None, event[2])]})
            else:
                yield _sse({**base, "choices": [chunk(index, None, event[1], [])]})
                left -= 1
        if include_usage:
            yield _sse({**base, "choices": [], "usage": run.usage()})
        yield _sse("[DONE]")
    finally:
        run.cancel()  # the client may have gone: free the batch slot


def add_generation(app: Any, service: Any) -> None:
    from fastapi.responses import JSONResponse, StreamingResponse

    def start(request: Any, prompts: list[str], max_tokens: int, param: str, top_logprobs: int | None) -> _Run:
        service.check_model(request.model)
        check_choices(len(prompts), request.n)
        params = _params(service, request, max_tokens, top_logprobs)
        return _Run(service, _prompt_ids(service, prompts, param), params, request.n)

    def check_choices(prompts: int, n: int) -> None:
        limit = service.job.limits.max_inputs
        if prompts * n > limit:
            raise HttpError(413, f"the request asks for {prompts * n} choices ({prompts} prompt(s) x n = {n}); the "
                                 f"limit (limits.max_inputs) is {limit}. Lower n or split the request.",
                            param="n", code="too_many_inputs")

    async def respond_stream(run: _Run, chunk: Any, request: Any, base: dict[str, Any]) -> Any:
        # Wait for the first event before answering, so a deadline or an error still gets its status code.
        try:
            run.peeked = await run.next()
            if run.peeked[1][0] == "error":
                raise run.peeked[1][1]
        except BaseException:
            run.cancel()
            raise
        include_usage = bool(request.stream_options and request.stream_options.include_usage)
        return StreamingResponse(_stream(run, chunk, include_usage, base), media_type="text/event-stream",
                                 headers={"cache-control": "no-cache"})

    @app.post("/v1/completions", response_model=CompletionResponse, tags=["generation"],
              summary="Text completion (OpenAI's shape), streaming or not")
    async def completions(request: CompletionRequest) -> Any:
        prompts = [request.prompt] if isinstance(request.prompt, str) else list(request.prompt)
        service.check_inputs(len(prompts))
        want = request.logprobs is not None
        run = start(request, prompts, request.max_tokens or 16, "prompt", request.logprobs)
        base = {"id": f"cmpl-{uuid.uuid4().hex}", "created": int(time.time()), "model": service.model_id}
        tok = service.runtime.tokenizer
        if request.stream:
            sent = [0] * len(run.seqs)

            def chunk(i: int, text: str | None, finish: str | None, tokens: list[Any]) -> dict[str, Any]:
                logprobs = completion_logprobs(tok, tokens, sent[i]) if want and tokens else None
                sent[i] += len(text or "")
                return {"index": i, "text": text or "", "logprobs": logprobs, "finish_reason": finish}

            return await respond_stream(run, chunk, request, {**base, "object": "text_completion"})
        texts, finishes, tokens = await run.collect()
        choices = [{"index": i, "text": t, "logprobs": completion_logprobs(tok, c) if want else None,
                    "finish_reason": f} for i, (t, f, c) in enumerate(zip(texts, finishes, tokens, strict=True))]
        return JSONResponse({**base, "object": "text_completion", "choices": choices, "usage": run.usage()})

    @app.post("/v1/chat/completions", response_model=ChatResponse, tags=["generation"],
              summary="Chat completion (OpenAI's shape), streaming or not")
    async def chat(request: ChatRequest) -> Any:
        max_tokens = request.max_completion_tokens or request.max_tokens or service.job.limits.max_new_tokens
        top = (request.top_logprobs or 0) if request.logprobs else None
        run = start(request, [_chat_prompt(service, request)], max_tokens, "messages", top)
        base = {"id": f"chatcmpl-{uuid.uuid4().hex}", "created": int(time.time()), "model": service.model_id}
        tok = service.runtime.tokenizer
        if request.stream:
            introduced: set[int] = set()  # choices whose first chunk (with the role) has gone out

            def chunk(i: int, text: str | None, finish: str | None, tokens: list[Any]) -> dict[str, Any]:
                delta: dict[str, Any] = {} if text is None else {"content": text}
                if i not in introduced:
                    delta["role"] = "assistant"
                    introduced.add(i)
                logprobs = chat_logprobs(tok, tokens) if request.logprobs and tokens else None
                return {"index": i, "delta": delta, "logprobs": logprobs, "finish_reason": finish}

            return await respond_stream(run, chunk, request, {**base, "object": "chat.completion.chunk"})
        texts, finishes, tokens = await run.collect()
        choices = [{"index": i, "message": {"role": "assistant", "content": t},
                    "logprobs": chat_logprobs(tok, c) if request.logprobs else None, "finish_reason": f}
                   for i, (t, f, c) in enumerate(zip(texts, finishes, tokens, strict=True))]
        return JSONResponse({**base, "object": "chat.completion", "choices": choices, "usage": run.usage()})
