"""Properties over random snapshots and traces: no over-commitment, every feasible job starts."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmos.scheduler import (
    POLICIES,
    Cluster,
    Job,
    Node,
    Occupancy,
    Owner,
    Quota,
    Resources,
    RunningJob,
    Slot,
    Snapshot,
    can_ever_fit,
    schedule,
)
from llmos.sim import TraceJob, simulate

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

nodes_st = st.lists(st.sampled_from([0, 2, 4, 8]), min_size=1, max_size=4).map(
    lambda gs: [Node(f"n{i}", 16, 128, g) for i, g in enumerate(gs)])


@st.composite
def jobs_st(draw, prefix: str, max_size: int = 10) -> list[Job]:
    out = []
    for i in range(draw(st.integers(0, max_size))):
        gpus = draw(st.sampled_from([0, 1, 2, 4, 8]))
        workers = draw(st.sampled_from([1, 1, 2, 3]))
        out.append(Job(
            f"{prefix}{i}", draw(st.sampled_from(["a", "b", "c"])), float(draw(st.integers(0, 50))),
            Resources(draw(st.sampled_from([1, 2, 4])), draw(st.sampled_from([4, 16])), gpus), workers,
            draw(st.integers(0, 3)), preemptible=draw(st.booleans()), same_node=draw(st.booleans()),
            runtime_estimate_s=draw(st.none() | st.floats(1, 500)), checkpoint_s=float(draw(st.integers(0, 60)))))
    return out


owners_st = st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.floats(0.5, 3),
                               st.none() | st.integers(0, 16), st.none() | st.integers(1, 24)),
                     max_size=3, unique_by=lambda t: t[0]).map(
    lambda ts: [Owner(o, w, Quota(gpus=g), Quota(gpus=c)) for o, w, g, c in ts])


def _place_running(nodes: list[Node], jobs: list[Job], stopping: list[bool]) -> list[RunningJob]:
    """First-fit the would-be running jobs onto the nodes; drop those that do not fit."""
    cpus = {n.name: n.cpus for n in nodes}
    mem = {n.name: n.memory_gb for n in nodes}
    free = {n.name: list(range(n.gpus)) for n in nodes}
    out = []
    for j, stop in zip(jobs, stopping, strict=False):
        slots = []
        for _ in range(j.workers):
            w = j.per_worker
            n = next((n for n in nodes if cpus[n.name] >= w.cpus and mem[n.name] >= w.memory_gb
                      and len(free[n.name]) >= w.gpus), None)
            if n is None:
                break
            cpus[n.name] -= w.cpus
            mem[n.name] -= w.memory_gb
            taken, free[n.name] = free[n.name][:int(w.gpus)], free[n.name][int(w.gpus):]
            slots.append(Slot(n.name, w.cpus, w.memory_gb, tuple(taken)))
        if len(slots) == j.workers:
            out.append(RunningJob(j, tuple(slots), 0.0, stopping=stop, expected_end_s=30.0 if stop else None))
        else:  # give back what a partial gang took
            for s in slots:
                cpus[s.node] += s.cpus
                mem[s.node] += s.memory_gb
                free[s.node] = sorted(free[s.node] + list(s.gpu_indices))
    return out


@SETTINGS
@given(nodes=nodes_st, run=jobs_st("r"), stopping=st.lists(st.booleans(), min_size=10, max_size=10),
       queued=jobs_st("q"), owners=owners_st, policy=st.sampled_from(sorted(POLICIES)))
def test_no_decision_over_commits_a_node(nodes, run, stopping, queued, owners, policy) -> None:
    running = _place_running(nodes, run, stopping)
    snap = Snapshot.build(100.0, nodes, running, queued, owners)
    decision = schedule(snap, POLICIES[policy])
    queued_by_id = {j.job_id: j for j in queued}
    started_ids = [s.job_id for s in decision.starts]
    assert len(set(started_ids)) == len(started_ids)
    assert not set(started_ids) & {r.job_id for r in decision.rejects}
    free = {n.name: f for n, f in zip(nodes, snap.free, strict=True)}
    cpus = {n: f.cpus for n, f in free.items()}
    mem = {n: f.memory_gb for n, f in free.items()}
    gpus = {n: set(f.gpu_indices) for n, f in free.items()}
    for start in decision.starts:
        job = queued_by_id[start.job_id]
        assert len(start.placement) == job.workers
        if job.same_node:
            assert len({s.node for s in start.placement}) == 1
        for slot in start.placement:
            assert len(slot.gpu_indices) == job.per_worker.gpus
            assert set(slot.gpu_indices) <= gpus[slot.node], "GPU given twice or not idle"
            gpus[slot.node] -= set(slot.gpu_indices)
            cpus[slot.node] -= slot.cpus
            mem[slot.node] -= slot.memory_gb
            assert cpus[slot.node] > -1e-9 and mem[slot.node] > -1e-9
    by_id = {r.job.job_id: r for r in running}
    for p in decision.preempts:
        assert by_id[p.job_id].job.preemptible and not by_id[p.job_id].stopping


@SETTINGS
@given(nodes=nodes_st, jobs=jobs_st("j", max_size=12), owners=owners_st,
       durations=st.lists(st.floats(1, 300), min_size=12, max_size=12),
       policy=st.sampled_from(sorted(POLICIES)))
def test_every_feasible_job_eventually_starts(nodes, jobs, owners, durations, policy) -> None:
    cluster = Cluster(nodes)
    # Caps below a job's size would make it infeasible by the owner's own choice: leave caps out.
    owners = [Owner(o.name, o.weight, o.guarantee) for o in owners]
    feasible = [TraceJob(j, d) for j, d in zip(jobs, durations, strict=False) if can_ever_fit(cluster, j) is None]
    result = simulate(feasible, nodes, POLICIES[policy], owners)  # also checks every placement it applies
    assert result.unfinished == [] and result.rejected == []
    assert all(o.end_s is not None for o in result.outcomes.values())


@SETTINGS
@given(nodes=nodes_st, run=jobs_st("r"), stopping=st.lists(st.booleans(), min_size=10, max_size=10),
       queued=jobs_st("q"), owners=owners_st, policy=st.sampled_from(sorted(POLICIES)))
def test_a_caller_kept_occupancy_gives_the_same_decision(nodes, run, stopping, queued, owners, policy) -> None:
    """As the simulator keeps it: free capacity set node by node, jobs started in order, the
    stopping ones marked stopping afterwards. (Running jobs sorted by end time, as the kept
    index breaks end-time ties by job id and the round's own ranking by running order.)"""
    from dataclasses import replace

    running = sorted(_place_running(nodes, run, stopping), key=lambda r: (r.end_s, r.job.job_id))
    snap = Snapshot.build(100.0, nodes, running, queued, owners)
    kept = Occupancy(snap.cluster)
    for i, free in enumerate(snap.free):
        kept.set_free(i, free)
    for rj in running:
        kept.add(replace(rj, stopping=False, expected_end_s=None) if rj.stopping else rj)
    for rj in running:
        if rj.stopping:
            kept.replace(next(r for r in kept.by_end if r.job.job_id == rj.job.job_id), rj)
    assert schedule(replace(snap, occupancy=kept), POLICIES[policy]) == schedule(snap, POLICIES[policy])
