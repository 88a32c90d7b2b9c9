"""The occupancy index: one kept up to date job by job equals one built from the snapshot."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sched_helpers import gpus, job, node, running

from llmos.scheduler import Cluster, NodeFree, Occupancy, free_capacity


def _same_index(kept: Occupancy, built: Occupancy) -> None:
    assert kept.cpus == built.cpus and kept.mem == built.mem and kept.gpus == built.gpus
    assert kept.idle == built.idle
    assert {p: [rj.job.job_id for rj in jobs] for p, jobs in kept.movable.items() if jobs} == \
           {p: [rj.job.job_id for rj in jobs] for p, jobs in built.movable.items()}
    assert {n: [rj.job.job_id for rj in jobs] for n, jobs in kept.on_node.items() if jobs} == \
           {n: [rj.job.job_id for rj in jobs] for n, jobs in built.on_node.items()}
    assert [rj.job.job_id for rj in kept.stopping_in_start_order()] == \
           [rj.job.job_id for rj in built.stopping_in_start_order()]


def test_movable_jobs_are_ranked_cheapest_first_and_ties_by_start_order() -> None:
    cluster = Cluster([node("n1"), node("n2")])
    jobs = [running(job("first-cheap", 1, checkpoint_s=10), ("n1", (0,))),  # in start order
            running(job("dear", 2, checkpoint_s=60), ("n1", gpus(1, 2))),
            running(job("high", 1, priority=2, checkpoint_s=10), ("n2", (1,))),
            running(job("then-cheap", 1, checkpoint_s=10), ("n2", (0,))),
            running(job("fixed", 1, preemptible=False), ("n2", (2,))),
            running(job("stopping", 1), ("n2", (3,)), stopping=True)]
    kept = Occupancy(cluster, free_capacity(cluster, jobs))
    for rj in jobs:
        kept.add(rj)
    assert [rj.job.job_id for rj in kept.movable[1]] == ["first-cheap", "then-cheap", "dear"]
    assert [rj.job.job_id for rj in kept.movable[2]] == ["high"]
    assert [rj.job.job_id for rj in kept.on_node["n2"]] == ["then-cheap", "high"]  # same cost: lower class first
    assert list(kept.stopping) == ["stopping"]
    assert [rj.job.job_id for rj in kept.by_end] == [rj.job.job_id for rj in sorted(
        jobs, key=lambda r: (r.end_s, r.job.job_id))]
    _same_index(kept, Occupancy.of(cluster, free_capacity(cluster, jobs), jobs))


def test_set_free_moves_a_node_between_idle_counts_in_node_order() -> None:
    cluster = Cluster([node("n1"), node("n2"), node("n3")])
    occ = Occupancy(cluster)
    assert occ.idle[8] == [0, 1, 2]
    occ.set_free(1, NodeFree(16.0, 64.0, (4, 5, 6, 7)))
    occ.set_free(0, NodeFree(16.0, 64.0, (0, 1, 2, 3)))
    assert occ.idle[8] == [2] and occ.idle[4] == [0, 1] and occ.cpus[1] == 16.0


def test_removing_a_job_it_does_not_hold_is_an_error() -> None:
    cluster = Cluster([node("n1")])
    occ = Occupancy(cluster)
    rj = running(job("a", 1), ("n1", (0,)))
    with pytest.raises(RuntimeError, match="missing"):
        occ.remove(rj)


@settings(max_examples=100, deadline=None)
@given(ops=st.lists(st.tuples(st.sampled_from(["start", "stop", "end"]), st.integers(0, 40),
                              st.sampled_from([0, 1, 2, 4]), st.integers(0, 3), st.integers(0, 3),
                              st.booleans()), max_size=60))
def test_a_kept_occupancy_equals_one_built_from_the_running_jobs(ops) -> None:
    """Jobs start (in order), stop (checkpoint) and end at random; the kept index then equals
    the one a round builds from the snapshot's running jobs in start order."""
    cluster = Cluster([node(f"n{i}", 4) for i in range(4)])
    kept = Occupancy(cluster)
    order: dict[str, object] = {}  # job id -> running job, in start order (as the simulator's dict)
    free = cluster.idle()
    for n, (op, cost, size, where, cls, preemptible) in enumerate(ops):
        if op == "start":
            i = where % 4
            j = job(f"j{n}", size, priority=cls, checkpoint_s=float(cost), preemptible=preemptible,
                    runtime_estimate_s=float(cost * 7 % 50))
            if len(free[i].gpu_indices) < size or free[i].cpus < j.per_worker.cpus:
                continue
            rj = running(j, (f"n{i}", free[i].gpu_indices[:size]), start_s=float(n))
            free[i] = NodeFree(free[i].cpus - j.per_worker.cpus, free[i].memory_gb - j.per_worker.memory_gb,
                               free[i].gpu_indices[size:])
            kept.set_free(i, free[i])
            kept.add(rj)
            order[j.job_id] = rj
        elif order:
            job_id = list(order)[cost % len(order)]
            rj = order[job_id]
            if op == "stop" and rj.movable:
                order[job_id] = replace(rj, stopping=True, expected_end_s=float(n + 30))
                kept.replace(rj, order[job_id])
            elif op == "end":
                kept.remove(order.pop(job_id))
                free = free_capacity(cluster, order.values())
                for i, f in enumerate(free):
                    kept.set_free(i, f)
    jobs = list(order.values())
    _same_index(kept, Occupancy.of(cluster, free_capacity(cluster, jobs), jobs))
    assert kept.by_end == sorted(jobs, key=lambda r: (r.end_s, r.job.job_id))
