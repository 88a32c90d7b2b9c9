"""End to end: replay the example trace under every policy and check the report adds up."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmos.scheduler import POLICIES, Node
from llmos.sim import load_cluster, load_owners, load_trace, simulate, summarize, write_plots

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "sim"


@pytest.fixture(scope="module")
def reports():
    trace = load_trace(EXAMPLES / "tiny-trace.csv")
    nodes = load_cluster(EXAMPLES / "cluster-64gpu.csv")
    owners = load_owners(EXAMPLES / "owners-4teams.csv")
    return {name: (r, summarize(r)) for name in POLICIES
            for r in [simulate(trace, nodes, POLICIES[name], owners)]}


def test_every_policy_finishes_the_feasible_jobs_and_rejects_the_impossible_one(reports) -> None:
    for _, report in reports.values():
        assert report.completed == report.jobs - 1 and report.unfinished == 0
        assert [r.job_id for r in report.rejected] == ["too-big"]
        assert "one node cannot hold" in report.rejected[0].reason


def test_the_full_policy_beats_fifo_on_mean_jct_here(reports) -> None:
    assert reports["full"][1].jct.mean_s < 0.8 * reports["fifo"][1].jct.mean_s


def test_the_high_class_hotfix_preempts_under_priority_policies(reports) -> None:
    result, report = reports["priority"]
    assert report.preemptions > 0 and report.gpu_hours_lost > 0
    fifo = reports["fifo"][0]
    assert result.outcomes["d-hotfix"].first_start_s < fifo.outcomes["d-hotfix"].first_start_s


def test_report_numbers_are_consistent(reports) -> None:
    for result, report in reports.values():
        jct, wait = report.jct, report.queueing_delay
        assert 0 < jct.median_s <= jct.p95_s <= jct.p99_s and wait.mean_s <= jct.mean_s
        assert 0 < report.gpu_utilisation <= 1 and report.makespan_s > 0
        assert report.rounds == len(result.round_latency_s) and report.decision_ms_max >= report.decision_ms_mean
        for owner in report.owners:
            assert 0 <= owner.share <= 1 and 0 <= owner.entitled <= 1
        assert report.model_dump_json()  # serialisable as it is


def test_plots_are_written(reports, tmp_path: Path) -> None:
    paths = write_plots([r for r, _ in reports.values()], tmp_path / "plots")
    assert {p.name for p in paths} >= {"jct_cdf.png", "utilisation.png", "share_full.png"}
    assert all(p.stat().st_size > 1000 for p in paths)


def test_a_1000_job_trace_replays_quickly() -> None:
    import time

    from llmos.sim import generate_trace

    nodes = [Node(f"n{i}", 64, 512, 8) for i in range(8)]
    trace = generate_trace(1000, 0.85, nodes, seed=2)
    began = time.perf_counter()
    report = summarize(simulate(trace, nodes, POLICIES["full"]))
    assert report.completed == 1000
    assert time.perf_counter() - began < 20  # the benchmark times 5,000
