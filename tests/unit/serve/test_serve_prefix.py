"""Prefix reuse: which prompt prefixes are kept (pure, with literals), and a server that reuses a
shared system prompt gives the same answers as one that recomputes it."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from tests.unit.serve.conftest import serve_job

from llmos.serve._prefix import PrefixCache, common_prefix

pytestmark = pytest.mark.timeout(180)

SYSTEM = list(range(100, 140))  # a 40-token shared preamble


def test_common_prefix() -> None:
    assert common_prefix([1, 2, 3], [1, 2, 4]) == 2
    assert common_prefix([], [1]) == 0 and common_prefix([5], [5]) == 1


def test_a_shared_preamble_is_kept_once_and_found() -> None:
    cache = PrefixCache(max_entries=2, min_tokens=16)
    assert cache.worth_keeping([*SYSTEM, 1, 2]) == 0  # nothing seen before it
    assert cache.worth_keeping([*SYSTEM, 3, 4, 5]) == 40
    cache.keep(SYSTEM, "kv")
    assert cache.worth_keeping([*SYSTEM, 1, 9]) == 0  # only one token longer than what is kept
    assert cache.lookup([*SYSTEM, 7]) == (tuple(SYSTEM), "kv")
    assert cache.lookup(SYSTEM) is None  # a prompt that is all prefix still needs one token to run
    assert cache.lookup([1, 2, 3]) is None
    assert cache.worth_keeping([1, 2, 3]) == 0  # short common prefixes are not worth it
    cache.keep([9] * 20, "a")
    cache.keep([8] * 20, "b")
    assert tuple(SYSTEM) not in cache.entries and len(cache.entries) == 2  # least recently used left


def _chat(system: str, user: str) -> dict[str, Any]:
    return {"model": "tiny-lm", "max_tokens": 8, "temperature": 0,
            "messages": [{"role": "system", "content": system}, {"role": "user", "content": user}]}


def test_prefix_reuse_gives_the_answers_of_recomputing(tiny_refs: dict[str, str], start_server: Any) -> None:
    system = "you are a careful assistant for a cinema; answer briefly and politely, and never invent showtimes."
    users = ["when does the film start", "is there parking", "how much are tickets", "can I bring food", "hi"]

    async def ask(url: str) -> list[str]:
        async with httpx.AsyncClient(base_url=url, timeout=60) as c:
            first = await c.post("/v1/chat/completions", json=_chat(system, users[0]))
            rest = await asyncio.gather(*(c.post("/v1/chat/completions", json=_chat(system, u)) for u in users[1:]))
            return [r.json()["choices"][0]["message"]["content"] for r in (first, *rest)]

    answers = {}
    for slots in (0, 4):
        job = serve_job(tiny_refs["causal-lm"], batching={"max_batch_size": 4, "prefix_cache": slots})
        with start_server(job) as running:
            answers[slots] = asyncio.run(ask(running.url))
            asyncio.run(ask(running.url))  # the second round finds the kept prefix
            prefix = running.service.worker.prefix
            if slots:
                assert prefix.hits >= len(users) and prefix.reused_tokens >= 20 * len(users)
            else:
                assert prefix is None
    assert answers[0] == answers[4]
