"""Canary promotion on a real control-plane daemon with real `llmos serve` replicas of tiny registered
classifiers, under a steady client load that must see no failed request.

A good new version (the same weights as the current one) is tried on 20% of the traffic, then
100%, and promoted: the old version drains. A bad one (the same weights with its label names
swapped, a model registered with its labels mixed up: every answer differs) is rolled back
automatically on the share of mirrored answers whose label differs from the current version's,
and its replica drains. Each step is in the audit log."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from pathlib import Path

import psutil
import pytest

from tests.integration._deploy_util import Load, wait_until
from tests.integration._util import llmos
from tests.integration.test_control_plane import client, plane  # noqa: F401 (a fixture)
from tests.integration.test_deploy_serve import register_tiny

# Three model loads and two drains: 185 s at load 5, 316 s at load 12-16, 510 s at load 22-25 on a
# 2-core machine that other work kept busy.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

# Short steps: 2 s and 10 requests (and 10 compared answers) each; every canary request is mirrored.
CANARY = ["canary.interval_s=2", "canary.min_requests=10", "canary.max_disagreement=0.2",
          "canary.mirror_fraction=1", "batching.max_wait_ms=1"]


def _deployment(name: str = "tiny") -> dict:
    with client() as c:
        return c.deployment(name)


def _versions(d: dict) -> set[str]:
    return {r["version"] for r in d["replicas"]}


def test_a_good_version_is_promoted_and_a_bad_one_rolled_back_without_a_failed_request(
        plane, llmos_home: Path) -> None:  # noqa: F811
    from llmos.deploy._process import free_port

    assert register_tiny(llmos_home, ["negative", "positive"]) == "1"
    plane()
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1/classify"
    llmos("deploy", "tiny@prod", "--port", str(port), "batching.max_wait_ms=1", timeout_s=120)
    pids: set[int] = set()
    try:
        assert register_tiny(llmos_home, ["negative", "positive"], alias=None) == "2"  # the same weights
        assert register_tiny(llmos_home, ["positive", "negative"], alias=None) == "3"  # labels swapped
        wait_until(lambda: _deployment()["ready"] == 1, 120, "the first replica")
        refused = llmos("deploy", "rollback", "tiny", check=False)
        assert refused.returncode != 0 and "has no canary to roll back" in refused.stdout + refused.stderr
        with Load(url, clients=2, json={"input": ["a fine film", "dull"]}) as load:
            load.wait_for_ok(20)
            began = time.monotonic()
            out = llmos("deploy", "tiny/2", "--name", "tiny", "--port", str(port), "--canary", "20,100", *CANARY).stdout
            assert "takes 20% of the traffic" in out
            wait_until(lambda: (d := _deployment())["rollout"] == "done" and _versions(d) == {"tiny/2"}, 300,
                       "the good version promoted and the old one drained")
            promoted, promoted_s = _deployment(), time.monotonic() - began
            pids |= {r["pid"] for r in promoted["replicas"]}
            assert promoted["canary"]["state"] == "promoted", promoted["canary"]
            load.wait_for_ok(20)
            served_good = load.codes[200]

            began = time.monotonic()
            llmos("deploy", "tiny/3", "--name", "tiny", "--port", str(port), "--canary", "50%", *CANARY)
            wait_until(lambda: _deployment()["canary"]["state"] != "watching", 300, "the bad version's verdict")
            verdict, verdict_s = _deployment()["canary"], time.monotonic() - began
            wait_until(lambda: _versions(_deployment()) == {"tiny/2"}, 60, "the bad version's replica to drain")
            load.wait_for_ok(20)
        print(f"canary: promoted in {promoted_s:.1f} s, rolled back in {verdict_s:.1f} s, {dict(load.codes)} "
              f"requests; verdict: {verdict['verdict']}")
        assert load.failures() == {}, load.codes
        assert served_good > 40 and load.codes[200] > served_good
        assert verdict["state"] == "rolled_back", verdict
        assert "differ from the current version, above max_disagreement 20.0%" in verdict["verdict"]
        assert verdict["figures"]["new"]["compared"] >= 10 and verdict["figures"]["new"]["differed"] >= 10
        # The bad version did answer (its labels are swapped), but never for more than its share.
        answers = Counter(tuple(row["label"] for row in r["data"]) for r in load.replies)
        swapped = load.codes[200] - answers.most_common(1)[0][1]
        assert 0 < swapped < load.codes[200] / 2, answers
        shown = llmos("deploy", "show", "tiny").stdout
        assert "canary    rolled back" in shown and "labels differ" in shown
        with client() as c:
            actions = [row["action"] for row in c.audit(limit=200) if row["target"] == "deployment tiny"]
        for action in ("deploy.canary", "deploy.canary.step", "deploy.promote", "deploy.rollback"):
            assert action in actions, actions
        llmos("undeploy", "tiny")
    finally:
        for pid in pids:
            if psutil.pid_exists(pid):
                os.kill(pid, signal.SIGKILL)
