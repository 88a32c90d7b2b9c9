"""The seeded, stratified held-out split and `data.limit`."""

from __future__ import annotations

from collections import Counter

import numpy as np

from llmos.data import load_dataset
from llmos.data._split import split_indices
from llmos.spec import DataSpec


def _labelled(write, counts: dict[str, int]) -> str:
    rows = [f"text {label} {i},{label}\n" for label, n in counts.items() for i in range(n)]
    return str(write("t.csv", "text,label\n" + "".join(rows)))


def test_split_is_seeded_and_deterministic(write):
    train = _labelled(write, {"a": 20, "b": 20, "c": 20})
    first = load_dataset(DataSpec(train=train, eval_fraction=0.25, split_seed=3), "classification")
    again = load_dataset(DataSpec(train=train, eval_fraction=0.25, split_seed=3), "classification")
    other = load_dataset(DataSpec(train=train, eval_fraction=0.25, split_seed=4), "classification")
    assert first.eval.texts == again.eval.texts and first.train.texts == again.train.texts
    assert first.eval.texts != other.eval.texts
    assert not set(first.eval.texts) & set(first.train.texts)
    assert len(first.train) + len(first.eval) == 60


def test_split_is_stratified_by_label(write):
    train = _labelled(write, {"a": 40, "b": 20, "c": 8})
    data = load_dataset(DataSpec(train=train, eval_fraction=0.25), "classification")
    per_label = Counter(data.label_names[i] for i in data.eval.labels)
    assert per_label == {"a": 10, "b": 5, "c": 2}


def test_a_rare_label_keeps_a_training_row(write):
    train = _labelled(write, {"a": 10, "b": 1})
    data = load_dataset(DataSpec(train=train, eval_fraction=0.5), "classification")
    assert 1 in data.train.labels


def test_split_indices_partition_the_rows():
    strata = np.array([0, 1] * 50)
    train_rows, eval_rows = split_indices(100, 0.1, seed=0, strata=strata)
    assert len(eval_rows) == 10 and len(train_rows) == 90
    assert sorted(np.concatenate([train_rows, eval_rows]).tolist()) == list(range(100))
    unstratified = split_indices(7, 0.3, seed=1)[1]
    assert len(unstratified) == 2


def test_limit_keeps_the_first_rows_before_the_split(write):
    train = str(write("t.csv", "text,label\n" + "".join(f"row {i},{'ab'[i % 2]}\n" for i in range(50))))
    data = load_dataset(DataSpec(train=train, limit=10, eval_fraction=0.2), "classification")
    assert sorted(data.train.texts + data.eval.texts) == sorted(f"row {i}" for i in range(10))
    assert len(data.eval) == 2


def test_limit_leaves_an_eval_file_whole(write):
    train = str(write("t.csv", "text,label\n" + "".join(f"row {i},{'ab'[i % 2]}\n" for i in range(20))))
    held = str(write("e.csv", "text,label\n" + "".join(f"ev {i},{'ab'[i % 2]}\n" for i in range(6))))
    data = load_dataset(DataSpec(train=train, eval=held, limit=4), "classification")
    assert data.train.texts == ["row 0", "row 1", "row 2", "row 3"] and len(data.eval) == 6
