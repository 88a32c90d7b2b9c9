"""Job specs: one YAML document per job, validated once at the boundary.

Nothing below this package sees a raw dict: callers get Pydantic models.
"""

from llmos.spec._command import CommandJob, CommandResources, parse_command
from llmos.spec._compress import CompressDataSpec, CompressJob, GateSpec, RecipeSpec, ReportSpec
from llmos.spec._example import example_yaml
from llmos.spec._load import KINDS, apply_overrides, load_job, parse_job, validate_dict
from llmos.spec._models import (
    CheckpointSpec,
    DataSpec,
    DistillSpec,
    EarlyStopSpec,
    LoraSpec,
    ModelSpec,
    RegisterSpec,
    ResourcesSpec,
    SftSpec,
    TrackingSpec,
    TrainJob,
    TrainSpec,
)
from llmos.spec._serve import AutoscaleSpec, CanarySpec, ReplicaResources, ReplicasSpec, ServeJob
from llmos.spec._sweep import ParamSpec, PrunerSpec, SweepJob, trial_job

__all__ = [
    "KINDS",
    "AutoscaleSpec",
    "CanarySpec",
    "CheckpointSpec",
    "CommandJob",
    "CommandResources",
    "CompressDataSpec",
    "CompressJob",
    "DataSpec",
    "DistillSpec",
    "EarlyStopSpec",
    "GateSpec",
    "LoraSpec",
    "ModelSpec",
    "ParamSpec",
    "PrunerSpec",
    "RecipeSpec",
    "RegisterSpec",
    "ReplicaResources",
    "ReplicasSpec",
    "ReportSpec",
    "ResourcesSpec",
    "ServeJob",
    "SftSpec",
    "SweepJob",
    "TrackingSpec",
    "TrainJob",
    "TrainSpec",
    "apply_overrides",
    "example_yaml",
    "load_job",
    "parse_command",
    "parse_job",
    "trial_job",
    "validate_dict",
]
