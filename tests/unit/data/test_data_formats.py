"""Each file format, header handling and the columns each task reads."""

from __future__ import annotations

import gzip

import pandas as pd
import pytest

from llmos.data import load_dataset
from llmos.data._header import looks_like_header
from llmos.errors import DataError
from llmos.spec import DataSpec

CSV = "text,label\ngreat film,pos\nawful plot,neg\nloved it,pos\nboring,neg\n"
EVAL_CSV = "text,label\nfine acting,pos\ndull,neg\n"


def test_csv_with_header(write):
    train, held = write("train.csv", CSV), write("eval.csv", EVAL_CSV)
    data = load_dataset(DataSpec(train=str(train), eval=str(held)), "classification")
    assert data.train.texts == ["great film", "awful plot", "loved it", "boring"]
    assert data.label_names == ["neg", "pos"]
    assert data.train.labels == [1, 0, 1, 0]
    assert data.eval.texts == ["fine acting", "dull"] and data.eval.labels == [1, 0]
    assert data.train.pairs is None
    assert data.sources == [str(train), str(held)]


def test_tsv_without_header_is_detected(write):
    train = write("train.tsv", 'a "quoted" word\t1\nnot good at all\t0\nquite nice\t1\n')
    held = write("dev.tsv", "so so\t0\nlovely\t1\n")
    spec = DataSpec(train=str(train), eval=str(held), text_column="0", label_column="1")
    data = load_dataset(spec, "classification")
    # Bare quotes survive: TSV is read without quote handling.
    assert data.train.texts[0] == 'a "quoted" word'
    assert data.label_names == ["0", "1"] and data.train.labels == [1, 0, 1]


def test_tsv_with_header_is_detected(write):
    train = write("train.tsv", "sentence\tlabel\nnice one\t1\nbad one\t0\n")
    held = write("dev.tsv", "sentence\tlabel\nok\t1\nmeh\t0\n")
    data = load_dataset(DataSpec(train=str(train), eval=str(held), text_column="sentence"), "classification")
    assert data.train.texts == ["nice one", "bad one"]


def test_explicit_header_false_names_columns_by_position(write):
    # Header detection would call this first row a header (short words); header=false overrides it.
    train = write("train.csv", "good,yes\nbad,no\nfine,yes\nugly,no\n")
    spec = DataSpec(train=str(train), header=False, text_column="0", label_column="1", eval_fraction=0.5)
    data = load_dataset(spec, "classification")
    assert sorted(data.train.texts + data.eval.texts) == ["bad", "fine", "good", "ugly"]


def test_header_true_on_headerless_file_hints_header_false(write):
    train = write("train.csv", "good movie,1\nbad movie,0\n")
    with pytest.raises(DataError) as info:
        load_dataset(DataSpec(train=str(train), header=True), "classification")
    assert "data.header=false" in info.value.hint


def test_jsonl_keeps_types_and_drops_empty_texts(write, caplog):
    lines = ['{"text": "first", "label": 1}', '{"text": null, "label": 0}', "",
             '{"text": "0123", "label": 0}', '{"text": "third", "label": 1}']
    train = write("train.jsonl", "\n".join(lines) + "\n")
    held = write("eval.jsonl", '{"text": "x", "label": 0}\n')
    data = load_dataset(DataSpec(train=str(train), eval=str(held)), "classification")
    assert data.train.texts == ["first", "0123", "third"]  # "0123" is not read as a number
    assert data.train.labels == [1, 0, 1] and data.label_names == ["0", "1"]
    assert "dropped 1 of 4 rows" in caplog.text


def test_parquet(tmp_path):
    path = tmp_path / "train.parquet"
    frame = pd.DataFrame({"q": ["a b", "c d", "e f", "g h"], "y": ["x", "y", "x", "y"],
                          "unused": [[1.0, 2.0]] * 4})
    frame.to_parquet(path)
    spec = DataSpec(train=str(path), text_column="q", label_column="y", eval_fraction=0.5)
    data = load_dataset(spec, "classification")
    assert sorted(data.train.texts + data.eval.texts) == ["a b", "c d", "e f", "g h"]
    assert data.label_names == ["x", "y"]


def test_gzipped_csv_and_explicit_format(tmp_path):
    gz = tmp_path / "train.csv.gz"
    gz.write_bytes(gzip.compress(CSV.encode()))
    assert len(load_dataset(DataSpec(train=str(gz)), "classification").train) == 3
    odd = tmp_path / "train.data"
    odd.write_text(CSV)
    assert len(load_dataset(DataSpec(train=str(odd), format="csv"), "classification").train) == 3


def test_unknown_extension_asks_for_format(write):
    path = write("train.data", CSV)
    with pytest.raises(DataError, match="cannot tell the format") as info:
        load_dataset(DataSpec(train=str(path)), "classification")
    assert "data.format" in info.value.hint


def test_pairs_for_classification_and_embedding(write):
    train = write("train.csv", "q,a,label\nhi,hello,same\nhi,bye,diff\nyes,no,diff\nup,up,same\n")
    spec = DataSpec(train=str(train), text_column="q", text_pair_column="a", eval_fraction=0.5)
    data = load_dataset(spec, "classification")
    assert data.train.pairs is not None and len(data.train.pairs) == len(data.train)
    # Embedding reads no labels, even though data.label_column keeps its default.
    emb = load_dataset(spec, "embedding")
    assert emb.train.labels is None and emb.label_names is None
    assert sorted(emb.train.pairs + emb.eval.pairs) == ["bye", "hello", "no", "up"]


def test_causal_lm_reads_text_only(write):
    train = write("train.jsonl", '{"text": "once upon a time"}\n{"text": "the end"}\n{"text": "more"}\n')
    data = load_dataset(DataSpec(train=str(train), label_column=None), "causal-lm")
    assert data.label_names is None and data.train.labels is None
    assert len(data.train) + len(data.eval) == 3


@pytest.mark.parametrize(("first", "rest", "wanted", "expected"), [
    (["text", "label"], [["a film", "1"]], ["text", "label"], True),
    (["sentence", "label"], [["a film", "1"]], ["text", "label"], True),  # word over numbers
    (["a stirring film", "1"], [["dull", "0"]], ["0", "1"], False),  # positions asked for
    (["a stirring film", "1"], [["dull", "0"]], ["text", "label"], False),  # a number in row 1
    (["review", "sentiment"], [["I liked it a lot.", "pos"]], ["text", "label"], True),
    (["I liked it a lot.", "pos"], [["Not for me.", "neg"]], ["text", "label"], False),
])
def test_looks_like_header(first, rest, wanted, expected):
    assert looks_like_header(first, rest, wanted) is expected
