"""A canary's controller and front with real replica processes (stand-in servers): the traffic
split holds its share, a by-hand promotion finishes as a roll, a new version whose replicas cannot
start is rolled back on its own, mirrored copies are compared without the client waiting for them,
and a version whose labels differ is rolled back; no client request fails."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from llmos.deploy._process import default_spawn
from tests.integration._deploy_util import Load, running, standin_spawn, wait_until
from tests.integration.test_deploy_supervisor import Registry, controller, make_job

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]


CLASSIFIER = Path(__file__).with_name("_canary_standin.py")


def classifier_spawn(env_of: dict[str, dict[str, str]]):
    """Stand-in classifiers, each version with its own label and delay (`env_of`: version -> env)."""
    def spawn(argv: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen:
        version = json.loads(Path(argv[-1]).read_text())["model"]
        return default_spawn([sys.executable, str(CLASSIFIER), argv[-1]], {**env, **env_of.get(version, {})},
                             log_path)
    return spawn


def _versions(ctrl) -> Counter[str]:
    return Counter(r.model_version for r in ctrl.status().replicas if r.state == "ready")


def test_the_split_holds_its_share_and_a_promotion_by_hand_rolls_to_the_new_version(tmp_path: Path) -> None:
    registry = Registry()
    ctrl = controller(tmp_path, make_job(replicas={"min": 2, "max": 2}), registry)
    with running(ctrl):
        wait_until(lambda: ctrl.status().ready == 2, 20, "two ready replicas")
        with Load(ctrl.status().front_url + "/work?ms=5", clients=3) as load:
            registry.versions["demo@prod"] = "demo/2"
            ctrl.roll(make_job(replicas={"min": 2, "max": 2},
                               canary={"steps": [25, 100], "interval_s": 3600, "min_requests": 1}))
            wait_until(lambda: _versions(ctrl)["demo/2"] == 1, 20, "the canary's replica")
            load.wait_for_ok(20)  # the front has read the replica's readiness
            seen = len(load.replies)
            load.wait_for_ok(400)
            shares = Counter(r["model"] for r in load.replies[seen:])
            assert ctrl.status().canary.verdict.startswith("step 1 of 2 (25%): watching")
            ctrl.promote()
            wait_until(lambda: ctrl.status().rollout.state == "done", 20, "the roll to the promoted version")
            load.wait_for_ok(20)
        status = ctrl.status()
    assert load.failures() == {}, load.codes
    assert 0.20 <= shares["demo/2"] / sum(shares.values()) <= 0.30, shares
    print(f"canary split at 25%: {shares['demo/2']} of {sum(shares.values())} requests to the new version")
    assert {r.model_version for r in status.replicas} == {"demo/2"} and len(status.replicas) == 2
    assert status.canary.state == "promoted" and "promoted by hand at step 1 (25%)" in status.canary.verdict
    assert [action for action, _ in ctrl.take_audit()] == ["deploy.canary", "deploy.promote"]


def test_a_new_version_whose_replicas_cannot_start_is_rolled_back(tmp_path: Path) -> None:
    plain = standin_spawn()

    def spawn(argv: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen:
        broken = json.loads(Path(argv[-1]).read_text())["model"] == "demo/2"  # as if its weights were corrupt
        return plain(argv, {**env, "STANDIN_EXIT_CODE": "1"} if broken else env, log_path)

    registry = Registry()
    ctrl = controller(tmp_path, make_job(), registry, spawn=spawn)
    with running(ctrl):
        wait_until(lambda: ctrl.status().ready == 1, 20, "the first replica")
        with Load(ctrl.status().front_url + "/work?ms=5", clients=2) as load:
            registry.versions["demo@prod"] = "demo/2"
            ctrl.roll(make_job(canary={"steps": [50, 100], "interval_s": 1, "min_requests": 5}))
            wait_until(lambda: ctrl.status().canary.state == "rolled_back", 30, "the rollback")
            load.wait_for_ok(20)
        status = ctrl.status()
    assert load.failures() == {}, load.codes
    assert {r["model"] for r in load.replies} == {"demo/1"}
    assert "3 replicas of the new version exited before they were ready" in status.canary.verdict
    assert {r.model_version for r in status.replicas} == {"demo/1"}
    assert [action for action, _ in ctrl.take_audit()] == ["deploy.canary", "deploy.rollback"]


def test_copies_are_compared_off_the_clients_path_and_differing_labels_roll_back(tmp_path: Path) -> None:
    # The current version takes 500 ms to answer, the new ones 5 ms: a client that waited for the
    # copy would see the 500 ms.
    spawn = classifier_spawn({"demo/1": {"STANDIN_DELAY_MS": "500"}, "demo/2": {"STANDIN_DELAY_MS": "5"},
                              "demo/3": {"STANDIN_DELAY_MS": "5", "STANDIN_LABEL": "neg"}})
    canary = {"steps": [100], "interval_s": 3600, "min_requests": 10, "max_disagreement": 0.1, "mirror_fraction": 1}
    registry = Registry()
    ctrl = controller(tmp_path, make_job(), registry, spawn=spawn)
    with running(ctrl):
        wait_until(lambda: ctrl.status().ready == 1, 20, "the first replica")
        url = ctrl.status().front_url + "/v1/classify"
        registry.versions["demo@prod"] = "demo/2"
        ctrl.roll(make_job(canary=canary))
        waits_s = []
        with httpx.Client(timeout=30) as client:
            wait_until(lambda: client.post(url, json={"input": "x"}).json()["model"] == "demo/2", 20,
                       "the new version to answer")
            for _ in range(20):
                started = time.perf_counter()
                reply = client.post(url, json={"input": ["a fine film", "dull"]})
                waits_s.append(time.perf_counter() - started)
                assert reply.status_code == 200 and reply.json()["model"] == "demo/2"
        wait_until(lambda: ctrl.status().canary.figures["new"]["compared"] >= 40, 15, "the copies compared")
        good = ctrl.status().canary
        ctrl.rollback()

        registry.versions["demo@prod"] = "demo/3"
        with Load(url, clients=2, json={"input": ["a fine film", "dull"]}) as load:
            wait_until(lambda: _versions(ctrl)["demo/2"] == 0, 20, "the first canary's replica to drain")
            ctrl.roll(make_job(canary=canary))
            wait_until(lambda: ctrl.status().canary.state == "rolled_back", 30, "the rollback of the bad version")
            load.wait_for_ok(10)
        bad = ctrl.status().canary
    assert sorted(waits_s)[10] < 0.25, waits_s  # the median: the new version's 5 ms and the front, not 500 ms
    assert good.state == "watching" and good.figures["new"]["differed"] == 0, good
    assert load.failures() == {}, load.codes
    assert "differ from the current version, above max_disagreement 10.0%" in bad.verdict, bad
    print(f"canary mirror: client median {sorted(waits_s)[10] * 1000:.0f} ms with copies to a 500 ms version; "
          f"{dict(load.codes)} requests while the bad version was tried; {bad.verdict}")


def test_a_failing_version_is_rolled_back_once_its_errors_cross_the_bound(tmp_path: Path) -> None:
    spawn = classifier_spawn({"demo/1": {"STANDIN_DELAY_MS": "20"}, "demo/2": {"STANDIN_STATUS": "500"}})
    registry = Registry()
    ctrl = controller(tmp_path, make_job(), registry, spawn=spawn)
    with running(ctrl):
        wait_until(lambda: ctrl.status().ready == 1, 20, "the first replica")
        with Load(ctrl.status().front_url + "/v1/classify", clients=2, json={"input": "a fine film"}) as load:
            load.wait_for_ok(10)
            registry.versions["demo@prod"] = "demo/2"
            ctrl.roll(make_job(canary={"steps": [10, 100], "interval_s": 3600, "min_requests": 10,
                                       "max_error_rate": 0.05}))
            wait_until(lambda: ctrl.status().canary.state == "rolled_back", 30, "the rollback")
            wait_until(lambda: _versions(ctrl)["demo/2"] == 0 and len(ctrl.status().replicas) == 1, 20,
                       "the failing replica to drain")
            failed_at_verdict = load.codes[500]
            load.wait_for_ok(20)
        status = ctrl.status()
    # Clients saw the new version's failures until the bound could be judged (min_requests of them),
    # plus what it took the verdict to reach the front (a tick and a routes read): none after.
    assert set(load.failures()) == {500} and 10 <= load.codes[500] <= 20, load.codes
    assert load.codes[500] == failed_at_verdict
    assert "error rate 100.0%" in status.canary.verdict and "above max_error_rate 5.0%" in status.canary.verdict
    print(f"canary errors: {dict(load.codes)} requests; {status.canary.verdict}")


def test_a_restarted_controller_resumes_the_canary_with_the_same_replicas(tmp_path: Path) -> None:
    registry = Registry()
    first = controller(tmp_path, make_job(), registry)

    def ticked(ctrl, condition) -> bool:
        ctrl.tick(time.monotonic())
        return condition()

    first.start()
    try:
        wait_until(lambda: ticked(first, lambda: first.status().ready == 1), 20, "the first replica")
        registry.versions["demo@prod"] = "demo/2"
        first.roll(make_job(canary={"steps": [50, 100], "interval_s": 3600, "min_requests": 1}))
        wait_until(lambda: ticked(first, lambda: _versions(first)["demo/2"] == 1), 20, "the canary's replica")
        pids = {r.pid for r in first.status().replicas}
        first.detach()  # as a daemon that is killed: everything keeps running, recorded
    except BaseException:
        first.stop(drain_timeout_s=5)
        raise
    # The daemon stores a canary's job once promoted: a new one starts from the current version's.
    second = controller(tmp_path, make_job(), registry)
    with running(second):
        resumed = second.status()
        second.promote()
        wait_until(lambda: second.status().rollout.state == "done", 20, "the roll to the promoted version")
        final = second.status()
    assert resumed.canary.state == "watching" and (resumed.canary.step, resumed.canary.percent) == (1, 50)
    assert {r.pid for r in resumed.replicas} == pids and resumed.rollout is None  # adopted, nothing drained
    assert any("resumed the canary of demo/2" in e for e in resumed.events), resumed.events
    assert {r.model_version for r in final.replicas} == {"demo/2"} and final.model_version == "demo/2"
