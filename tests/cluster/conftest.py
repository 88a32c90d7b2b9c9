"""The Ray cluster that every test in tests/cluster shares: a head (no CPUs: the driver's machine) and
worker nodes n1 and n2 (1 CPU each) with their own IP addresses, started once per test run and torn
down after this folder's last test (also on failure or Ctrl-C; a run killed outright leaves processes
and namespaces that the next run removes first). See _testcluster.py."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from tests.cluster._testcluster import TestCluster, start_cluster
from tests.conftest import runtime_folder

WORKERS = ["n1", "n2"]
HERE = Path(__file__).parent

# The GCS checks each node once a second (Ray's default: every 3 s), so a lost node is dead after ~8 s
# instead of ~15 s (measured under load): the node-loss tests wait that much less. A real deployment
# keeps Ray's default.
HEALTH_CHECK_PERIOD_MS = 1000


@pytest.hookimpl(wrapper=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> Iterator[None]:
    """Every test in this folder is slow: it drives a real multi-node Ray cluster. Under pytest-xdist
    they all run on one worker, which starts the cluster once (`--dist loadgroup`).

    Marked before every other hook (pytest-xdist reads the group in its own), checked after them: a
    pytest whose test ids pytest-xdist cannot extend (9.2 with xdist 3.8) left the tests to every
    worker, each starting a cluster of its own on the same cores; refused here, with the fix."""
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.slow)
            item.add_marker(pytest.mark.xdist_group("ray-cluster"))
    result = yield
    if os.environ.get("PYTEST_XDIST_WORKER") and config.getvalue("loadgroup"):
        lost = [item.nodeid for item in items if HERE in item.path.parents and not item.nodeid.endswith("@ray-cluster")]
        if lost:
            raise pytest.UsageError(f"pytest-xdist did not group the Ray cluster tests ({lost[0]}): pytest "
                                    f"{pytest.__version__} with this pytest-xdist; install the pytest that "
                                    "pyproject.toml's dev extra pins (bash scripts/setup).")
    return result


# Package scope: the cluster stops after the folder's last test, not at the end of the run, where its
# daemons would keep polling beside the rest of the suite (~4 CPU s a minute, issue 18.6). Under
# `--dist loadgroup` the folder's tests run one after another on one worker, so it starts once.
@pytest.fixture(scope="package")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestCluster]:
    pytest.importorskip("ray", reason="the cluster tests need Ray: pip install 'llmos[ray]'")
    with pytest.MonkeyPatch.context() as env:  # the nodes' warm fork servers end with the run, as the tests' do
        env.setenv("LLMOS_RUNTIME_DIR", str(runtime_folder(tmp_path_factory)))
        cluster = start_cluster(WORKERS, storage=tmp_path_factory.mktemp("cluster-storage"),
                                health_check_period_ms=HEALTH_CHECK_PERIOD_MS)
    if cluster.mode != "netns":
        warnings.warn(f"test cluster: Ray's one-host test cluster (every node on this host's address), not "
                      f"network namespaces: {cluster.mode_reason}", stacklevel=1)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def ray_driver(ray_cluster: TestCluster) -> Iterator[ModuleType]:
    """This process as the cluster's Ray driver for one test module; disconnected after it, so the next
    module (or a daemon under test) may connect its own way."""
    import ray

    ray.init(address=ray_cluster.address, log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()
