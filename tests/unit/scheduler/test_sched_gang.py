"""Gang scheduling: all workers or none, on as few nodes as possible, honouring same-node."""

from __future__ import annotations

from sched_helpers import gpus, job, node, running, started

from llmos.scheduler import POLICIES, Snapshot, schedule

FIFO = POLICIES["fifo"]  # placement is the same for every policy; fifo keeps the snapshots minimal


def test_a_gang_that_does_not_fit_starts_no_worker() -> None:
    busy = [running(job("r1", 4), ("n1", gpus(0, 4))), running(job("r2", 6), ("n2", gpus(0, 6)))]
    snap = Snapshot.build(0.0, [node("n1"), node("n2")], busy, [job("gang", 4, workers=2)])
    assert schedule(snap, FIFO).starts == ()  # 4 + 2 idle GPUs: not 2 x 4


def test_a_gang_spans_nodes_when_it_must() -> None:
    busy = [running(job("r1", 4), ("n1", gpus(0, 4))), running(job("r2", 4), ("n2", gpus(0, 4)))]
    snap = Snapshot.build(0.0, [node("n1"), node("n2")], busy, [job("gang", 4, workers=2)])
    assert started(schedule(snap, FIFO))["gang"] == (("n1", gpus(4, 4)), ("n2", gpus(4, 4)))


def test_same_node_is_honoured() -> None:
    busy = [running(job("r1", 4), ("n1", gpus(0, 4))), running(job("r2", 4), ("n2", gpus(0, 4)))]
    snap = Snapshot.build(0.0, [node("n1"), node("n2")], busy, [job("gang", 4, workers=2, same_node=True)])
    assert schedule(snap, FIFO).starts == ()


def test_a_gang_packs_onto_the_fullest_node_that_holds_it() -> None:
    busy = running(job("r1", 4), ("n1", gpus(0, 4)))
    snap = Snapshot.build(0.0, [node("n1"), node("n2")], [busy], [job("gang", 2, workers=2)])
    assert started(schedule(snap, FIFO))["gang"] == (("n1", (4, 5)), ("n1", (6, 7)))


def test_a_large_gang_uses_the_fewest_nodes() -> None:
    nodes = [node("n1"), node("n2"), node("n3", 4)]
    snap = Snapshot.build(0.0, nodes, [], [job("gang", 4, workers=4)])
    placement = started(schedule(snap, FIFO))["gang"]
    assert sorted({n for n, _ in placement}) == ["n1", "n2"]


def test_single_jobs_best_fit_to_keep_whole_nodes_free() -> None:
    busy = running(job("r1", 6), ("n2", gpus(0, 6)))
    snap = Snapshot.build(0.0, [node("n1"), node("n2")], [busy], [job("small", 2), job("whole", 8)])
    assert started(schedule(snap, FIFO)) == {"small": (("n2", (6, 7)),), "whole": (("n1", gpus(0, 8)),)}
