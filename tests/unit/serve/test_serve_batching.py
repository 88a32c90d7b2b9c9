"""Batch formation and Retry-After as pure functions, with literals: no clock, no threads, no model."""

from __future__ import annotations

import pytest

from llmos.serve import BatchDecision, BatchPolicy, Waiting, form_batch, retry_after_s

POLICY = BatchPolicy(max_batch_size=4, max_batch_tokens=64, max_wait_ms=10)


def q(*items: tuple[float, int]) -> list[Waiting]:
    return [Waiting(arrived_s=a, n_tokens=n) for a, n in items]


def test_empty_queue_sleeps_until_woken() -> None:
    assert form_batch([], now_s=5.0, policy=POLICY) == BatchDecision(take=(), wait_s=None)


def test_a_young_partial_batch_waits_for_the_rest_of_max_wait() -> None:
    decision = form_batch(q((1.000, 8), (1.002, 8)), now_s=1.004, policy=POLICY)
    assert decision.take == ()
    assert abs(decision.wait_s - 0.006) < 1e-9


def test_the_oldest_input_at_max_wait_sends_what_is_there() -> None:
    assert form_batch(q((1.000, 8), (1.002, 8)), now_s=1.010, policy=POLICY).take == (0, 1)


def test_a_full_batch_goes_at_once_and_leaves_the_rest() -> None:
    decision = form_batch(q(*[(1.0 + i / 1000, 8) for i in range(6)]), now_s=1.001, policy=POLICY)
    assert decision.take == (0, 1, 2, 3)


def test_inputs_of_similar_length_are_grouped_with_the_oldest() -> None:
    # oldest has 10 tokens; the 30-token inputs would triple the padded cost
    queue = q((1.0, 10), (1.001, 30), (1.002, 9), (1.003, 30), (1.004, 11), (1.005, 10))
    assert form_batch(queue, now_s=1.02, policy=POLICY).take == (0, 2, 4, 5)


def test_the_token_budget_counts_padding_and_fills_the_batch() -> None:
    # 16 tokens x 4 = 64 fits; a fifth input cannot join anyway (size), and a 40-token one breaks the budget
    queue = q((1.0, 16), (1.001, 40), (1.002, 16))
    decision = form_batch(queue, now_s=1.001, policy=POLICY)
    assert decision.take == (0, 2)  # full: the 40-token input cannot join, so waiting gains nothing


def test_an_input_above_the_budget_still_runs_alone() -> None:
    assert form_batch(q((1.0, 500), (1.0, 4)), now_s=1.0, policy=POLICY).take == (0,)


def test_batch_size_one_never_waits() -> None:
    single = BatchPolicy(max_batch_size=1, max_batch_tokens=64, max_wait_ms=50)
    assert form_batch(q((1.0, 8)), now_s=1.0, policy=single).take == (0,)


def test_the_oldest_input_is_always_taken_so_nothing_starves() -> None:
    queue = q((1.0, 60), *[(1.0 + i / 1000, 2) for i in range(1, 9)])
    assert 0 in form_batch(queue, now_s=1.05, policy=POLICY).take


def test_retry_after_is_the_time_to_work_off_the_queue_in_whole_seconds() -> None:
    assert retry_after_s(outstanding=100, items_per_s=40.0) == 3
    assert retry_after_s(outstanding=1, items_per_s=1000.0) == 1  # at least one second
    assert retry_after_s(outstanding=10_000, items_per_s=1.0) == 60  # capped
    assert retry_after_s(outstanding=5, items_per_s=0.0) == 1  # nothing measured yet


LINGER = BatchPolicy(max_batch_size=4, max_batch_tokens=64, max_wait_ms=10, linger_ms=50)


def test_after_a_pass_a_partial_batch_lingers_while_inputs_keep_arriving() -> None:
    # queued during the pass that ended at 2.000 (so past max_wait); answered clients come back
    queue = q((1.90, 8), (1.95, 8))
    assert form_batch(queue, now_s=2.004, policy=LINGER, pass_end_s=2.0).wait_s == pytest.approx(0.006)
    queue += q((2.006, 8))  # one came back: the quiet window restarts from it
    assert form_batch(queue, now_s=2.007, policy=LINGER, pass_end_s=2.0).wait_s == pytest.approx(0.009)
    queue += q((2.012, 8))  # the batch is full: it goes at once
    assert form_batch(queue, now_s=2.012, policy=LINGER, pass_end_s=2.0).take == (0, 1, 2, 3)


def test_lingering_ends_after_a_quiet_max_wait_or_at_linger_ms() -> None:
    queue = q((1.90, 8), (1.95, 8))
    assert form_batch(queue, now_s=2.010, policy=LINGER, pass_end_s=2.0).take == (0, 1)  # nothing came in 10 ms
    steady = q((1.90, 8), (2.041, 8))  # still arriving, but 50 ms after the pass the linger is over
    assert form_batch(steady, now_s=2.048, policy=LINGER, pass_end_s=2.0).wait_s == pytest.approx(0.002)
    assert form_batch(steady, now_s=2.050, policy=LINGER, pass_end_s=2.0).take == (0, 1)


def test_without_linger_or_a_previous_pass_the_old_rule_holds() -> None:
    queue = q((1.90, 8), (2.005, 8))
    assert form_batch(queue, now_s=2.006, policy=POLICY, pass_end_s=2.0).take == (0, 1)  # linger_ms 0
    assert form_batch(queue, now_s=2.006, policy=LINGER).take == (0, 1)  # no pass yet
    # a young oldest input still waits out max_wait_ms first, lingering or not
    assert form_batch(q((2.001, 8)), now_s=2.002, policy=LINGER, pass_end_s=2.0).wait_s == pytest.approx(0.009)
    no_wait = BatchPolicy(max_batch_size=4, max_batch_tokens=64, max_wait_ms=0, linger_ms=50)
    assert form_batch(queue, now_s=2.006, policy=no_wait, pass_end_s=2.0).take == (0, 1)  # max_wait 0: never


def test_length_buckets_split_a_mixed_batch_where_padding_costs_more_than_a_call() -> None:
    from llmos.serve._batching import length_buckets

    # 4 short and 2 long: one call pads the shorts to 60 (6 x 60 = 360 positions); two calls run
    # 4 x 8 + 2 x 60 = 152 positions plus one more call's 48.
    assert length_buckets([8, 60, 7, 8, 60, 6], call_tokens=48) == [[5, 2, 0, 3], [1, 4]]
    # Close lengths stay together: a second call would save less padding than it costs.
    assert length_buckets([20, 22, 24, 21], call_tokens=48) == [[0, 3, 1, 2]]
    # Calls are free: every distinct length gets its own call; very dear: one call.
    assert length_buckets([5, 9, 5, 30], call_tokens=0) == [[0, 2], [1], [3]]
    assert length_buckets([5, 9, 5, 30], call_tokens=10_000) == [[0, 2, 1, 3]]
    assert length_buckets([]) == [] and length_buckets([12]) == [[0]]


def test_length_buckets_are_never_dearer_than_one_padded_call() -> None:
    import random

    from llmos.serve._batching import length_buckets

    rng = random.Random(0)
    for _ in range(200):
        lengths = [rng.randint(3, 120) for _ in range(rng.randint(1, 40))]
        calls = length_buckets(lengths, call_tokens=48)
        assert sorted(i for call in calls for i in call) == list(range(len(lengths)))
        cost = sum(48 + len(call) * max(lengths[i] for i in call) for call in calls)
        assert cost <= 48 + len(lengths) * max(lengths)
