"""The trace-driven cluster simulator: the scheduler's policy, replayed on thousands of jobs.

`simulate(trace, nodes, config)` feeds the policy the snapshots the control-plane daemon will
and advances time from event to event. Traces and clusters are CSV files (`load_trace`,
`load_cluster`, `load_owners`); `generate_trace` makes synthetic ones; `summarize` turns a
result into the report (`SimReport`, JSON-ready), `summary_table`/`owners_table` into Rich
tables, and `write_plots` into PNGs.
"""

from llmos.sim._cluster import CLUSTER_COLUMNS, load_cluster, load_owners
from llmos.sim._engine import simulate
from llmos.sim._errors import ClusterError, TraceError
from llmos.sim._generate import DEFAULT_OWNERS, generate_trace, load_runtimes
from llmos.sim._plots import write_plots
from llmos.sim._report import OwnerShare, Rejection, SimReport, Stats, summarize
from llmos.sim._result import JobOutcome, Samples, SimResult
from llmos.sim._table import owners_table, summary_table
from llmos.sim._trace import TRACE_COLUMNS, TraceJob, load_trace, write_trace

__all__ = [
    "CLUSTER_COLUMNS",
    "DEFAULT_OWNERS",
    "TRACE_COLUMNS",
    "ClusterError",
    "JobOutcome",
    "OwnerShare",
    "Rejection",
    "Samples",
    "SimReport",
    "SimResult",
    "Stats",
    "TraceError",
    "TraceJob",
    "generate_trace",
    "load_cluster",
    "load_owners",
    "load_runtimes",
    "load_trace",
    "owners_table",
    "simulate",
    "summarize",
    "summary_table",
    "write_plots",
    "write_trace",
]
