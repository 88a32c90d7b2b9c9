"""`load_dataset`: a `DataSpec` and a task -> train and eval splits with label ids and lineage."""

from __future__ import annotations

from typing import TYPE_CHECKING

from llmos.data._columns import Rows, wanted_columns
from llmos.data._hash import combine_digests
from llmos.data._labels import map_labels
from llmos.data._sources import read_source
from llmos.data._split import split_indices
from llmos.data._types import TASKS, Dataset, Split
from llmos.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

    from llmos.spec import DataSpec

__all__ = ["check_task", "load_dataset"]


def check_task(spec: DataSpec | None, task: str) -> None:
    """The task is known and the spec names the columns it needs."""
    if task not in TASKS:
        raise DataError(f"unknown task '{task}'.", hint=f"Set model.task to one of: {', '.join(TASKS)}.")
    if spec is not None and task == "classification" and not spec.label_column:
        raise DataError("task 'classification' needs labels.", hint="Set data.label_column.")
    if spec is not None and task == "embedding" and not spec.text_pair_column:
        raise DataError("task 'embedding' trains on (text, positive) pairs, and no positive column is set.",
                        hint="Set data.text_pair_column to the column holding each text's positive.")


def load_dataset(spec: DataSpec, task: str) -> Dataset:
    """Read `data.train` (and `data.eval`), keep the task's columns, map labels to ids and hold out
    `eval_fraction` (stratified by label) when there is no eval data. `data.limit` keeps the first N
    training rows before the held-out split, so a smoke run's eval is small too."""
    check_task(spec, task)
    wanted = wanted_columns(spec, task)
    train_source = read_source(spec.train, "data.train", spec, wanted, spec.hf_train_split)
    train = train_source.rows if spec.limit is None else train_source.rows.take(slice(0, spec.limit))
    limit_note = (f" data.limit={spec.limit} keeps only the first {spec.limit} training rows."
                  if spec.limit is not None else "")
    _require_rows(train, "data.train", limit_note)
    eval_source = read_source(spec.eval, "data.eval", spec, wanted, spec.hf_eval_split) if spec.eval else None
    held = eval_source.rows if eval_source else None
    if held is not None:
        _require_rows(held, "data.eval", "")
    names, train_ids, held_ids = None, None, None
    if task == "classification":
        names, train_ids, held_ids = map_labels(spec.labels, train, held, limit_note)
        _require_two_labels(train_ids, names, train.source, limit_note)
    if held is None:
        strata = None if train_ids is None else train_ids.to_numpy()
        train_rows, eval_rows = split_indices(len(train), spec.eval_fraction, spec.split_seed, strata)
        if len(eval_rows) == 0:
            raise DataError(f"{train.source}: holding out data.eval_fraction={spec.eval_fraction} of "
                            f"{len(train)} rows leaves no eval rows.",
                            hint="Give data.eval, raise data.eval_fraction, or add training rows.")
        held, held_ids = train.take(eval_rows), None if train_ids is None else train_ids.iloc[eval_rows]
        train, train_ids = train.take(train_rows), None if train_ids is None else train_ids.iloc[train_rows]
    sources = [s for s in (train_source, eval_source) if s is not None]
    return Dataset(train=_to_split(train, train_ids), eval=_to_split(held, held_ids), label_names=names,
                   data_hash=combine_digests([s.digest for s in sources]), sources=[s.name for s in sources])


def _require_rows(rows: Rows, field: str, note: str) -> None:
    if len(rows) == 0:
        raise DataError(f"{rows.source} has no usable rows (rows with an empty text are dropped).",
                        hint=f"Point {field} at a file with examples.{note}")


def _require_two_labels(ids: pd.Series, names: list[str], source: str, note: str) -> None:
    if ids.nunique() < 2:
        only = names[int(ids.iloc[0])]
        raise DataError(f"{source}: every training row has the label '{only}'; classification needs two "
                        "labels or more.", hint=f"Check data.label_column and the file.{note}")


def _to_split(rows: Rows, ids: pd.Series | None) -> Split:
    return Split(texts=rows.texts.tolist(), pairs=None if rows.pairs is None else rows.pairs.tolist(),
                 labels=None if ids is None else ids.tolist())
