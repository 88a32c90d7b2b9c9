"""Label values -> ids, with and without `data.labels`."""

from __future__ import annotations

import logging

import pytest

from llmos.data import load_dataset
from llmos.errors import DataError
from llmos.spec import DataSpec


def _csv(write, name: str, rows: list[tuple[str, str]]) -> str:
    return str(write(name, "text,label\n" + "".join(f"{t},{y}\n" for t, y in rows)))


def test_inferred_string_labels_are_sorted(write):
    train = _csv(write, "t.csv", [("a", "zebra"), ("b", "apple"), ("c", "mango")])
    held = _csv(write, "e.csv", [("d", "apple")])
    data = load_dataset(DataSpec(train=train, eval=held), "classification")
    assert data.label_names == ["apple", "mango", "zebra"]
    assert data.train.labels == [2, 0, 1] and data.eval.labels == [0]


def test_inferred_int_labels_sort_numerically(write):
    train = _csv(write, "t.csv", [("a", "10"), ("b", "9"), ("c", "2")])
    held = _csv(write, "e.csv", [("d", "10")])
    data = load_dataset(DataSpec(train=train, eval=held), "classification")
    assert data.label_names == ["2", "9", "10"]
    assert data.train.labels == [2, 1, 0] and data.eval.labels == [2]


def test_declared_names_fix_the_id_order(write):
    train = _csv(write, "t.csv", [("a", "pos"), ("b", "neg"), ("c", "neutral")])
    held = _csv(write, "e.csv", [("d", "neg")])
    data = load_dataset(DataSpec(train=train, eval=held, labels=["pos", "neutral", "neg"]), "classification")
    assert data.label_names == ["pos", "neutral", "neg"]
    assert data.train.labels == [0, 2, 1] and data.eval.labels == [2]


def test_declared_names_with_int_labels_index_into_them(write):
    train = _csv(write, "t.csv", [("a", "1"), ("b", "0"), ("c", "2")])
    held = _csv(write, "e.csv", [("d", "2")])
    data = load_dataset(DataSpec(train=train, eval=held, labels=["neg", "pos", "mixed"]), "classification")
    assert data.train.labels == [1, 0, 2] and data.label_names == ["neg", "pos", "mixed"]


def test_int_label_out_of_range_is_unknown(write):
    train = _csv(write, "t.csv", [("a", "1"), ("b", "0"), ("c", "5")])
    with pytest.raises(DataError) as info:
        load_dataset(DataSpec(train=train, labels=["neg", "pos"]), "classification")
    err = info.value
    assert "row 3" in err.message and "unknown label" in err.message and "'5'" in err.message
    assert "neg, pos" in err.message and "data.labels" in err.hint


def test_unknown_string_label_names_value_row_and_known_labels(write):
    train = _csv(write, "t.csv", [("a", "pos"), ("b", "neg")])
    held = _csv(write, "e.csv", [("c", "pos"), ("d", "positive")])
    with pytest.raises(DataError) as info:
        load_dataset(DataSpec(train=train, eval=held, labels=["neg", "pos"]), "classification")
    err = info.value
    assert err.message.startswith("data.eval (") and "row 2" in err.message
    assert "'positive'" in err.message and "neg, pos" in err.message


def test_eval_label_not_in_training_is_an_error(write):
    train = _csv(write, "t.csv", [("a", "pos"), ("b", "neg")])
    held = _csv(write, "e.csv", [("c", "neg"), ("d", "meh")])
    with pytest.raises(DataError) as info:
        load_dataset(DataSpec(train=train, eval=held), "classification")
    assert "not seen in the training data: meh" in info.value.message
    assert "row 2" in info.value.message and "data.labels" in info.value.hint


def test_eval_label_only_declared_is_a_warning(write, caplog):
    train = _csv(write, "t.csv", [("a", "pos"), ("b", "neg")])
    held = _csv(write, "e.csv", [("c", "meh")])
    with caplog.at_level(logging.WARNING):
        data = load_dataset(DataSpec(train=train, eval=held, labels=["neg", "pos", "meh"]), "classification")
    assert data.eval.labels == [2] and "no training examples: meh" in caplog.text


def test_a_single_training_label_is_an_error(write):
    train = _csv(write, "t.csv", [("a", "pos"), ("b", "pos"), ("c", "pos")])
    with pytest.raises(DataError, match="every training row has the label 'pos'"):
        load_dataset(DataSpec(train=train), "classification")


def test_jsonl_int_and_string_labels(write):
    train = write("t.jsonl", '{"text": "a", "label": 1}\n{"text": "b", "label": 0}\n')
    held = write("e.jsonl", '{"text": "c", "label": "1"}\n')
    data = load_dataset(DataSpec(train=str(train), eval=str(held)), "classification")
    assert data.label_names == ["0", "1"] and data.eval.labels == [1]
