"""Least-outstanding replica choice and the retry rule, as pure functions."""

from __future__ import annotations

from llmos.deploy import Candidate, pick_replica, retry_allowed


def test_picks_the_fewest_outstanding():
    candidates = [Candidate("r1", True, 3), Candidate("r2", True, 1), Candidate("r3", True, 2)]
    assert pick_replica(candidates) == "r2"


def test_skips_unroutable_and_excluded():
    candidates = [Candidate("r1", False, 0), Candidate("r2", True, 5), Candidate("r3", True, 1)]
    assert pick_replica(candidates) == "r3"
    assert pick_replica(candidates, exclude=frozenset({"r3"})) == "r2"
    assert pick_replica(candidates, exclude=frozenset({"r2", "r3"})) is None


def test_none_when_nothing_is_ready():
    assert pick_replica([]) is None
    assert pick_replica([Candidate("r1", False, 0)]) is None


def test_ties_go_to_the_least_used_then_the_id():
    candidates = [Candidate("r2", True, 0, dispatched=7), Candidate("r1", True, 0, dispatched=9),
                  Candidate("r3", True, 0, dispatched=7)]
    assert pick_replica(candidates) == "r2"


def test_idle_load_spreads_round_robin():
    dispatched = {"r1": 0, "r2": 0, "r3": 0}
    order = []
    for _ in range(6):
        chosen = pick_replica([Candidate(r, True, 0, n) for r, n in dispatched.items()])
        dispatched[chosen] += 1
        order.append(chosen)
    assert order == ["r1", "r2", "r3", "r1", "r2", "r3"]


def test_connect_failures_retry_until_the_attempt_cap():
    assert retry_allowed("connect", attempt=1, no_response_retries=0)
    assert retry_allowed("connect", attempt=2, no_response_retries=1)
    assert not retry_allowed("connect", attempt=3, no_response_retries=0)


def test_a_request_whose_replica_died_is_retried_once():
    assert retry_allowed("no_response", attempt=1, no_response_retries=0)
    assert not retry_allowed("no_response", attempt=2, no_response_retries=1)
