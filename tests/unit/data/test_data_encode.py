"""encode: token ids per task, and the on-disk cache (hit, miss, corrupt file)."""

from __future__ import annotations

from typing import Any

import pytest
from safetensors import safe_open

from llmos.data import Encoded, Split, encode
from llmos.errors import DataError

CLS, SEP = 101, 102
SPLIT = Split(texts=["where is my order", "refund please, the mug arrived cracked and the handle fell off"],
              labels=[0, 1])


def _cache_files(home):
    return sorted((home / "cache" / "tokenized").glob("*.safetensors"))


def test_classification_single_text(minilm_tokenizer):
    out = encode(SPLIT, minilm_tokenizer, max_length=8, task="classification")
    assert isinstance(out, Encoded) and len(out) == 2
    assert all(row[0] == CLS and row[-1] == SEP for row in out.input_ids)
    assert out.lengths == [len(row) for row in out.input_ids] and max(out.lengths) == 8
    assert out.token_type_ids is None and out.pair_input_ids is None
    assert out.labels == [0, 1]


def test_classification_pairs_get_segment_ids(minilm_tokenizer):
    split = Split(texts=["a cat sat", "dogs bark"], pairs=["on the mat", "loudly"], labels=[1, 0])
    out = encode(split, minilm_tokenizer, max_length=32, task="classification")
    assert out.token_type_ids is not None
    assert [len(t) for t in out.token_type_ids] == out.lengths
    assert out.token_type_ids[0][0] == 0 and out.token_type_ids[0][-1] == 1
    assert out.input_ids[0].count(SEP) == 2


def test_embedding_encodes_the_positive_separately(minilm_tokenizer):
    split = Split(texts=["short"], pairs=["a much longer positive text for the anchor"])
    out = encode(split, minilm_tokenizer, max_length=64, task="embedding")
    assert out.pair_input_ids is not None and out.pair_input_ids[0][0] == CLS
    assert out.lengths == [len(out.pair_input_ids[0])]  # the longer of the two
    assert out.labels is None


def test_embedding_without_pairs_is_an_error(minilm_tokenizer):
    with pytest.raises(DataError) as info:
        encode(Split(texts=["x"]), minilm_tokenizer, max_length=8, task="embedding")
    assert "data.text_pair_column" in info.value.hint


class _WordTokenizer:
    """A tiny stand-in with an EOS token, which MiniLM (an encoder) lacks."""

    eos_token_id = 0

    def get_vocab(self) -> dict[str, int]:
        return {"<eos>": 0}

    def __call__(self, texts: list[str], **options: Any) -> dict[str, list[list[int]]]:
        return {"input_ids": [[len(w) for w in t.split()][: options["max_length"]] for t in texts]}


def test_causal_lm_ends_whole_documents_with_eos():
    out = encode(Split(texts=["a bb ccc", "one two three four five"]), _WordTokenizer(), max_length=4,
                 task="causal-lm")
    assert out.input_ids == [[1, 2, 3, 0], [3, 3, 5, 4]]  # the truncated document gets no EOS


def test_cache_hit_skips_the_tokenizer(counting_tokenizer, llmos_home):
    first = encode(SPLIT, counting_tokenizer, max_length=16, task="classification", cache_key="k")
    calls = counting_tokenizer.calls
    assert calls >= 1 and len(_cache_files(llmos_home)) == 1
    second = encode(SPLIT, counting_tokenizer, max_length=16, task="classification", cache_key="k")
    assert counting_tokenizer.calls == calls
    assert second == first


def test_cache_misses_when_inputs_change(counting_tokenizer, llmos_home):
    encode(SPLIT, counting_tokenizer, max_length=16, task="classification", cache_key="k")
    encode(SPLIT, counting_tokenizer, max_length=12, task="classification", cache_key="k")
    other = Split(texts=["different text", "again"], labels=[0, 1])
    out = encode(other, counting_tokenizer, max_length=16, task="classification", cache_key="k")
    assert counting_tokenizer.calls == 3 and len(_cache_files(llmos_home)) == 3
    assert len(out) == 2


def test_no_cache_key_no_cache(counting_tokenizer, llmos_home):
    encode(SPLIT, counting_tokenizer, max_length=16, task="classification")
    encode(SPLIT, counting_tokenizer, max_length=16, task="classification")
    assert counting_tokenizer.calls == 2 and _cache_files(llmos_home) == []


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupt_cache_is_rebuilt(counting_tokenizer, llmos_home, damage, caplog):
    split = Split(texts=SPLIT.texts, pairs=["first pair", "second pair"], labels=SPLIT.labels)
    first = encode(split, counting_tokenizer, max_length=16, task="classification", cache_key="k")
    (path,) = _cache_files(llmos_home)
    blob = path.read_bytes()
    path.write_bytes(b"\x00garbage" * 10 if damage == "garbage" else blob[: len(blob) // 2])
    calls = counting_tokenizer.calls
    rebuilt = encode(split, counting_tokenizer, max_length=16, task="classification", cache_key="k")
    assert rebuilt == first and counting_tokenizer.calls == calls + 1
    assert "ignoring the unreadable tokenized cache" in caplog.text
    encode(split, counting_tokenizer, max_length=16, task="classification", cache_key="k")
    assert counting_tokenizer.calls == calls + 1  # the rewritten file serves the next call


def test_cache_file_is_plain_safetensors(minilm_tokenizer, llmos_home):
    split = Split(texts=["hello there", "a"], pairs=["x", "y z"])
    encode(split, minilm_tokenizer, max_length=16, task="embedding", cache_key="emb")
    (path,) = _cache_files(llmos_home)
    with safe_open(str(path), framework="np") as handle:
        assert set(handle.keys()) == {"input_ids.flat", "input_ids.offsets",
                                      "pair_input_ids.flat", "pair_input_ids.offsets"}
        assert str(handle.get_tensor("input_ids.flat").dtype) == "int32"
        assert handle.metadata()["rows"] == "2"
    assert not list(path.parent.glob("*.tmp"))
