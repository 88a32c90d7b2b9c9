"""Log-probabilities of generated tokens in OpenAI's two shapes: chat (`content`: one entry per
token with its bytes and top alternatives) and completions (parallel lists: tokens,
token_logprobs, top_logprobs, text_offset)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from llmos.serve._sampling import Choice

__all__ = ["chat_logprobs", "completion_logprobs"]


def _text(tok: Any, token: int) -> str:
    return tok.decode([token], skip_special_tokens=False)


def _entry(tok: Any, token: int, logprob: float) -> dict[str, Any]:
    text = _text(tok, token)
    return {"token": text, "logprob": logprob, "bytes": list(text.encode("utf-8"))}


def chat_logprobs(tok: Any, choices: Sequence[Choice]) -> dict[str, Any]:
    content = [{**_entry(tok, c.token, c.logprob or 0.0), "top_logprobs": [_entry(tok, t, lp) for t, lp in c.top]}
               for c in choices]
    return {"content": content, "refusal": None}


def completion_logprobs(tok: Any, choices: Sequence[Choice], offset: int = 0) -> dict[str, Any]:
    """`offset`: characters of the completion before these tokens (a stream's earlier chunks)."""
    tokens = [_text(tok, c.token) for c in choices]
    offsets = []
    for text in tokens:
        offsets.append(offset)
        offset += len(text)
    top = [{_text(tok, t): lp for t, lp in c.top} for c in choices]
    return {"tokens": tokens, "token_logprobs": [c.logprob or 0.0 for c in choices], "top_logprobs": top,
            "text_offset": offsets}
