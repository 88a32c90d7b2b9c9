"""Pure parts: what an exit becomes, backoff, core assignment, snapshots, resource checks."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from llmos.control._errors import Rejected
from llmos.control._inventory import Gpu, Inventory
from llmos.control._outcome import after_exit, retry_delay_s
from llmos.control._snapshot import assign_cores, build_snapshot, sched_job, waited_before
from llmos.control._states import ALLOWED, TERMINAL, JobState
from llmos.control._submit import Request, check_fits, request_of
from llmos.executor import KINDS, Cluster
from llmos.scheduler import PRIORITY_CLASSES, Slot, schedule
from llmos.spec import CommandJob

Q, R, P = JobState.QUEUED, JobState.RUNNING, JobState.PREEMPTED


def test_exit_outcomes() -> None:
    ok = after_exit(R, 0, 1, 0, 2, 100.0, 2.0, 60.0)
    assert ok.state == JobState.SUCCEEDED and not ok.failed
    retry = after_exit(R, 1, 1, 0, 2, 100.0, 2.0, 60.0)
    assert retry.state == Q and retry.failed and retry.not_before_s == 102.0 and "retry 1 of 2" in retry.reason
    second = after_exit(R, -9, 2, 1, 2, 100.0, 2.0, 60.0)
    assert second.state == Q and second.not_before_s == 104.0 and "signal 9" in second.reason
    final = after_exit(R, 1, 3, 2, 2, 100.0, 2.0, 60.0)
    assert final.state == JobState.FAILED and "no retries left" in final.reason
    lost = after_exit(R, None, 1, 0, 0, 100.0, 2.0, 60.0)
    assert lost.state == JobState.FAILED and "without an exit status" in lost.reason
    assert after_exit(P, 75, 1, 0, 0, 0, 1, 1).state == Q and not after_exit(P, -9, 1, 0, 0, 0, 1, 1).failed
    assert after_exit(P, 0, 1, 0, 0, 0, 1, 1).state == JobState.SUCCEEDED
    assert after_exit(R, 75, 1, 0, 0, 0, 1, 1).state == Q  # a checkpointed stop is never a failure
    assert after_exit(JobState.CANCELLED, -15, 1, 0, 0, 0, 1, 1).state is None
    assert [retry_delay_s(n, 2.0, 10.0) for n in (1, 2, 3, 4)] == [2.0, 4.0, 8.0, 10.0]


@pytest.mark.parametrize(("state", "code"), [(P, -15), (R, 75), (R, 1)])
def test_requeue_reasons_say_whether_the_rerun_resumes_or_starts_over(state: JobState, code: int) -> None:
    train = after_exit(state, code, 1, 0, 2, 0.0, 2.0, 60.0, restarts=KINDS["train"].restarts)
    compress = after_exit(state, code, 1, 0, 2, 0.0, 2.0, 60.0, restarts=KINDS["compress"].restarts)
    assert train.state == compress.state == Q and train.failed == compress.failed
    assert "latest checkpoint" in train.reason and "over" not in train.reason
    assert "starting over" in compress.reason or "starts over" in compress.reason
    assert "checkpoint" not in compress.reason.replace("keeps no checkpoints", "")
    assert after_exit(state, code, 1, 0, 2, 0.0, 2.0, 60.0).reason == train.reason  # training is the default


def test_final_states_are_final_and_every_state_can_end() -> None:
    assert all(not ALLOWED[s] for s in TERMINAL)
    assert all(ALLOWED[s] & TERMINAL for s in JobState if s not in TERMINAL)


def test_cores_never_overlap_and_gpus_map_to_physical_indices() -> None:
    inv = Inventory(cores=(2, 3, 4, 5), memory_gb=16, gpus=(Gpu(1, "A", 80), Gpu(3, "B", 80)))
    used = {"local": {3}}
    placed = assign_cores([Slot("local", 2, 1, (1,)), Slot("local", 1, 1, (0,))], Cluster.of(inv), used)
    here = {"node": "local", "address": "127.0.0.1"}
    assert placed["workers"] == [
        {**here, "cores": [2, 4], "memory_gb": 1, "gpu_slots": [1], "gpus": [3]},
        {**here, "cores": [5], "memory_gb": 1, "gpu_slots": [0], "gpus": [1]}]
    assert used == {"local": {2, 3, 4, 5}}
    with pytest.raises(RuntimeError):
        assign_cores([Slot("local", 3, 0)], Cluster.of(inv), {"local": {2, 3}})


def test_a_gang_across_hosts_gets_each_host_s_cores_and_address() -> None:
    a = Inventory(cores=(0, 1), memory_gb=8, name="a", address="10.0.0.2", pin=False)
    b = Inventory(cores=(0, 1), memory_gb=8, name="b", address="10.0.0.3", pin=False)
    placed = assign_cores([Slot("a", 1, 1), Slot("b", 1, 1), Slot("a", 1, 1)], Cluster((a, b), "ray"), {})
    assert [(w["node"], w["address"], w["cores"]) for w in placed["workers"]] == [
        ("a", "10.0.0.2", [0]), ("b", "10.0.0.3", [0]), ("a", "10.0.0.2", [1])]
    with pytest.raises(RuntimeError, match="not in the inventory"):
        assign_cores([Slot("gone", 1, 1)], Cluster((a, b), "ray"), {})


def _row(job_id: int, state: str, priority: str, cpus: int, cores: list[int] | None = None, stop_s=None):
    placement = json.dumps({"workers": [{"cores": cores, "memory_gb": 0, "gpu_slots": [], "gpus": []}]}) \
        if cores else None
    return SimpleNamespace(id=job_id, same_node=True, state=state, project="p", submit_s=float(job_id), cpus=cpus,
                           memory_gb=0.0, gpus=0, workers=1, priority=PRIORITY_CLASSES[priority], placement=placement,
                           stop_s=stop_s, updated_s=0.0)


def test_the_policy_preempts_a_low_job_for_a_high_one_needing_its_cores() -> None:
    inv = Inventory(cores=(0, 1), memory_gb=8)
    running = [_row(1, "RUNNING", "low", 2, [0, 1])]
    snap = build_snapshot(10.0, inv, [_row(2, "QUEUED", "high", 2)], running, grace_s=30)
    decision = schedule(snap)
    assert [p.job_id for p in decision.preempts] == ["1"] and not decision.starts
    # While it checkpoints it still holds its cores: nothing starts on them.
    stopping = [_row(1, "PREEMPTED", "low", 2, [0, 1], stop_s=10.0)]
    decision = schedule(build_snapshot(11.0, inv, [_row(2, "QUEUED", "high", 2)], stopping, grace_s=30))
    assert not decision.starts and not decision.preempts
    decision = schedule(build_snapshot(12.0, inv, [_row(2, "QUEUED", "high", 2)], [], grace_s=30))
    assert [s.job_id for s in decision.starts] == ["2"]


def test_a_job_bigger_than_the_machine_is_rejected_with_the_numbers() -> None:
    inv = Inventory(cores=(0, 1), memory_gb=8)
    with pytest.raises(Rejected, match=r"4 CPUs \(2 worker\(s\) x 2\) but the control plane has 2.*10 GB"):
        check_fits(Request(2, 2, 5.0, 0), inv)
    check_fits(Request(1, 2, 8.0, 0), inv)
    assert request_of(CommandJob(run=["x"], resources={"cpus": 2, "gpus": 1})) == Request(1, 2, 0.0, 1)


def test_each_worker_pins_itself_to_its_cores_and_writes_its_own_log(tmp_path) -> None:
    import subprocess
    import sys

    code = ("from llmos.run.__main__ import _control_plane_placement; _control_plane_placement(); "
            "import os; print('cores', sorted(os.sched_getaffinity(0)))")
    for rank in (0, 1):
        env = {**__import__("os").environ, "LOCAL_RANK": str(rank), "LLMOS_WORKER_CORES": "0;1",
               "LLMOS_WORKER_LOGS": str(tmp_path)}
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        assert out.stdout == ""  # it went to the worker's own log
        assert (tmp_path / f"worker-{rank}.log").read_text() == f"cores [{rank}]\n"


def test_configuration_errors_name_the_key_and_the_machine(llmos_home) -> None:
    from llmos.control import load_config
    from llmos.control._inventory import detect
    from llmos.errors import LlmosError, SpecError

    (llmos_home / "control.yaml").write_text("policy: fastest\ninterval_s: 0\ncpu: 2\n")
    with pytest.raises(SpecError) as bad:
        load_config()
    assert {p for p, _ in bad.value.problems} == {"policy", "interval_s", "cpu"}
    (llmos_home / "control.yaml").write_text("reserve_cpus: 0\n")
    assert load_config(cpus=1).cpus == 1  # flags override the file
    with pytest.raises(LlmosError, match="may use"):
        detect(load_config(cpus=10_000))
    assert len(detect(load_config(cpus=1)).cores) == 1


def test_waited_before_counts_queue_time_between_attempts_not_run_time() -> None:
    assert waited_before(100.0, []) == 0.0
    # queued 100 -> 130, ran to 500, requeued, started again at 560 and ran to 900
    assert waited_before(100.0, [(130.0, 500.0), (560.0, 900.0)]) == 30.0 + 60.0
    # a row whose queued stay began at its last attempt's end waits from there (queued_s)
    job = sched_job(SimpleNamespace(id=7, same_node=True, project="p", submit_s=100.0, updated_s=900.0, cpus=1,
                                    memory_gb=0.0, gpus=0, workers=1, priority=1), waited_s=90.0)
    assert (job.queued_s, job.waited_s) == (900.0, 90.0)
