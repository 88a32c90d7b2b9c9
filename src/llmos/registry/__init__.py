"""Registry: named, versioned models with aliases (`sentiment@production`) and lineage, in MLflow.

A version points at a model folder logged by `llmos.tracking.Tracker.log_model_dir`; `fetch` brings
it to local disk and refuses it unless every file matches the manifest registered with it; `load`
does that and loads the model for inference; `export` writes a version as a plain Hugging Face
folder or an ONNX graph that other tools load without llmos. Aliases
remember where they pointed, so `rollback` undoes a promotion.
"""

from llmos.registry._export import Exported, export
from llmos.registry._fetch import fetch
from llmos.registry._load import load
from llmos.registry._query import ModelDetails, ModelSummary, VersionInfo, list_models, show
from llmos.registry._ref import ModelRef, parse_ref
from llmos.registry._register import register_model, rollback, set_alias

__all__ = [
    "Exported",
    "ModelDetails",
    "ModelRef",
    "ModelSummary",
    "VersionInfo",
    "export",
    "fetch",
    "list_models",
    "load",
    "parse_ref",
    "register_model",
    "rollback",
    "set_alias",
    "show",
]
