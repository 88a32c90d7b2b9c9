"""Trace, cluster and owners files: valid ones load, bad ones name the row and column."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmos.scheduler import PRIORITY_CLASSES
from llmos.sim import TRACE_COLUMNS, ClusterError, TraceError, load_cluster, load_owners, load_trace, write_trace

HEADER = ",".join(TRACE_COLUMNS)
EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "sim"


def _write(tmp_path: Path, text: str, name: str = "trace.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_valid_trace_loads_sorted_with_optional_columns(tmp_path: Path) -> None:
    text = (f"{HEADER},runtime_estimate_s,notes\n"
            "b,20,100,2,4,8,32,team-x,high,false,150,anything\n"
            "a,10,50,1,1,2,8,team-y,0,true,,\n")
    jobs = load_trace(_write(tmp_path, text))
    assert [t.job.job_id for t in jobs] == ["a", "b"]
    b = jobs[1]
    assert b.job.workers == 2 and b.job.per_worker.gpus == 4 and b.job.total.gpus == 8
    assert b.job.priority == PRIORITY_CLASSES["high"] and not b.job.preemptible
    assert b.job.runtime_estimate_s == 150 and jobs[0].job.runtime_estimate_s is None
    assert b.duration_s == 100


def test_write_then_load_round_trips(tmp_path: Path) -> None:
    jobs = load_trace(_write(tmp_path, f"{HEADER}\na,0,5,1,1,1,1,o,normal,true\n"))
    write_trace(tmp_path / "again.csv", jobs)
    assert load_trace(tmp_path / "again.csv") == jobs


def test_a_missing_column_is_named(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match="lacks the column") as err:
        load_trace(_write(tmp_path, HEADER.replace(",owner", "") + "\n"))
    assert "owner" in err.value.message and "job_id,submit_s" in err.value.hint


def test_bad_rows_are_all_named_with_their_line(tmp_path: Path) -> None:
    text = (f"{HEADER}\n"
            "ok,0,10,1,1,1,1,o,normal,true\n"
            "neg,0,-5,1,1,1,1,o,normal,true\n"
            "word,zero,10,1,1,1,1,o,urgent,maybe\n"
            "ok,0,10,0,1,1,1,o,normal,true\n")
    with pytest.raises(TraceError) as err:
        load_trace(_write(tmp_path, text))
    message = err.value.message
    assert "row 3, column duration_s: must be >= 0, got -5" in message
    assert "row 4, column submit_s: expected a number, got 'zero'" in message
    assert "row 4, column priority" in message and "row 4, column preemptible" in message
    assert "row 5, column workers" in message and "row 5, column job_id: 'ok' already used on row 2" not in message


def test_a_duplicate_job_id_is_named(tmp_path: Path) -> None:
    text = f"{HEADER}\na,0,1,1,1,1,1,o,normal,true\na,1,1,1,1,1,1,o,normal,true\n"
    with pytest.raises(TraceError, match="row 3, column job_id: 'a' already used on row 2"):
        load_trace(_write(tmp_path, text))


def test_missing_and_empty_files_say_so(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match="does not exist"):
        load_trace(tmp_path / "nope.csv")
    with pytest.raises(TraceError, match="has no jobs"):
        load_trace(_write(tmp_path, HEADER + "\n"))


def test_cluster_file_loads_and_rejects_bad_rows(tmp_path: Path) -> None:
    nodes = load_cluster(EXAMPLES / "cluster-64gpu.csv")
    assert len(nodes) == 8 and sum(n.gpus for n in nodes) == 64
    bad = _write(tmp_path, "node,cpus,memory_gb,gpus,gpu_type\nn1,64,512,8,a100\nn1,64,-1,2.5,a100\n", "c.csv")
    with pytest.raises(ClusterError) as err:
        load_cluster(bad)
    assert "row 3, column memory_gb" in err.value.message and "row 3, column gpus" in err.value.message
    with pytest.raises(ClusterError, match="lacks the column"):
        load_cluster(_write(tmp_path, "node,cpus\nn1,4\n", "c2.csv"))


def test_owners_file_sets_weights_and_quotas(tmp_path: Path) -> None:
    owners = load_owners(EXAMPLES / "owners-4teams.csv")
    assert [o.name for o in owners] == ["team-a", "team-b", "team-c", "team-d"]
    assert owners[0].guarantee.gpus == 16 and owners[0].cap.gpus is None
    with pytest.raises(ClusterError, match="row 2, column weight: must be > 0"):
        load_owners(_write(tmp_path, "owner,weight\nx,0\n", "o.csv"))


def test_the_example_trace_loads() -> None:
    assert len(load_trace(EXAMPLES / "tiny-trace.csv")) >= 8
