"""Deployments: a served model version behind one front address, with 1..N replicas kept alive,
autoscaled from load and rolled to new versions without a failed request.

`DeploymentController` is the stateful shell the control-plane daemon drives (`start`, `tick`,
`roll`, `status`, `stop`); the decisions inside it are pure functions: `decide_replicas` (the
autoscaler), `pick_replica` (least-outstanding routing) and `reconcile` (scaling, restarts and
rolls as one rule). A roll to a job with a `canary:` section is a canary: `decide_canary` judges
each step on the front's per-version figures; `wait_canary` waits for its verdict from outside.
"""

from llmos.deploy._autoscale import ReplicaLoad, ScaleDecision, ScalingConfig, ScalingSnapshot, decide_replicas
from llmos.deploy._canary import CanaryDecision, CanaryFigures, decide_canary
from llmos.deploy._canary_wait import wait_canary
from llmos.deploy._controller import DeploymentController
from llmos.deploy._errors import DeployError, NoCapacity
from llmos.deploy._pick import Candidate, pick_replica, retry_allowed
from llmos.deploy._reconcile import Plan, ReplicaView, reconcile, restart_delay_s, should_abort
from llmos.deploy._status import DeploymentStatus, ReplicaStatus, RolloutStatus

__all__ = [
    "CanaryDecision",
    "CanaryFigures",
    "Candidate",
    "DeployError",
    "DeploymentController",
    "DeploymentStatus",
    "NoCapacity",
    "Plan",
    "ReplicaLoad",
    "ReplicaStatus",
    "ReplicaView",
    "RolloutStatus",
    "ScaleDecision",
    "ScalingConfig",
    "ScalingSnapshot",
    "decide_canary",
    "decide_replicas",
    "pick_replica",
    "reconcile",
    "restart_delay_s",
    "retry_allowed",
    "should_abort",
    "wait_canary",
]
