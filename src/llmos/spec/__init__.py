"""Job specs: one YAML document per job, validated once at the boundary.

Nothing below this package sees a raw dict: callers get Pydantic models.
"""

from llmos.spec._example import example_yaml
from llmos.spec._load import KINDS, apply_overrides, load_job, parse_job, validate_dict
from llmos.spec._models import (
    CheckpointSpec,
    DataSpec,
    EarlyStopSpec,
    LoraSpec,
    ModelSpec,
    RegisterSpec,
    ResourcesSpec,
    TrackingSpec,
    TrainJob,
    TrainSpec,
)

__all__ = [
    "KINDS",
    "CheckpointSpec",
    "DataSpec",
    "EarlyStopSpec",
    "LoraSpec",
    "ModelSpec",
    "RegisterSpec",
    "ResourcesSpec",
    "TrackingSpec",
    "TrainJob",
    "TrainSpec",
    "apply_overrides",
    "example_yaml",
    "load_job",
    "parse_job",
    "validate_dict",
]
