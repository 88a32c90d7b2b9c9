"""Reading a Hugging Face dataset: `hf:DATASET_ID[:CONFIG][@REVISION]` (needs `llmos[hf]` and network).

`DataSpec` has no config or revision field, so both ride in the reference: `hf:nyu-mll/glue:sst2`,
`hf:imdb@refs/convert/parquet`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from llmos._lazy import require
from llmos.data._hash import text_digest
from llmos.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["HfRef", "parse_hf_ref", "read_hf"]


@dataclass(frozen=True)
class HfRef:
    dataset_id: str
    config: str | None
    revision: str | None


def parse_hf_ref(ref: str, field: str) -> HfRef:
    body = ref.removeprefix("hf:").strip()
    body, _, revision = body.partition("@")
    dataset_id, _, config = body.partition(":")
    if not dataset_id:
        raise DataError(f"{field}: '{ref}' names no dataset.",
                        hint=f"Write {field} as hf:DATASET_ID[:CONFIG][@REVISION], e.g. hf:nyu-mll/glue:sst2.")
    return HfRef(dataset_id, config or None, revision or None)


def read_hf(ref: str, split: str, label_column: str | None,
            field: str) -> tuple[pd.DataFrame, str, str]:
    """The split as a DataFrame, its name for `sources` and a digest for `data_hash`."""
    parsed = parse_hf_ref(ref, field)
    datasets = require("datasets")  # raises DependencyError with the pip command
    split_field = "data.hf_train_split" if field == "data.train" else "data.hf_eval_split"
    try:
        data = datasets.load_dataset(parsed.dataset_id, name=parsed.config, split=split,
                                     revision=parsed.revision)
    except Exception as exc:  # the hub raises many types (network, auth, not found, bad split)
        raise DataError(f"{field}: cannot load Hugging Face dataset '{parsed.dataset_id}' "
                        f"split '{split}': {exc}", hint=(
                            f"Check the id in {field} (hf:DATASET_ID[:CONFIG][@REVISION]), the split name "
                            f"({split_field}) and network access; or download it and point {field} at a "
                            "local file.")) from exc
    frame = data.to_pandas()
    names = getattr(data.features.get(label_column), "names", None) if label_column else None
    if names and label_column in frame:
        # ClassLabel columns store ids; use the dataset's names so they are kept with the model.
        # Ids outside the names (GLUE's -1 for "no label") become missing and are reported as such.
        frame[label_column] = frame[label_column].map(dict(enumerate(names)))
    name = f"{ref}/{split}"
    # The dataset's fingerprint changes with its content; the revision pins which one was read.
    fingerprint = getattr(data, "_fingerprint", None)
    return frame, name, text_digest(f"{name}|{parsed.revision}|{fingerprint}")
