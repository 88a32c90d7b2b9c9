"""Cluster mode end to end on a real Ray cluster (tests/cluster/conftest.py): a real daemon started
with `llmos up --ray HEAD --storage FOLDER`, real DDP workers on two nodes with their own addresses,
a node lost mid-training, the daemon SIGKILLed while its workers run.

Each node offers 2 CPUs to Ray (there are 2 real cores in all, so every figure here is about
correctness, not speed: benchmarks/cluster.py measures speed).
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests._mlflow_server import MlflowServer
from tests.cluster._testcluster import TestCluster
from tests.integration._util import llmos, weights, write_job

pytestmark = [pytest.mark.timeout(600)]


def wait_for(check: Callable[[], object], timeout_s: float = 180, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


class Plane:
    """A control plane on the test cluster, in its own LLMOS_HOME."""

    def __init__(self, cluster: TestCluster, home: Path, tracking: str) -> None:
        self.cluster, self.home, self.tracking = cluster, home, tracking
        self.storage = cluster.storage / "llmos"

    def up(self) -> dict:
        llmos("up", "--port", "0", "--ray", self.cluster.address, "--storage", str(self.storage),
              "--tracking", self.tracking, home=self.home, timeout_s=240)
        return json.loads((self.home / "control" / "daemon.json").read_text())

    def cli(self, *args: str, check: bool = True, timeout_s: float = 120):
        return llmos(*args, home=self.home, check=check, timeout_s=timeout_s)

    def submit(self, spec: Path, *overrides: str, priority: str = "normal") -> int:
        out = self.cli("submit", str(spec), *overrides, "--priority", priority).stdout
        return int(out.split("submitted job ")[1].split()[0])

    def job(self, job_id: int) -> dict:
        """The job as `llmos jobs show --json` prints it, asked over the REST API from this process:
        the tests poll it several times a second, and a CLI process per poll costs ~0.4 s of CPU."""
        from llmos.api import Client

        info = json.loads((self.home / "control" / "daemon.json").read_text())
        with Client(info["url"], (self.home / "control" / "admin.token").read_text().strip()) as client:
            return client.job(job_id).to_dict()

    def state(self, job_id: int) -> str:
        return self.job(job_id)["state"]

    def down(self) -> None:
        """`llmos down`, then SIGKILL the daemon if it is still there (a test may have left it stuck)."""
        import psutil

        self.cli("down", "--timeout-s", "60", check=False, timeout_s=90)
        info = self.home / "control" / "daemon.json"
        if info.exists() and psutil.pid_exists(pid := json.loads(info.read_text())["pid"]):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def plane(ray_cluster: TestCluster, tmp_path_factory: pytest.TempPathFactory, mlflow_server: MlflowServer
          ) -> Iterator[Plane]:
    """The daemon of these tests, with the team's MLflow server (PostgreSQL, proxied artifacts) at the
    address the nodes reach it at."""
    p = Plane(ray_cluster, tmp_path_factory.mktemp("cluster-home"),
              tracking=f"http://{ray_cluster.head_ip}:{mlflow_server.port}")
    p.up()
    try:
        yield p
    finally:
        p.down()


@pytest.fixture(scope="module")
def data(ray_cluster: TestCluster, sentiment_csv: tuple[Path, Path]) -> tuple[Path, Path]:
    """The sentiment set on the storage every node sees."""
    folder = ray_cluster.storage / "data"
    folder.mkdir(exist_ok=True)
    copies = []
    for path in sentiment_csv:
        (folder / path.name).write_text(path.read_text())
        copies.append(folder / path.name)
    return copies[0], copies[1]


def ddp_job(folder: Path, data: tuple[Path, Path], name: str, epochs: int = 2) -> Path:
    """tiny-bert on 2 workers of one thread: 25 steps an epoch (200 rows / (2 workers x batch 4)), a
    checkpoint every 5 steps, no tracking."""
    train, test = data
    return write_job(folder / name, f"name: {name}\nmodel: {{name: tiny-bert, max_length: 32}}\n"
                                    f"data: {{train: {train}, eval: {test}}}\n"
                                    f"train: {{epochs: {epochs}, batch_size: 4, lr: 0.005, log_every_steps: 5, "
                                    "num_threads: 1}\ncheckpoint: {every_steps: 5}\ntracking: {enabled: false}\n"
                                    "resources: {procs: 1, nodes: 2, cpus_per_proc: 1}\n")


@pytest.fixture(scope="module")
def two_local_processes(data: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The weights of `ddp_job` run as 2 local processes (torchrun on this machine), once a module."""
    folder = tmp_path_factory.mktemp("local-ddp")
    llmos("train", str(ddp_job(folder, data, "local")), f"output={folder / 'run'}", "resources.nodes=1",
          "resources.procs=2", home=folder / "home", timeout_s=300)
    return weights(folder / "run")


def assert_same_weights(got: dict, want: dict) -> None:
    import torch

    assert got.keys() == want.keys()
    for name in want:  # float tolerance: gloo's all-reduce order is the only difference
        torch.testing.assert_close(got[name], want[name], rtol=1e-4, atol=1e-5, msg=name)


def sleeper(folder: Path, name: str, seconds: float, cpus: int) -> Path:
    return write_job(folder / name, json.dumps({"kind": "command", "name": name, "run": [
        "python3", "-c", f"import time; time.sleep({seconds})"], "resources": {"cpus": cpus}}))


def held(folder: Path, name: str, release: Path, cpus: int) -> Path:
    """A job that runs until `release` exists (at most 10 minutes): however slow the machine, it is
    still running when the test needs it to be."""
    wait = (f"import os, time\nt = time.time()\nwhile not os.path.exists({str(release)!r}) and time.time() - t < 600:\n"
            "    time.sleep(0.2)")
    return write_job(folder / name, json.dumps({"kind": "command", "name": name, "run": ["python3", "-c", wait],
                                                "resources": {"cpus": cpus}}))


def test_the_inventory_is_ray_s_nodes(plane: Plane, ray_cluster: TestCluster) -> None:
    status = json.loads(plane.cli("status", "--json").stdout)
    nodes = status["inventory"]["nodes"]
    assert status["inventory"]["backend"] == "ray"
    assert sorted(n["address"] for n in nodes) == sorted(ray_cluster.nodes.values())  # the head offers no CPUs
    assert all(n["cpus"] == 2 for n in nodes)
    assert "10.77." in plane.cli("top", "--once").stdout or ray_cluster.mode != "netns"


def test_ddp_on_two_nodes_waits_for_room_then_matches_two_local_processes(
        plane: Plane, ray_cluster: TestCluster, data: tuple[Path, Path], tmp_path: Path,
        two_local_processes: dict) -> None:
    # Each node's 2 CPUs held by a sleeper: the 2-node gang (2 x 2 CPUs) waits for both.
    hogs = [plane.submit(sleeper(tmp_path, f"hog{i}", 600, 2)) for i in range(2)]
    wait_for(lambda: all(plane.state(h) == "RUNNING" for h in hogs), what="both nodes held")
    gang = plane.submit(ddp_job(tmp_path, data, "gang"), "resources.cpus_per_proc=2")
    time.sleep(3)
    assert plane.state(gang) == "QUEUED"
    plane.cli("cancel", str(hogs[0]))
    time.sleep(3)
    assert plane.state(gang) == "QUEUED"  # one free node is not enough for a gang of two 2-CPU workers
    plane.cli("cancel", str(hogs[1]))
    wait_for(lambda: plane.state(gang) == "SUCCEEDED", what="the 2-node run")

    job = plane.job(gang)
    assert len(set(job["placement"]["nodes"])) == 2
    # The launch (placement group, actors, programs: seconds) runs off the scheduling loop: the
    # attempt is recorded as running at once, and the loop went on meanwhile.
    at = {t["to"]: t["at_s"] for t in job["transitions"] if t["attempt"] == 1}
    assert at["RUNNING"] - at["STARTING"] < 1.0, job["transitions"]
    if ray_cluster.mode == "netns":
        assert sorted(job["placement"]["addresses"]) == sorted(ray_cluster.nodes.values())
    attempt = plane.storage / "jobs" / str(gang) / "attempt-1"
    assert (attempt / "worker-0.log").is_file() and (attempt / "worker-1.log").is_file()

    assert_same_weights(weights(Path(job["run_dir"])), two_local_processes)


def test_a_worker_on_another_node_logs_and_registers_through_the_tracking_server(
        plane: Plane, data: tuple[Path, Path], tmp_path: Path, mlflow_server: MlflowServer) -> None:
    train, test = data
    spec = write_job(tmp_path / "tracked", f"name: tracked\nmodel: {{name: tiny-bert, max_length: 32}}\n"
                                           f"data: {{train: {train}, eval: {test}}}\n"
                                           "train: {epochs: 1, batch_size: 16, max_steps: 4, num_threads: 1}\n"
                                           "register: {name: cluster-tracked}\nresources: {cpus_per_proc: 1}\n")
    job_id = plane.submit(spec)
    wait_for(lambda: plane.state(job_id) in ("SUCCEEDED", "FAILED"), what="the tracked run")
    assert plane.state(job_id) == "SUCCEEDED", plane.cli("logs", str(job_id)).stdout
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_server.url, registry_uri=mlflow_server.url)
    (version,) = client.search_model_versions("name='cluster-tracked'")
    assert version.source.startswith(("models:/", "mlflow-artifacts:")) or "mlflow-artifacts" in version.source
    assert any(mlflow_server.artifacts.rglob("model.safetensors"))  # the bytes went to the server, over HTTP
    assert not (plane.storage / "home" / "mlflow.db").exists()  # nothing tracked on the storage instead


def test_a_lost_node_is_retried_from_the_checkpoint_and_ends_with_the_same_weights(
        plane: Plane, ray_cluster: TestCluster, data: tuple[Path, Path], tmp_path: Path,
        two_local_processes: dict) -> None:
    job_id = plane.submit(ddp_job(tmp_path, data, "lossy"))
    wait_for(lambda: plane.job(job_id).get("run_dir"), what="the run folder")
    job = plane.job(job_id)
    rank1, checkpoints = job["placement"]["nodes"][1], Path(job["run_dir"]) / "checkpoints"
    # looked at on the storage, not through the CLI: the node must die while the run still trains
    wait_for(lambda: list(checkpoints.glob("step-*")), what="a checkpoint")
    victim = next(name for name, node_id in ray_cluster.node_ids().items() if node_id == rank1)
    dead_after_s = ray_cluster.kill_node(victim)
    try:
        wait_for(lambda: plane.state(job_id) in ("SUCCEEDED", "FAILED"), timeout_s=300, what="the resumed run")
        job = plane.job(job_id)
        assert job["state"] == "SUCCEEDED", job
        # The attempt lost with the node failed; a retry placed before Ray declared the node dead is not
        # placed (and counted); the last one resumed from the checkpoint on the remaining node.
        assert job["attempt"] >= 2 and job["failures"] >= 1
        assert rank1 not in job["placement"]["nodes"]  # only the remaining node
        assert_same_weights(weights(Path(job["run_dir"])), two_local_processes)
    finally:
        ray_cluster.start_node(victim)
    print(f"node reported dead {dead_after_s:.1f} s after its raylet was killed")


def test_a_restarted_daemon_adopts_running_workers_and_each_job_completes_once(
        plane: Plane, tmp_path: Path) -> None:
    release = tmp_path / "release"
    job_id = plane.submit(held(tmp_path, "steady", release, 1))
    # RUNNING is recorded when the launch begins; the program runs once its worker opened the log (a
    # daemon killed before that leaves a launch that is retried: tests/cluster/test_ray_executor.py)
    started = plane.storage / "jobs" / str(job_id) / "attempt-1" / "output.log"
    wait_for(lambda: plane.state(job_id) == "RUNNING" and started.exists(), what="the job to run")
    pid = json.loads((plane.home / "control" / "daemon.json").read_text())["pid"]
    os.kill(pid, signal.SIGKILL)
    time.sleep(1)
    plane.up()
    log = (plane.home / "control" / "daemon.log").read_text()
    assert f"job {job_id} attempt 1: process survived, adopted" in log
    release.touch()
    wait_for(lambda: plane.state(job_id) == "SUCCEEDED", what="the adopted job to finish")
    job = plane.job(job_id)
    assert job["attempt"] == 1 and job["failures"] == 0


def test_preemption_reaches_every_worker_which_checkpoint_and_resume(
        plane: Plane, data: tuple[Path, Path], tmp_path: Path) -> None:
    # 3 epochs (75 steps): the preemption lands mid-run, not while the run is already ending.
    low = plane.submit(ddp_job(tmp_path, data, "low", epochs=3), "resources.cpus_per_proc=2", priority="low")
    wait_for(lambda: plane.state(low) == "RUNNING" and list(
        (Path(plane.job(low)["run_dir"]) / "checkpoints").glob("step-*")), what="the low job's first checkpoint")
    high = plane.submit(sleeper(tmp_path, "urgent", 1, 2), priority="high")
    wait_for(lambda: plane.state(high) == "SUCCEEDED", what="the high job")
    wait_for(lambda: plane.state(low) == "SUCCEEDED", timeout_s=300, what="the low job to resume and finish")
    job = plane.job(low)
    assert job["attempt"] == 2 and job["failures"] == 0
    first = plane.storage / "jobs" / str(low) / "attempt-1"
    # Every worker got the SIGTERM: both stop at the same step (the first to see its signal tells the
    # other) and checkpoint, then exit 75; a worker whose own signal lands after it has left the loop
    # dies of it (-15) on its way out, the checkpoint already written.
    codes = sorted(json.loads(p.read_text())["exit_code"] for p in first.glob("exit-*.json"))
    assert len(codes) == 2 and set(codes) <= {75, -signal.SIGTERM} and 75 in codes, codes
    assert "checkpoint written" in (first / "worker-0.log").read_text()
