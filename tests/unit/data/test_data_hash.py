"""data_hash: the lineage tag of a run's input data."""

from __future__ import annotations

import hashlib
import shutil

from llmos.data import data_hash, load_dataset
from llmos.spec import DataSpec

CSV = "text,label\ngreat film,pos\nawful plot,neg\nloved it,pos\nboring,neg\n"


def test_one_file_hashes_like_sha256sum(write):
    path = write("t.csv", CSV)
    assert data_hash([path]) == hashlib.sha256(CSV.encode()).hexdigest()


def test_stable_and_independent_of_the_file_name(write, tmp_path):
    path = write("t.csv", CSV)
    copy = tmp_path / "renamed.csv"
    shutil.copy(path, copy)
    assert data_hash([path]) == data_hash([path]) == data_hash([copy])


def test_content_and_order_change_the_hash(write):
    a, b = write("a.csv", CSV), write("b.csv", CSV + "more,pos\n")
    assert data_hash([a]) != data_hash([b])
    assert data_hash([a, b]) != data_hash([b, a])


def test_dataset_hash_matches_its_files(write):
    train, held = write("t.csv", CSV), write("e.csv", "text,label\nok,pos\nno,neg\n")
    with_eval = load_dataset(DataSpec(train=str(train), eval=str(held)), "classification")
    assert with_eval.data_hash == data_hash([train, held])
    alone = load_dataset(DataSpec(train=str(train), eval_fraction=0.5), "classification")
    assert alone.data_hash == data_hash([train])
