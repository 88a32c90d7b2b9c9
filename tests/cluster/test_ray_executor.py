"""The Ray executor's view of an attempt's workers, on the real test cluster (tests/cluster/conftest.py).

A daemon SIGKILLed in the middle of a launch (after making the detached worker actors, before starting
their programs) leaves actors that are alive but run nothing. The next daemon must see that attempt as
gone (it is retried), not as running forever; a worker that did start is followed to its exit record.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.cluster._testcluster import TestCluster

pytestmark = [pytest.mark.timeout(300)]


def _worker(ray: ModuleType, name: str) -> Any:  # an actor handle
    from llmos.executor._ray_worker import make_worker

    return make_worker(name, num_cpus=0.25)


def test_workers_made_but_never_started_are_gone_and_started_ones_are_followed(
        ray_cluster: TestCluster, ray_driver: ModuleType) -> None:
    from llmos.executor._ray import RayExecutor

    folder = ray_cluster.storage / f"executor-test-{time.time_ns()}"
    folder.mkdir()
    executor = RayExecutor({})  # a fresh daemon's executor: it launched none of these

    # the launch that died: actors made, no program started
    orphan = {"backend": "ray", "pg": "llmos-901-1", "workers": ["llmos-901-1-0", "llmos-901-1-1"]}
    actors = [_worker(ray_driver, name) for name in orphan["workers"]]
    assert ray_driver.get([a.state.remote() for a in actors], timeout=60) == [(False, None)] * 2
    assert not executor.alive(json.dumps(orphan))
    ended = executor.poll(json.dumps(orphan), folder)
    assert ended is not None and ended.code is None  # no exit known: the attempt is retried, not succeeded
    for name in orphan["workers"]:  # given back to Ray
        deadline = time.monotonic() + 30
        while name in {a["name"] for a in ray_driver.util.list_named_actors(all_namespaces=False)}:
            assert time.monotonic() < deadline, f"{name} still alive"
            time.sleep(0.2)

    # a launch that got through: followed while it runs, then to its exit record
    started = {"backend": "ray", "pg": "llmos-902-1", "workers": ["llmos-902-1-0"]}
    actor = _worker(ray_driver, started["workers"][0])
    ray_driver.get(actor.start.remote([sys.executable, "-c", "import time; time.sleep(3)"], {}, str(folder),
                                      str(folder / "output.log"), str(folder / "exit-0.json")), timeout=60)
    assert executor.alive(json.dumps(started))
    assert executor.poll(json.dumps(started), folder) is None
    deadline = time.monotonic() + 60
    while (result := executor.poll(json.dumps(started), folder)) is None:
        assert time.monotonic() < deadline, "the started worker's exit was never seen"
        time.sleep(0.2)
    assert result.code == 0 and Path(folder / "exit-0.json").is_file()


def test_a_node_lost_after_rank_0_finished_the_run_does_not_fail_it(
        ray_cluster: TestCluster, ray_driver: ModuleType) -> None:
    """Rank 0 saves the model only after every rank's last step: its exit 0 is the run's success, and
    rank 1's node dying afterwards (its actor gone, no exit record) must not send the job to a retry
    that finds a finished run folder. Rank 0 failing with rank 1 gone stays a lost attempt."""
    from llmos.executor._ray import RayExecutor

    executor = RayExecutor({})
    for code, want in ((0, 0), (1, None)):
        folder = ray_cluster.storage / f"executor-test-{time.time_ns()}"
        folder.mkdir()
        (folder / "exit-0.json").write_text(json.dumps({"exit_code": code, "ended_s": 1.5e9}))
        handle = {"backend": "ray", "pg": f"llmos-904-{code + 1}",
                  "workers": [f"llmos-904-{code + 1}-0", f"llmos-904-{code + 1}-1"]}  # no such actors: gone
        result = executor.poll(json.dumps(handle), folder)
        assert result is not None and result.code == want, (code, result)


def test_a_program_runs_at_normal_priority_not_at_ray_s_worker_niceness(
        ray_cluster: TestCluster, ray_driver: ModuleType) -> None:
    """Ray starts its worker processes at nice 15; a training started from one would inherit it and
    lose its core to every Ray process on the node. The executor's actors run their programs at 0."""
    folder = ray_cluster.storage / f"executor-test-{time.time_ns()}"
    folder.mkdir()
    plain = ray_driver.remote(num_cpus=0.25)(lambda: __import__("os").nice(0))
    assert ray_driver.get(plain.remote(), timeout=60) > 0  # what Ray does by default
    actor = _worker(ray_driver, f"llmos-nice-{time.time_ns()}")
    try:
        ray_driver.get(actor.start.remote([sys.executable, "-c", "import os; print(os.nice(0))"], {}, str(folder),
                                          str(folder / "output.log"), str(folder / "exit-0.json")), timeout=60)
        deadline = time.monotonic() + 60
        while not (folder / "exit-0.json").is_file():
            assert time.monotonic() < deadline, "the program never ended"
            time.sleep(0.1)
        assert (folder / "output.log").read_text().strip() == "0"
    finally:
        ray_driver.kill(actor)
