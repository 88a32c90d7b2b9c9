"""`encode`: a split -> token ids, truncated to `max_length`, tokenized once and cached on disk."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from llmos.data._cache import load_ragged, save_ragged
from llmos.data._load import check_task
from llmos.data._types import Split
from llmos.errors import DataError
from llmos.paths import home

__all__ = ["Encoded", "encode", "tokenizer_fingerprint"]

# Bump when what `encode` produces changes, so old cache files stop matching.
_ENCODING_VERSION = 1


@dataclass(frozen=True)
class Encoded:
    """Token ids per row, not padded (batching pads each batch to its own longest row)."""

    input_ids: list[list[int]]  # the text (+ the pair, for classification of pairs)
    token_type_ids: list[list[int]] | None = None  # segment ids, for pairs only; None means all zeros
    pair_input_ids: list[list[int]] | None = None  # embedding: the positive, encoded on its own
    labels: list[int] | None = None

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def lengths(self) -> list[int]:
        """Tokens per row, for length-grouped batching; for embedding the longer of text and
        positive, since both are padded in the same batch."""
        if self.pair_input_ids is None:
            return [len(row) for row in self.input_ids]
        return [max(len(a), len(b)) for a, b in zip(self.input_ids, self.pair_input_ids, strict=True)]


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """sha256 of what decides a tokenizer's output: for fast tokenizers their full serialised state
    (vocab, normalizer, pre-tokenizer, special-token post-processor), less the truncation and padding
    settings, which calling the tokenizer changes; else the class and its vocab."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        state = json.loads(backend.to_str())
        state.pop("truncation", None)
        state.pop("padding", None)
    else:
        state = {"class": type(tokenizer).__name__, "vocab": sorted(tokenizer.get_vocab().items())}
    state["eos_token_id"] = getattr(tokenizer, "eos_token_id", None)  # causal-lm appends it
    return hashlib.sha256(json.dumps(state, sort_keys=True).encode()).hexdigest()


def _content_digest(split: Split) -> str:
    # The texts enter the key too, so a stale cache_key can never serve another split's tokens.
    digest = hashlib.sha256()
    for column in (split.texts, split.pairs or []):
        digest.update(json.dumps(column, ensure_ascii=False).encode())
    return digest.hexdigest()


def _cache_name(cache_key: str, split: Split, tokenizer: Any, max_length: int, task: str) -> str:
    parts = [cache_key, tokenizer_fingerprint(tokenizer), max_length, task, _content_digest(split),
             _ENCODING_VERSION]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


def _tokenize(split: Split, tokenizer: Any, max_length: int, task: str) -> dict[str, list[list[int]]]:
    options = {"truncation": True, "max_length": max_length, "return_attention_mask": False}
    if task == "classification" and split.pairs is not None:
        # One sequence of both texts with segment ids; truncation trims the longer text first.
        out = tokenizer(split.texts, split.pairs, return_token_type_ids=True, **options)
        columns = {"input_ids": out["input_ids"]}
        if out.get("token_type_ids") is not None:
            columns["token_type_ids"] = out["token_type_ids"]
        return columns
    columns = {"input_ids": tokenizer(split.texts, return_token_type_ids=False, **options)["input_ids"]}
    if task == "embedding":
        columns["pair_input_ids"] = tokenizer(split.pairs, return_token_type_ids=False,
                                              **options)["input_ids"]
    elif task == "causal-lm":
        columns["input_ids"] = _end_with_eos(columns["input_ids"], tokenizer, max_length)
    return columns


def _end_with_eos(rows: list[list[int]], tokenizer: Any, max_length: int) -> list[list[int]]:
    """Each whole document ends with EOS so the model learns to stop; a truncated one does not,
    since its text goes on."""
    eos = getattr(tokenizer, "eos_token_id", None)
    if eos is None:
        return rows
    return [[*row, eos] if len(row) < max_length and (not row or row[-1] != eos) else row for row in rows]


def encode(split: Split, tokenizer: Any, *, max_length: int, task: str,
           cache_key: str | None = None) -> Encoded:
    """Tokenize `split` for `task`. With a `cache_key` the result is kept under
    $LLMOS_HOME/cache/tokenized/ and later calls with the same key, tokenizer, max_length, task and
    texts read it back instead of tokenizing; a corrupt cache file is ignored and rewritten."""
    check_task(None, task)
    if task == "embedding" and split.pairs is None:
        raise DataError("task 'embedding' needs a positive for every text, and this split has none.",
                        hint="Set data.text_pair_column to the column holding each text's positive.")
    path, columns = None, None
    if cache_key is not None:
        name = _cache_name(cache_key, split, tokenizer, max_length, task)
        path = home() / "cache" / "tokenized" / f"{name}.safetensors"
        columns = load_ragged(path, name, len(split))
    if columns is None:
        columns = _tokenize(split, tokenizer, max_length, task)
        if path is not None:
            save_ragged(path, columns, path.stem)
    return Encoded(input_ids=columns["input_ids"], token_type_ids=columns.get("token_type_ids"),
                   pair_input_ids=columns.get("pair_input_ids"), labels=split.labels)
