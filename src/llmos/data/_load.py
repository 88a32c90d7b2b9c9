"""`load_dataset`: a `DataSpec` and a task -> train and eval splits with label ids and lineage."""

from __future__ import annotations

from typing import TYPE_CHECKING

from llmos.data._columns import Rows, wanted_columns
from llmos.data._hash import combine_digests
from llmos.data._labels import Labelled, map_labels
from llmos.data._sources import read_source
from llmos.data._split import split_indices
from llmos.data._types import TASKS, Dataset, Split
from llmos.errors import DataError

if TYPE_CHECKING:
    import numpy as np
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
    training rows before the held-out split, so a smoke run's eval is small too; an eval file is
    kept whole."""
    check_task(spec, task)
    wanted = wanted_columns(spec, task)
    train_source = read_source(spec.train, "data.train", spec, wanted, spec.hf_train_split)
    eval_source = read_source(spec.eval, "data.eval", spec, wanted, spec.hf_eval_split) if spec.eval else None
    limit_note = f" data.limit={spec.limit} keeps only the first {spec.limit} training rows." if spec.limit else ""
    train = train_source.rows if spec.limit is None else train_source.rows.take(slice(0, spec.limit))
    held = eval_source.rows if eval_source else None
    _require_rows(train, "data.train", limit_note)
    if held is not None:
        _require_rows(held, "data.eval", "")
    names, train_ids, held_ids = _label_ids(spec, task, train, held, limit_note)
    if held is None:
        (train, train_ids), (held, held_ids) = _hold_out(train, train_ids, spec.eval_fraction, spec.split_seed)
    sources = [s for s in (train_source, eval_source) if s is not None]
    return Dataset(train=_to_split(train, train_ids), eval=_to_split(held, held_ids), label_names=names,
                   data_hash=combine_digests([s.digest for s in sources]), sources=[s.name for s in sources])


def _label_ids(spec: DataSpec, task: str, train: Rows, held: Rows | None,
               note: str) -> tuple[list[str] | None, pd.Series | None, pd.Series | None]:
    """Label names and the ids of train and eval rows; all None unless the task is classification."""
    if task != "classification":
        return None, None, None
    labelled = [Labelled(rows.source, rows.labels) for rows in (train, held)
                if rows is not None and rows.labels is not None]
    names, ids = map_labels(spec.labels, labelled, note)
    _require_two_labels(ids[0], names, train.source, note)
    return names, ids[0], ids[1] if len(ids) > 1 else None


def _hold_out(rows: Rows, ids: pd.Series | None, fraction: float,
              seed: int) -> tuple[tuple[Rows, pd.Series | None], tuple[Rows, pd.Series | None]]:
    """(train, eval) rows and ids: a seeded `fraction` held out, stratified by label id when labelled."""
    train_rows, eval_rows = split_indices(len(rows), fraction, seed, None if ids is None else ids.to_numpy())
    if len(eval_rows) == 0:
        raise DataError(f"{rows.source}: holding out data.eval_fraction={fraction} of {len(rows)} rows "
                        "leaves no eval rows.", hint="Give data.eval, raise data.eval_fraction, or add rows.")

    def pick(positions: np.ndarray) -> tuple[Rows, pd.Series | None]:
        return rows.take(positions), None if ids is None else ids.iloc[positions]

    return pick(train_rows), pick(eval_rows)


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
