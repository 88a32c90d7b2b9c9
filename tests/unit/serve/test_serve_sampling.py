"""Token choice and stop-string scanning, with literals."""

from __future__ import annotations

import torch

from llmos.serve._sampling import sample_next, scan_stop


def test_temperature_zero_is_greedy_per_row() -> None:
    logits = torch.tensor([[0.1, 3.0, 0.2], [5.0, 0.0, 0.0]])
    assert sample_next(logits, [0.0, 0.0], [1.0, 1.0]).tolist() == [1, 0]


def test_a_tiny_top_p_keeps_only_the_most_likely_token() -> None:
    logits = torch.tensor([[0.0, 1.0, 0.5, 0.9]] * 64)
    gen = torch.Generator().manual_seed(0)
    assert set(sample_next(logits, [1.5] * 64, [0.01] * 64, gen).tolist()) == {1}


def test_top_p_draws_only_from_the_nucleus() -> None:
    # probabilities ~ [0.6, 0.3, 0.1]: top_p 0.8 keeps tokens 0 and 1, never 2
    logits = torch.log(torch.tensor([[0.6, 0.3, 0.1]] * 2000))
    gen = torch.Generator().manual_seed(0)
    drawn = sample_next(logits, [1.0] * 2000, [0.8] * 2000, gen).tolist()
    assert set(drawn) == {0, 1}
    assert 0.55 < drawn.count(0) / 2000 < 0.75  # renormalised 0.6 / 0.9


def test_greedy_and_sampled_rows_mix() -> None:
    logits = torch.tensor([[0.0, 9.0], [9.0, 0.0]])
    out = sample_next(logits, [0.0, 1.0], [1.0, 0.01])
    assert out.tolist() == [1, 0]


def test_scan_stop_cuts_before_the_first_stop_string() -> None:
    assert scan_stop("hello world. next", [".", "xyz"]) == (11, True)
    assert scan_stop("a END b STOP", ["STOP", "END"]) == (2, True)


def test_scan_stop_holds_back_a_tail_that_may_become_a_stop_string() -> None:
    assert scan_stop("hello wor", ["world!"]) == (6, False)  # "wor" may grow into "world!"
    assert scan_stop("hello", ["xyz"]) == (5, False)
    assert scan_stop("", ["a"]) == (0, False)
    assert scan_stop("abc", []) == (3, False)
