"""The pure rules of projects and roles, with literals: who may act where, which classes a project
may use, and a project's stored quota as the scheduler's owner deciding a round."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from llmos.control._projects import access_error, effective_role, owner_of, priority_error, replica_class
from llmos.control._snapshot import build_snapshot
from llmos.executor import Inventory
from llmos.scheduler import Owner, Quota, schedule


@pytest.mark.parametrize(("token_role", "member", "expected"), [
    ("admin", None, "admin"),  # a global admin is admin in every project
    ("developer", None, None),  # not a member: no role there
    ("developer", "viewer", "viewer"),
    ("developer", "admin", "admin"),  # a project's admin through a developer token
    ("viewer", "admin", "viewer"),  # a viewer token only reads, whoever holds it
])
def test_the_role_in_a_project(token_role: str, member: str | None, expected: str | None) -> None:
    assert effective_role(token_role, member) == expected


def test_access_errors_name_the_project_and_the_command_that_grants_access() -> None:
    assert access_error("ann", "developer", "nlp", "developer", "developer", "submit jobs") is None
    outsider = access_error("ann", "developer", "vision", None, "developer", "submit jobs")
    assert outsider is not None and outsider.status == 403
    assert "ann is not a member of project vision" in outsider.message
    assert outsider.hint == "Ask an admin: llmos projects add-member vision ann --role developer"
    viewer = access_error("ann", "developer", "nlp", "viewer", "developer", "submit jobs")
    assert viewer is not None and "ann is a viewer of project nlp" in viewer.message
    token = access_error("ann", "viewer", "nlp", "developer", "developer", "submit jobs")
    assert token is not None and "viewer token" in token.message and "--role developer --owner ann" in token.hint
    boss = access_error("ann", "developer", "nlp", "developer", "admin", "cancel bob's jobs")
    assert boss is not None and "needs the admin role" in boss.message


def test_priority_classes_above_normal_need_the_projects_grant() -> None:
    normal, high, critical = 1, 2, 3
    assert priority_error("nlp", normal, normal, is_admin=False) is None
    assert priority_error("nlp", 0, normal, is_admin=False) is None  # low is always allowed
    refused = priority_error("nlp", critical, normal, is_admin=False)
    assert refused is not None and refused.status == 403
    assert "not granted the critical priority class" in refused.message
    assert refused.hint.endswith("llmos projects grant nlp --priority critical")
    assert priority_error("nlp", high, high, is_admin=False) is None
    assert priority_error("nlp", critical, high, is_admin=False) is not None  # high does not give critical
    assert priority_error("nlp", critical, normal, is_admin=True) is None  # a global admin needs no grant


def _project(name: str, **limits: float) -> SimpleNamespace:
    fields = {f"{k}_{r}": None for k in ("guarantee", "cap") for r in ("cpus", "memory_gb", "gpus")}
    return SimpleNamespace(name=name, weight=limits.pop("weight", 1.0), **{**fields, **limits})


def test_a_stored_quota_is_the_schedulers_owner() -> None:
    owner = owner_of(_project("nlp", cap_cpus=1.0, guarantee_gpus=2.0, weight=3.0))
    assert owner == Owner("nlp", weight=3.0, guarantee=Quota(gpus=2.0), cap=Quota(cpus=1.0))


def _queued(job_id: int, project: str) -> SimpleNamespace:
    return SimpleNamespace(id=job_id, project=project, submit_s=float(job_id), updated_s=float(job_id), cpus=1.0,
                           memory_gb=1.0, gpus=0, workers=1, priority=1, same_node=True)


def test_a_project_over_its_cap_waits_while_another_starts() -> None:
    """4 free cores; nlp (cap 1 CPU) queues two 1-CPU jobs, vision one: nlp's second waits."""
    queued = [_queued(1, "nlp"), _queued(2, "nlp"), _queued(3, "vision")]
    owners = [owner_of(_project("nlp", cap_cpus=1.0)), owner_of(_project("vision"))]
    capped = build_snapshot(100.0, Inventory(cores=(0, 1, 2, 3), memory_gb=16.0), queued, [], 1.0, owners=owners)
    assert sorted(s.job_id for s in schedule(capped).starts) == ["1", "3"]
    free = build_snapshot(100.0, Inventory(cores=(0, 1, 2, 3), memory_gb=16.0), queued, [], 1.0)
    assert sorted(s.job_id for s in schedule(free).starts) == ["1", "2", "3"]  # without the owner: no cap


def test_a_deployments_replicas_wait_at_the_class_its_project_was_granted() -> None:
    """The attack through a deployment: replicas of a project without a grant wait at normal and do
    not preempt another project's normal job; at critical (an admin's, or granted) they do."""
    from llmos.control._capacity import Need, demand_jobs
    from llmos.scheduler import Job, Node, Resources, RunningJob, Slot, Snapshot

    assert [replica_class(False, g) for g in (None, 0, 1, 2, 3)] == [1, 1, 1, 2, 3]
    assert replica_class(True, None) == 3
    other = RunningJob(Job("7", "vision", 0.0, Resources(2.0, 1.0)), (Slot("n", 2.0, 1.0),), 0.0)
    for rank, preempted in ((replica_class(False, None), []), (replica_class(False, 3), ["7"])):
        demand = demand_jobs("deploy:d:", "nlp", Need(2), 1, 50.0, priority=rank)
        decision = schedule(Snapshot.build(100.0, [Node("n", 2.0, 8.0)], [other], demand))
        assert [p.job_id for p in decision.preempts] == preempted
