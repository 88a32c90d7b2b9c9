"""Reports as Rich tables: one column per policy, so a run against FIFO reads side by side."""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table

from llmos.sim._report import SimReport

__all__ = ["owners_table", "summary_table"]


def _h(seconds: float) -> str:
    return f"{seconds / 3600:,.2f} h"


_ROWS = (
    ("jobs completed", lambda r: f"{r.completed:,} / {r.jobs:,}"),
    ("rejected", lambda r: f"{len(r.rejected):,}"),
    ("JCT mean", lambda r: _h(r.jct.mean_s)),
    ("JCT median", lambda r: _h(r.jct.median_s)),
    ("JCT p95", lambda r: _h(r.jct.p95_s)),
    ("JCT p99", lambda r: _h(r.jct.p99_s)),
    ("wait mean", lambda r: _h(r.queueing_delay.mean_s)),
    ("wait median", lambda r: _h(r.queueing_delay.median_s)),
    ("wait p95", lambda r: _h(r.queueing_delay.p95_s)),
    ("wait p99", lambda r: _h(r.queueing_delay.p99_s)),
    ("makespan", lambda r: _h(r.makespan_s)),
    ("GPU utilisation", lambda r: f"{r.gpu_utilisation:.1%}"),
    ("preemptions", lambda r: f"{r.preemptions:,}"),
    ("GPU-h lost to preemption", lambda r: f"{r.gpu_hours_lost:,.1f}"),
    ("decision ms mean/max", lambda r: f"{r.decision_ms_mean:.3f} / {r.decision_ms_max:.1f}"),
    ("scheduling rounds", lambda r: f"{r.rounds:,}"),
    ("replay wall time", lambda r: f"{r.replay_wall_s:.1f} s"),
)


def summary_table(reports: Sequence[SimReport]) -> Table:
    table = Table(title="Simulation (wait: queueing delay before the first start)")
    table.add_column("metric")
    for r in reports:
        table.add_column(r.policy, justify="right")
    for name, cell in _ROWS:
        table.add_row(name, *(cell(r) for r in reports))
    return table


def owners_table(report: SimReport) -> Table:
    """Share of the GPUs allocated to each owner while it had work waiting, against its entitlement
    (running: the share its jobs held, capacity claimed for it while a checkpoint frees it aside)."""
    table = Table(title=f"Fair share while waiting ({report.policy})")
    for col in ("owner", "weight", "waiting", "share", "entitled", "ratio", "ratio (running)", "time >= 0.9x",
                "entitled (any class)", "ratio"):
        table.add_column(col, justify="left" if col == "owner" else "right")
    for o in report.owners:
        table.add_row(o.owner, f"{o.weight:g}", _h(o.waiting_s), f"{o.share:.1%}", f"{o.entitled:.1%}",
                      f"{o.ratio:.2f}", f"{o.ratio_running:.2f}", f"{o.time_at_90:.0%}",
                      f"{o.entitled_any_class:.1%}", f"{o.ratio_any_class:.2f}")
    return table
