"""Token choice and stop-string scanning, with literals."""

from __future__ import annotations

import pytest
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


def test_choose_penalties_move_off_repeated_tokens() -> None:
    from llmos.serve._sampling import RowSampling, choose

    logits = torch.tensor([[3.0, 2.5, 0.0]] * 3)
    rows = [RowSampling(temperature=0), RowSampling(temperature=0, frequency_penalty=1.0, counts={0: 1}),
            RowSampling(temperature=0, presence_penalty=1.0, counts={0: 5, 1: 1})]
    assert [c.token for c in choose(logits, rows)] == [0, 1, 0]  # 3-1 < 2.5; then 3-1 = 2 > 2.5-1


def test_choose_seeded_rows_repeat_and_logprobs_are_the_models() -> None:
    from llmos.serve._sampling import RowSampling, choose, seeded_generator

    logits = torch.randn(4, 50, generator=torch.Generator().manual_seed(1))

    def draw() -> list[int]:
        rows = [RowSampling(temperature=1.0, generator=seeded_generator(5, j), top_logprobs=3) for j in range(4)]
        return [[c.token for c in choose(logits, rows)] for _ in range(6)]  # type: ignore[union-attr]

    assert draw() == draw()
    first = choose(logits[:1], [RowSampling(temperature=0, top_logprobs=2)])[0]
    want = logits[0].log_softmax(-1)
    assert first.token == int(want.argmax()) and first.logprob == pytest.approx(float(want.max()))
    assert [t for t, _ in first.top] == want.topk(2).indices.tolist()


def test_one_row_that_cannot_be_sampled_fails_alone() -> None:
    from llmos.serve._sampling import RowSampling, choose

    logits = torch.tensor([[1.0, 2.0], [float("nan"), float("nan")], [2.0, 1.0]])
    out = choose(logits, [RowSampling(temperature=0), RowSampling(temperature=1.0), RowSampling(temperature=0)])
    assert out[0].token == 1 and isinstance(out[1], Exception) and out[2].token == 0  # type: ignore[union-attr]
    assert sample_next(torch.tensor([[0.0, 1.0, 0.5]]), [1.0], [1e-300]).tolist() == [1]  # rounds to 0 in float32
