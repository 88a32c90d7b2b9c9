"""The data of a compression job, loaded once for all recipes: eval rows for the task metric,
calibration rows for recipes that look at activations, and the training data of recipes that
train (the `train` rows, which they hand to the training recipe)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmos.errors import DataError, SpecError

if TYPE_CHECKING:
    from llmos.compress._recipe import Parent
    from llmos.data import Encoded, Split
    from llmos.spec import CompressJob, DataSpec

__all__ = ["CompressData", "check_sources", "load_data"]


@dataclass(frozen=True)
class CompressData:
    eval: Encoded  # tokenized with the parent's tokenizer and max_length
    calib: Encoded  # `calib`, else `train`, else the eval rows; at most data.calib_limit rows
    label_names: list[str] | None
    pad_id: int
    task: str
    data_hash: str  # sha256 over the calibration, eval (and training) files: lineage
    sources: dict[str, str]  # role (eval, calib, train) -> file or hf: reference
    train: Split | None  # `train` rows (at most data.train_limit), for recipes that train; else None
    eval_texts: Split | None = None  # the eval rows as text: what the served figures send as requests

    @property
    def eval_source(self) -> str:
        return self.sources["eval"]

    def collate(self, encoded: Encoded, indices: list[int]) -> dict[str, Any]:
        from llmos.data import collate

        return collate(encoded, indices, pad_id=self.pad_id, task=self.task)


def check_sources(job: CompressJob) -> list[tuple[str, str]]:
    """Problems with the data paths, found before anything loads: (field, message) pairs."""
    problems = []
    if job.eval is None:
        problems.append(("eval", "required: the report measures the task metric on it (--eval FILE)"))
    for field in ("eval", "calib", "train"):
        value = getattr(job, field)
        if value and not value.startswith("hf:") and not Path(value).is_file():
            problems.append((field, f"file '{value}' does not exist"))
    return problems


def load_data(job: CompressJob, parent: Parent, tokenizer: Any) -> CompressData:
    """Read and tokenize the eval and calibration rows with the parent's label names."""
    from llmos.data import encode, load_dataset

    if problems := check_sources(job):
        raise SpecError("the compression job's data is not usable:", problems=problems)
    assert job.eval is not None  # checked just above
    calib_source = job.calib or job.train or job.eval
    task = parent.task
    spec = _data_spec(job, parent, train=calib_source, limit=job.data.calib_limit)
    try:
        data = load_dataset(spec, task)
    except DataError as exc:
        raise _renamed(exc, calib_field="calib" if job.calib else "train" if job.train else "eval") from None
    eval_split = data.eval
    if job.data.eval_limit and len(eval_split) > job.data.eval_limit:
        eval_split = _head(eval_split, job.data.eval_limit)
    max_length = parent.max_length
    enc_eval = encode(eval_split, tokenizer, max_length=max_length, task=task, cache_key=f"{data.data_hash}:eval")
    enc_calib = encode(data.train, tokenizer, max_length=max_length, task=task, cache_key=f"{data.data_hash}:calib")
    digests, train = [data.data_hash], None
    if job.train:
        try:
            train = load_dataset(_data_spec(job, parent, train=job.train, limit=job.data.train_limit), task).train
        except DataError as exc:
            raise _renamed(exc, calib_field="train") from None
        digests.append(_digest(job.train))
    from llmos.data._hash import combine_digests

    sources = {"eval": job.eval, "calib": calib_source, **({"train": job.train} if job.train else {})}
    return CompressData(eval=enc_eval, calib=enc_calib, label_names=data.label_names,
                        pad_id=tokenizer.pad_token_id or 0, task=task, data_hash=combine_digests(digests),
                        sources=sources, train=train, eval_texts=eval_split)


def _data_spec(job: CompressJob, parent: Parent, *, train: str, limit: int | None) -> DataSpec:
    from llmos.spec import DataSpec

    d = job.data
    return DataSpec(train=train, eval=job.eval, format=d.format, header=d.header, text_column=d.text_column,
                    text_pair_column=d.text_pair_column,
                    label_column=d.label_column if parent.task == "classification" else None,
                    labels=parent.info.get("label_names"), limit=limit)


def _head(split: Any, n: int) -> Any:
    return replace(split, texts=split.texts[:n], pairs=None if split.pairs is None else split.pairs[:n],
                   labels=None if split.labels is None else split.labels[:n])


def _digest(ref: str) -> str:
    from llmos.data._hash import file_digest, text_digest

    return text_digest(ref) if ref.startswith("hf:") else file_digest(Path(ref))


def _renamed(exc: DataError, calib_field: str) -> DataError:
    """The data loader speaks of data.train / data.eval; a compress job calls them calib and eval."""
    def fix(text: str | None) -> str | None:
        return None if text is None else text.replace("data.train", calib_field).replace("data.eval", "eval")

    return DataError(fix(exc.message) or "", hint=fix(exc.hint))
