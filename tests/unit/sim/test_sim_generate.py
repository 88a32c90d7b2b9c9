"""Synthetic traces: deterministic per seed, scaled to the asked load, a realistic mix."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from llmos.scheduler import Node
from llmos.sim import TraceError, generate_trace, load_runtimes

NODES = [Node(f"n{i}", 64, 512, 8) for i in range(8)]
# A benchmark input, not a product one: the team's shared folder beside the checkout, or LLMOS_SHARED.
SHARED = Path(os.environ.get("LLMOS_SHARED", Path(__file__).resolve().parents[4] / "shared"))
PHILLY = SHARED / "datasets" / "traces" / "philly_runtime.csv"


def _offered_load(trace, nodes) -> float:
    gpu_s = sum(t.job.total.gpus * t.duration_s for t in trace)
    span_s = trace[-1].job.submit_s - trace[0].job.submit_s
    return gpu_s / (span_s * sum(n.gpus for n in nodes))


def test_same_seed_same_trace_and_a_different_seed_differs() -> None:
    assert generate_trace(50, 0.8, NODES, seed=3) == generate_trace(50, 0.8, NODES, seed=3)
    assert generate_trace(50, 0.8, NODES, seed=3) != generate_trace(50, 0.8, NODES, seed=4)


def test_arrivals_are_scaled_to_the_load() -> None:
    runtimes = [600.0, 1200.0, 3600.0]  # light-tailed, so 3,000 jobs pin the load down
    for load in (0.5, 1.0):
        assert _offered_load(generate_trace(3000, load, NODES, seed=1, runtimes=runtimes), NODES) == \
            pytest.approx(load, rel=0.1)


def test_the_mix_has_several_sizes_owners_classes_and_gangs() -> None:
    trace = generate_trace(2000, 0.85, NODES, seed=0)
    sizes = {t.job.total.gpus for t in trace}
    assert sizes == {1, 2, 4, 8}
    assert len({t.job.owner for t in trace}) == 4 and len({t.job.priority for t in trace}) == 3
    assert any(t.job.workers > 1 for t in trace) and any(t.job.same_node for t in trace)
    assert all(t.job.runtime_estimate_s >= t.duration_s for t in trace)


def test_bad_arguments_and_files_are_explained(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match="--jobs"):
        generate_trace(0, 0.8, NODES)
    with pytest.raises(TraceError, match="--load"):
        generate_trace(10, -1, NODES)
    with pytest.raises(TraceError, match="no GPUs"):
        generate_trace(10, 0.5, [Node("cpu", 64, 256, 0)])
    wrong = tmp_path / "r.csv"
    wrong.write_text("seconds\n5\n")
    with pytest.raises(TraceError, match="none of the columns"):
        load_runtimes(wrong)


def test_runtimes_are_read_from_a_csv(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_text("runtime\n10\n20.5\n0\n")
    assert load_runtimes(path) == [10.0, 20.5, 0.0]


@pytest.mark.skipif(not PHILLY.is_file(), reason="the shared Philly run-time file is not on this machine")
def test_the_philly_distribution_loads() -> None:
    runtimes = load_runtimes(PHILLY)
    assert len(runtimes) > 80_000 and min(runtimes) >= 0
