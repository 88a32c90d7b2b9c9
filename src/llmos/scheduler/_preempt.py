"""Choosing whom to preempt: the set that frees what a job needs at the least lost work.

A preempted job checkpoints and resumes later, so what it loses is the time its GPUs spend
writing that checkpoint (`RunningJob.lost_work`). For a job that needs one node, every node
with candidates is tried (exactly, over all subsets, when a node has few candidates); a gang
over several nodes takes candidates cheapest first and then drops any it turns out not to need.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import combinations

from llmos.scheduler._free import FreeView
from llmos.scheduler._placement import Placement, place
from llmos.scheduler._types import Job, RunningJob
from llmos.scheduler._victims import Victims

__all__ = ["plan_preemption"]

_EXACT_UP_TO = 6  # candidates on one node searched over all 2^n subsets (64 at most)


def plan_preemption(job: Job, future: FreeView, candidates: Victims, index: dict[str, int],
                    respect_holds: bool = False) -> tuple[Placement, list[RunningJob]] | None:
    """Victims among `candidates` whose release lets `job` fit on `future`; or None.

    `future` is what is free plus what is already being freed; it is not changed. With
    `respect_holds` the job leaves alone what is set aside for the backfill reservation.
    The set chosen stays within the candidates' fair-share budgets.
    """
    placement = place(future, job, respect_holds)
    if placement is not None:
        return placement, []
    ranked = candidates.ranked
    if not ranked or not _enough(job, future, ranked):
        return None
    if job.workers == 1 or job.same_node:
        victims = _cheapest_on_one_node(job, future, candidates, index, respect_holds)
    else:
        victims = _greedy_then_prune(job, future, candidates, index, respect_holds)
    if victims is None:
        return None
    placement = place(_release(future, victims, index), job, respect_holds)
    return None if placement is None else (placement, victims)


def _enough(job: Job, future: FreeView, candidates: Sequence[RunningJob]) -> bool:
    gpus = future.free_gpus + sum(rj.job.total.gpus for rj in candidates)
    cpus = future.free_cpus + sum(rj.job.total.cpus for rj in candidates)
    return job.total.gpus <= gpus and job.total.cpus <= cpus + 1e-9


def _release(view: FreeView, victims: Sequence[RunningJob], index: dict[str, int]) -> FreeView:
    out = view.clone()
    for rj in victims:
        for slot in rj.placement:
            out.give(index[slot.node], slot.cpus, slot.memory_gb, slot.gpu_indices)
    return out


def _cheapest_on_one_node(job: Job, future: FreeView, candidates: Victims, index: dict[str, int],
                          respect_holds: bool) -> list[RunningJob] | None:
    by_node: dict[int, list[RunningJob]] = {}
    for rj in candidates.ranked:
        for i in {index[s.node] for s in rj.placement}:
            by_node.setdefault(i, []).append(rj)
    best: tuple[float, int, list[RunningJob]] | None = None
    for i, local in by_node.items():
        subset = _node_subset(job, future, i, local, candidates, respect_holds)
        if subset is not None:
            cost = sum(rj.lost_work for rj in subset)
            if best is None or (cost, len(subset)) < best[:2]:
                best = (cost, len(subset), subset)
    return None if best is None else best[2]


def _node_subset(job: Job, future: FreeView, i: int, local: list[RunningJob], candidates: Victims,
                 respect_holds: bool) -> list[RunningJob] | None:
    """The cheapest victims on node `i` after which `job`'s workers all fit on it."""
    node = future.nodes[i]
    if job.gpu_type and node.gpu_type != job.gpu_type:
        return None
    hc, hm, hg = future.holds.get(i, (0.0, 0.0, 0)) if respect_holds else (0.0, 0.0, 0)
    base = (future.cpus[i] - hc, future.mem[i] - hm, len(future.gpus[i]) - hg)
    gains = [_on_node(rj, node.name) for rj in local]
    need = job.per_worker.times(job.workers)

    def fits(chosen: Sequence[int]) -> bool:
        c, m, g = base
        for k in chosen:
            c, m, g = c + gains[k][0], m + gains[k][1], g + gains[k][2]
        return (g >= need.gpus and c + 1e-9 >= need.cpus and m + 1e-9 >= need.memory_gb
                and candidates.affordable(local[k] for k in chosen))

    if len(local) <= _EXACT_UP_TO:
        # More victims can cost less (two quick checkpoints vs one slow one): try every subset.
        options = [c for n in range(1, len(local) + 1) for c in combinations(range(len(local)), n) if fits(c)]
        if not options:
            return None
        chosen = min(options, key=lambda c: (sum(local[k].lost_work for k in c), len(c)))
        return [local[k] for k in chosen]
    greedy: list[int] = []
    for k in range(len(local)):  # already cheapest first
        if not candidates.affordable(local[x] for x in [*greedy, k]):
            continue
        greedy.append(k)
        if fits(greedy):
            return [local[k] for k in _prune(greedy, fits)]
    return None


def _on_node(rj: RunningJob, node: str) -> tuple[float, float, int]:
    c = m = 0.0
    g = 0
    for slot in rj.placement:
        if slot.node == node:
            c, m, g = c + slot.cpus, m + slot.memory_gb, g + len(slot.gpu_indices)
    return c, m, g


def _prune(chosen: list[int], fits: Callable[[list[int]], bool]) -> list[int]:
    """Drop the most expensive victims that are not needed after all."""
    kept = list(chosen)
    for k in reversed(chosen):
        trial = [x for x in kept if x != k]
        if trial and fits(trial):
            kept = trial
    return kept


def _greedy_then_prune(job: Job, future: FreeView, candidates: Victims,
                       index: dict[str, int], respect_holds: bool) -> list[RunningJob] | None:
    view = future.clone()
    chosen: list[RunningJob] = []
    for rj in candidates.ranked:
        if not candidates.affordable([*chosen, rj]):
            continue
        chosen.append(rj)
        for slot in rj.placement:
            view.give(index[slot.node], slot.cpus, slot.memory_gb, slot.gpu_indices)
        if place(view, job, respect_holds) is not None:
            def fits(ks: list[int]) -> bool:
                return place(_release(future, [chosen[k] for k in ks], index), job, respect_holds) is not None

            return [chosen[k] for k in _prune(list(range(len(chosen))), fits)]
    return None
