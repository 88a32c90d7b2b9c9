"""Data: read text datasets (CSV, TSV, JSONL, Parquet, Hugging Face) into train/eval splits with
label ids and a content hash, and tokenize them once with an on-disk cache."""

from llmos.data._batching import BatchPlan, collate
from llmos.data._bundled import bundled_dataset_path
from llmos.data._encode import Encoded, encode
from llmos.data._hash import data_hash
from llmos.data._load import load_dataset
from llmos.data._sources import check_sources
from llmos.data._types import Dataset, Split

__all__ = [
    "BatchPlan",
    "Dataset",
    "Encoded",
    "Split",
    "bundled_dataset_path",
    "check_sources",
    "collate",
    "data_hash",
    "encode",
    "load_dataset",
]
