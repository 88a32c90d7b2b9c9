"""What loading produces: a train and an eval split of texts, optional second texts and label ids."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["TASKS", "Dataset", "Split"]

TASKS = ("classification", "embedding", "causal-lm")


@dataclass(frozen=True)
class Split:
    """One split, as parallel lists: row i is `texts[i]` (+ `pairs[i]`) with label id `labels[i]`."""

    texts: list[str]
    pairs: list[str] | None = None  # the second text (data.text_pair_column), else None
    labels: list[int] | None = None  # label ids for classification, else None

    def __post_init__(self) -> None:
        for name in ("pairs", "labels"):
            values = getattr(self, name)
            if values is not None and len(values) != len(self.texts):
                raise ValueError(f"Split.{name} has {len(values)} rows, texts has {len(self.texts)}")

    def __len__(self) -> int:
        return len(self.texts)


@dataclass(frozen=True)
class Dataset:
    """Both splits plus what lineage needs: label names in id order, a content hash and the sources."""

    train: Split
    eval: Split
    label_names: list[str] | None  # id -> name; kept with the model (classification only)
    data_hash: str  # sha256 of the input files' bytes (see `data_hash`), or of the hf:… descriptors
    sources: list[str]  # the files (absolute paths) or hf:ID/SPLIT references that were read
