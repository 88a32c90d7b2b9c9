"""The scheduling policy: a pure function from a cluster snapshot to decisions.

`schedule(snapshot, config)` reads nodes, free capacity, running jobs, the queue, owners and
their decayed usage, and returns which jobs start (with exact nodes and GPU indices), which
running jobs to preempt, and which jobs can never run. No clock, I/O or torch: the control
plane daemon and the simulator (`llmos.sim`) call the same function.
"""

from llmos.scheduler._config import POLICIES, PolicyConfig, policy_config
from llmos.scheduler._decision import Claim, Decision, Preempt, Reject, Reservation, Start
from llmos.scheduler._errors import SchedulerError
from llmos.scheduler._fairshare import (
    allocation_by_group,
    class_entitlements,
    decay_usage,
    entitlements,
    fair_entitlements,
)
from llmos.scheduler._occupancy import Occupancy
from llmos.scheduler._owed import accrue_owed, update_owed
from llmos.scheduler._placement import can_ever_fit
from llmos.scheduler._policy import schedule
from llmos.scheduler._resources import PRIORITY_CLASSES, Quota, Resources, priority_rank
from llmos.scheduler._snapshot import (
    Cluster,
    QueueKey,
    Snapshot,
    free_capacity,
    group_queue,
    queue_order,
    queued_by_group,
)
from llmos.scheduler._types import Job, Node, NodeFree, Owner, RunningJob, Slot

__all__ = [
    "POLICIES",
    "PRIORITY_CLASSES",
    "Claim",
    "Cluster",
    "Decision",
    "Job",
    "Node",
    "NodeFree",
    "Occupancy",
    "Owner",
    "PolicyConfig",
    "Preempt",
    "QueueKey",
    "Quota",
    "Reject",
    "Reservation",
    "Resources",
    "RunningJob",
    "SchedulerError",
    "Slot",
    "Snapshot",
    "Start",
    "accrue_owed",
    "allocation_by_group",
    "can_ever_fit",
    "class_entitlements",
    "decay_usage",
    "entitlements",
    "fair_entitlements",
    "free_capacity",
    "group_queue",
    "policy_config",
    "priority_rank",
    "queue_order",
    "queued_by_group",
    "schedule",
    "update_owed",
]
