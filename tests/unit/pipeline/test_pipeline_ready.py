"""When a deploy stage is done, on literals of the deployment's view: ready replicas of the new
version (not the old one's), a roll or canary that failed, a deployment that went away, the bound; and
the spec's `ready_timeout_s`, checked."""

from __future__ import annotations

import pytest

from llmos.errors import SpecError
from llmos.pipeline import deploy_readiness, expected_version, log_tail
from llmos.spec import validate_dict


def _view(serving: str = "s/2", replicas: tuple = (("s/2", "starting"),), rollout: str | None = None,
          canary: dict | None = None, min_replicas: int = 1, start_failures: int = 0) -> dict:
    return {"name": "s", "model_version": serving, "url": "http://h:1", "min": min_replicas, "rollout": rollout,
            "canary": canary, "events": ["rolling s/1#a -> s/2#b"], "start_failures": start_failures,
            "replicas": [{"version": v, "state": st} for v, st in replicas]}


def test_ready_once_min_replicas_of_the_new_version_answer() -> None:
    waiting = deploy_readiness(_view(min_replicas=2, replicas=(("s/2", "ready"), ("s/2", "starting"))), "s/2",
                               waited_s=5, timeout_s=60)
    assert waiting.state == "RUNNING" and waiting.reason == "deploying: 1/2 ready (s/2; gives up after 60 s)"
    done = deploy_readiness(_view(min_replicas=2, replicas=(("s/2", "ready"), ("s/2", "ready"))), "s/2",
                            waited_s=5, timeout_s=60)
    assert done.state == "SUCCEEDED" and done.reason == "deployed s (s/2) at http://h:1: 2/2 ready"


def test_old_replicas_that_still_serve_do_not_count() -> None:
    rolling = _view(replicas=(("s/1", "ready"), ("s/2", "starting")), rollout="rolling")
    assert deploy_readiness(rolling, "s/2", waited_s=1, timeout_s=60).state == "RUNNING"


def test_a_failed_roll_a_rolled_back_canary_a_removed_deployment_and_the_bound_fail() -> None:
    failed = deploy_readiness(_view(serving="s/1", replicas=(("s/1", "ready"),), rollout="failed"), "s/2",
                              waited_s=1, timeout_s=60)
    assert failed.state == "FAILED" and "the roll of s to s/2 failed; it still serves s/1" in failed.reason
    canary = {"state": "rolled_back", "to_revision": "s/2#b", "verdict": "error rate 0.2 > 0.01", "percent": 0}
    back = deploy_readiness(_view(serving="s/1", replicas=(("s/1", "ready"),), canary=canary), "s/2",
                            waited_s=1, timeout_s=60)
    assert back.state == "FAILED" and back.reason.endswith("rolled back: error rate 0.2 > 0.01")
    assert deploy_readiness(None, "s/2", waited_s=1, timeout_s=60).state == "FAILED"
    late = deploy_readiness(_view(), "s/2", waited_s=61, timeout_s=60)
    assert late.state == "FAILED" and "s had 0/1 replica(s) of s/2 ready after 60 s (ready_timeout_s)" in late.reason


def test_a_version_whose_replicas_keep_exiting_before_ready_fails_before_the_bound() -> None:
    """Three exits in a row with none ready (the roll rule's count): the stage stops waiting; fewer, or
    a replica of it ready, and it waits on. A canary's or an old version's exits are not the stage's."""
    from llmos.deploy._reconcile import MAX_START_FAILURES

    assert MAX_START_FAILURES == 3
    early = deploy_readiness(_view(start_failures=3), "s/2", waited_s=20, timeout_s=600)
    assert early.state == "FAILED", early
    assert early.reason.startswith("s had 0/1 replica(s) of s/2 ready: they exited before they were ready "
                                   "3 times in a row, so the stage did not wait out its 600 s (ready_timeout_s)")
    assert "the deployment keeps retrying (events: rolling s/1#a -> s/2#b)" in early.reason
    assert deploy_readiness(_view(start_failures=2), "s/2", waited_s=20, timeout_s=600).state == "RUNNING"
    one_up = _view(min_replicas=2, replicas=(("s/2", "ready"), ("s/2", "starting")), start_failures=3)
    assert deploy_readiness(one_up, "s/2", waited_s=20, timeout_s=600).state == "RUNNING"
    canary = {"state": "watching", "to_revision": "s/2#b", "percent": 10, "verdict": ""}
    watched = _view(serving="s/1", replicas=(("s/1", "ready"),), canary=canary, start_failures=3)
    assert deploy_readiness(watched, "s/2", waited_s=20, timeout_s=600).state == "RUNNING"


def test_a_watched_canary_is_waited_for() -> None:
    canary = {"state": "watching", "to_revision": "s/2#b", "percent": 10, "verdict": ""}
    view = _view(serving="s/1", replicas=(("s/1", "ready"), ("s/2", "ready")), canary=canary)
    assert expected_version(view) == "s/2"
    waiting = deploy_readiness(view, "s/2", waited_s=1, timeout_s=60)
    assert waiting.state == "RUNNING" and "canary at 10% of the traffic" in waiting.reason


def test_the_log_tail_is_the_newest_replicas_last_lines() -> None:
    texts = {"front.log": "front\n", "r2.log": "x" * 5000 + "\nloading\nValueError: bad weights\n", "r10.log": "a\nb\n"}
    files = [{"name": n, "size": len(t)} for n, t in texts.items()]
    assert log_tail(files, lambda n, at: texts[n][at:]) == "last lines of r10.log: a | b"
    del texts["r10.log"]
    files = [{"name": n, "size": len(t)} for n, t in texts.items()]
    assert log_tail(files, lambda n, at: texts[n][at:]) == "last lines of r2.log: loading | ValueError: bad weights"
    assert log_tail([{"name": "front.log", "size": 6}], lambda n, at: "") == ""
    texts["r3.log"] = "starting\n"  # still running: the one that exited says why
    files = [{"name": n, "size": len(t)} for n, t in texts.items()]
    assert log_tail(files, lambda n, at: texts[n][at:], running=["r3"]).startswith("last lines of r2.log")


def test_ready_timeout_s_is_a_deploy_stages_field_checked_with_the_rest() -> None:
    spec = {"kind": "pipeline", "name": "p", "stages": [
        {"name": "promote", "promote": {"model": "s/1", "alias": "prod"}, "ready_timeout_s": 5},
        {"name": "deploy", "deploy": {"model": "${stages.promote.model}"}, "ready_timeout_s": -1}]}
    with pytest.raises(SpecError) as err:
        validate_dict(spec)
    said = " ".join(f"{p}: {m}" for p, m in err.value.problems)
    assert "stages.0: ready_timeout_s is for deploy stages only" in said, said
    assert "stages.1.ready_timeout_s" in said, said
    spec["stages"] = spec["stages"][1:]
    spec["stages"][0].update(ready_timeout_s=30, deploy={"model": "s/1"})
    assert validate_dict(spec).stages[0].ready_timeout == 30
    spec["stages"][0].pop("ready_timeout_s")
    assert validate_dict(spec).stages[0].ready_timeout == 600
