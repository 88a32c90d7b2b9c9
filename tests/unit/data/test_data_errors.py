"""Every user mistake is a DataError whose hint names the field to fix."""

from __future__ import annotations

import importlib.util
import sys
import types

import pandas as pd
import pytest

from llmos.data import load_dataset
from llmos.data._hf import parse_hf_ref
from llmos.errors import DataError, DependencyError
from llmos.spec import DataSpec

CSV = "text,label\ngreat film,pos\nawful plot,neg\nloved it,pos\nboring,neg\n"


def _error(spec: DataSpec, task: str = "classification") -> DataError:
    with pytest.raises(DataError) as info:
        load_dataset(spec, task)
    return info.value


def test_missing_train_file(tmp_path):
    err = _error(DataSpec(train=str(tmp_path / "nope.csv")))
    assert "file not found" in err.message and "nope.csv" in err.message
    assert "data.train" in err.hint


def test_missing_eval_file(write, tmp_path):
    err = _error(DataSpec(train=str(write("t.csv", CSV)), eval=str(tmp_path / "gone.csv")))
    assert err.message.startswith("data.eval:") and "data.eval" in err.hint


def test_folder_instead_of_file(tmp_path):
    (tmp_path / "data.csv").mkdir()
    assert "is a folder" in _error(DataSpec(train=str(tmp_path / "data.csv"))).message


def test_malformed_csv_names_the_line(write):
    err = _error(DataSpec(train=str(write("t.csv", "text,label\na,b\nc,d,e\n"))))
    assert "line 3" in err.message


def test_malformed_jsonl_names_the_line(write):
    err = _error(DataSpec(train=str(write("t.jsonl", '{"text": "a", "label": 1}\n{"text": "b", \n'))))
    assert "line 2" in err.message


def test_jsonl_line_that_is_not_an_object(write):
    err = _error(DataSpec(train=str(write("t.jsonl", '{"text": "a", "label": 1}\n"just text"\n'))))
    assert "line 2" in err.message


def test_not_utf8(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes("text,label\ncaf\xe9,1\n".encode("latin-1"))
    assert "UTF-8" in _error(DataSpec(train=str(path))).message


def test_corrupt_parquet(tmp_path):
    path = tmp_path / "t.parquet"
    path.write_bytes(b"this is not parquet at all")
    assert "Parquet" in _error(DataSpec(train=str(path))).message


def test_empty_file(write):
    assert "is empty" in _error(DataSpec(train=str(write("t.csv", "")))).message


def test_missing_column_lists_columns_and_suggests(write):
    err = _error(DataSpec(train=str(write("t.csv", CSV)), text_column="txt"))
    assert "no column 'txt' (data.text_column)" in err.message
    assert "'text', 'label'" in err.message
    assert "Did you mean 'text'?" in err.hint and "data.text_column" in err.hint


def test_missing_column_in_parquet_lists_all_columns(tmp_path):
    path = tmp_path / "t.parquet"
    pd.DataFrame({"sentence": ["a", "b"], "label": [0, 1]}).to_parquet(path)
    err = _error(DataSpec(train=str(path)))
    assert "'sentence', 'label'" in err.message


def test_missing_label_column(write):
    err = _error(DataSpec(train=str(write("t.csv", "text,category\na b,x\nc d,y\n"))))
    assert "(data.label_column)" in err.message and "data.label_column" in err.hint


def test_row_without_label(write):
    err = _error(DataSpec(train=str(write("t.csv", "text,label\na,x\nb,\nc,y\n"))))
    assert "row 2" in err.message and "no label" in err.message


def test_all_texts_empty_is_an_empty_split(write):
    err = _error(DataSpec(train=str(write("t.csv", "text,label\n ,x\n,y\n"))))
    assert "no usable rows" in err.message and "data.train" in err.hint


def test_empty_eval_file(write):
    err = _error(DataSpec(train=str(write("t.csv", CSV)), eval=str(write("e.csv", "text,label\n"))))
    assert "no usable rows" in err.message and "data.eval" in err.hint


def test_fraction_that_leaves_no_eval_rows(write):
    err = _error(DataSpec(train=str(write("t.jsonl", '{"text": "only one"}\n')), label_column=None),
                 "causal-lm")
    assert "leaves no eval rows" in err.message and "data.eval_fraction" in err.hint


def test_embedding_needs_a_pair_column(write):
    err = _error(DataSpec(train=str(write("t.csv", CSV))), "embedding")
    assert "data.text_pair_column" in err.hint


def test_classification_needs_a_label_column(write):
    assert "data.label_column" in _error(DataSpec(train=str(write("t.csv", CSV)), label_column=None)).hint


def test_unknown_task(write):
    assert "model.task" in _error(DataSpec(train=str(write("t.csv", CSV))), "translation").hint


def test_hf_without_datasets_names_the_pip_command(monkeypatch):
    if importlib.util.find_spec("datasets") is not None:
        monkeypatch.setitem(sys.modules, "datasets", None)  # make the import fail as if absent
    with pytest.raises(DependencyError) as info:
        load_dataset(DataSpec(train="hf:nyu-mll/glue:sst2"), "classification")
    assert "pip install 'llmos[hf]'" in info.value.hint


def test_parse_hf_ref():
    ref = parse_hf_ref("hf:nyu-mll/glue:sst2@abc123", "data.train")
    assert (ref.dataset_id, ref.config, ref.revision) == ("nyu-mll/glue", "sst2", "abc123")
    assert parse_hf_ref("hf:imdb", "data.train").config is None
    with pytest.raises(DataError):
        parse_hf_ref("hf:", "data.train")


class _FakeHfSplit:
    def __init__(self, frame: pd.DataFrame, label_names: list[str]) -> None:
        self._frame = frame
        self.features = {"label": types.SimpleNamespace(names=label_names)}
        self._fingerprint = "fp-" + str(len(frame))

    def to_pandas(self) -> pd.DataFrame:
        return self._frame.copy()


def _fake_datasets(calls: list) -> types.ModuleType:
    frames = {"train": pd.DataFrame({"sentence": ["good", "bad", "fine", "awful"], "label": [1, 0, 1, 0]}),
              "validation": pd.DataFrame({"sentence": ["nice", "poor"], "label": [1, 0]})}

    def load_dataset(dataset_id, name=None, split=None, revision=None):
        calls.append((dataset_id, name, split, revision))
        if split not in frames:
            raise ValueError(f"Unknown split {split!r}")
        return _FakeHfSplit(frames[split], ["negative", "positive"])

    return types.SimpleNamespace(load_dataset=load_dataset)  # type: ignore[return-value]


def test_hf_code_path_with_a_stand_in_datasets_module(monkeypatch):
    calls: list = []
    monkeypatch.setitem(sys.modules, "datasets", _fake_datasets(calls))
    spec = DataSpec(train="hf:nyu-mll/glue:sst2@v1", eval="hf:nyu-mll/glue:sst2@v1", text_column="sentence")
    data = load_dataset(spec, "classification")
    assert calls == [("nyu-mll/glue", "sst2", "train", "v1"), ("nyu-mll/glue", "sst2", "validation", "v1")]
    assert data.label_names == ["negative", "positive"]  # the dataset's ClassLabel names
    assert data.train.labels == [1, 0, 1, 0] and data.eval.texts == ["nice", "poor"]
    assert data.sources == ["hf:nyu-mll/glue:sst2@v1/train", "hf:nyu-mll/glue:sst2@v1/validation"]
    assert len(data.data_hash) == 64
    bad = spec.model_copy(update={"hf_eval_split": "dev"})
    err = _error(bad)
    assert "split 'dev'" in err.message and "data.hf_eval_split" in err.hint
