"""Scaling, restarts and rolling updates as one pure rule, stepped through with literals."""

from __future__ import annotations

from llmos.deploy import ReplicaView, reconcile, restart_delay_s, should_abort


def view(rid: str, revision: str, phase: str = "ready", outstanding: int = 0, started: float = 0.0) -> ReplicaView:
    return ReplicaView(rid, revision, phase, outstanding, started)  # type: ignore[arg-type]


def test_fresh_deployment_starts_all_at_once():
    plan = reconcile([], "v1", desired=3)
    assert plan.start == 3 and plan.drain == () and plan.rolled


def test_steady_state_does_nothing():
    plan = reconcile([view("r1", "v1"), view("r2", "v1", "starting")], "v1", desired=2)
    assert plan.start == 0 and plan.drain == ()


def test_dead_replica_is_replaced():
    # r2 died and was reaped: one missing.
    assert reconcile([view("r1", "v1")], "v1", desired=2).start == 1


def test_scale_down_drops_starting_first_then_the_idlest_youngest():
    replicas = [view("r1", "v1", outstanding=0, started=1), view("r2", "v1", outstanding=0, started=5),
                view("r3", "v1", outstanding=2, started=9), view("r4", "v1", "starting", started=10)]
    assert reconcile(replicas, "v1", desired=2).drain == ("r4", "r2")


def test_draining_replicas_are_not_counted_as_capacity():
    plan = reconcile([view("r1", "v1"), view("r2", "v1", "draining")], "v1", desired=2)
    assert plan.start == 1 and plan.drain == ()


def test_rolling_update_steps_with_surge_one():
    # step 1: two old ready -> start one new (desired 2 + surge 1 = 3 live at most)
    step = reconcile([view("r1", "v1"), view("r2", "v1")], "v2", desired=2)
    assert (step.start, step.drain, step.rolled) == (1, (), False)
    # step 2: the new one is still starting -> wait, drain nothing
    step = reconcile([view("r1", "v1"), view("r2", "v1"), view("r3", "v2", "starting")], "v2", desired=2)
    assert (step.start, step.drain) == (0, ())
    # step 3: the new one is ready -> drain the idlest old one; no new start while it drains
    step = reconcile([view("r1", "v1", outstanding=3), view("r2", "v1", outstanding=1), view("r3", "v2")],
                     "v2", desired=2)
    assert (step.start, step.drain) == (0, ("r2",))
    # step 4: r2 is draining -> its cores are still taken
    step = reconcile([view("r1", "v1"), view("r2", "v1", "draining"), view("r3", "v2")], "v2", desired=2)
    assert (step.start, step.drain) == (0, ())
    # step 5: r2 exited -> start the second new one
    step = reconcile([view("r1", "v1"), view("r3", "v2")], "v2", desired=2)
    assert (step.start, step.drain) == (1, ())
    # step 6: second new ready -> drain the last old one
    step = reconcile([view("r1", "v1"), view("r3", "v2"), view("r4", "v2")], "v2", desired=2)
    assert (step.start, step.drain, step.rolled) == (0, ("r1",), False)
    # step 7: only new replicas remain -> rolled
    step = reconcile([view("r3", "v2"), view("r4", "v2")], "v2", desired=2)
    assert (step.start, step.drain, step.rolled) == (0, (), True)


def test_ready_count_never_drops_below_desired_during_a_roll():
    # Simulate a whole roll, 3 replicas, surge 2, new replicas become ready on the next step and drained
    # ones exit on the next step; the ready count must stay >= desired throughout.
    replicas = {f"o{i}": view(f"o{i}", "v1") for i in range(3)}
    seq = 0
    for _ in range(20):
        ready = sum(r.phase == "ready" for r in replicas.values())
        assert ready >= 3
        plan = reconcile(list(replicas.values()), "v2", desired=3, max_surge=2)
        if plan.rolled:
            break
        replicas = {k: view(k, r.revision, "ready" if r.phase == "starting" else r.phase)
                    for k, r in replicas.items() if r.phase != "draining"}
        for rid in plan.drain:
            replicas[rid] = view(rid, replicas[rid].revision, "draining")
        for _ in range(plan.start):
            seq += 1
            replicas[f"n{seq}"] = view(f"n{seq}", "v2", "starting")
    assert plan.rolled and sorted(replicas) == ["n1", "n2", "n3"]


def test_old_replicas_still_starting_are_dropped_at_once():
    plan = reconcile([view("r1", "v1"), view("r2", "v1", "starting")], "v2", desired=1)
    assert plan.drain == ("r2",)


def test_rollback_mid_roll_targets_the_old_revision_again():
    # v2 failed: the target is back to v1 and the v2 replicas are surplus.
    plan = reconcile([view("r1", "v1"), view("r3", "v2", "starting")], "v1", desired=1)
    assert plan.drain == ("r3",) and plan.start == 0


def test_restart_backoff_doubles_and_caps():
    assert [restart_delay_s(n) for n in range(5)] == [0.0, 0.5, 1.0, 2.0, 4.0]
    assert restart_delay_s(30) == 30.0


def test_abort_only_when_the_old_version_still_serves():
    assert should_abort(target_failures=3, old_ready=1)
    assert not should_abort(target_failures=2, old_ready=1)
    assert not should_abort(target_failures=9, old_ready=0)


def test_an_old_replica_not_yet_seen_ready_is_kept_until_enough_others_are_ready():
    # The front may already route to r1 (it learns readiness first): keep it, start the new one.
    plan = reconcile([view("r1", "v1", "starting")], "v2", desired=1)
    assert (plan.start, plan.drain) == (1, ())
    plan = reconcile([view("r1", "v1", "starting"), view("r2", "v2", "starting")], "v2", desired=1)
    assert (plan.start, plan.drain) == (0, ())
    plan = reconcile([view("r1", "v1", "starting"), view("r2", "v2")], "v2", desired=1)
    assert (plan.start, plan.drain) == (0, ("r1",))
    # Beside a ready old one, it holds its cores: the surge budget counts it.
    plan = reconcile([view("o1", "v1"), view("o2", "v1", "starting")], "v2", desired=2)
    assert (plan.start, plan.drain) == (1, ())
