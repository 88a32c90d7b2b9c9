"""Data: read text datasets (CSV, TSV, JSONL, Parquet, Hugging Face) and chat JSONL into train/eval splits with
label ids and a content hash, and tokenize them once with an on-disk cache."""

from llmos.data._batching import BatchPlan, collate
from llmos.data._bundled import bundled_dataset_path
from llmos.data._chat import ChatDataset, Message, load_chat
from llmos.data._chat_encode import ChatEncoded, collate_chat, encode_chat, tokenize_chat
from llmos.data._encode import Encoded, encode
from llmos.data._hash import data_hash
from llmos.data._load import load_dataset
from llmos.data._sources import check_sources
from llmos.data._types import Dataset, Split

__all__ = [
    "BatchPlan",
    "ChatDataset",
    "ChatEncoded",
    "Dataset",
    "Encoded",
    "Message",
    "Split",
    "bundled_dataset_path",
    "check_sources",
    "collate",
    "collate_chat",
    "data_hash",
    "encode",
    "encode_chat",
    "load_chat",
    "load_dataset",
    "tokenize_chat",
]
