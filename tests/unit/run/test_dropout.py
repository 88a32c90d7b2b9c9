"""FastDropout: nn.Dropout's rule from a faster source of random bits, repeatable under torch's seed."""

from __future__ import annotations

import pytest
import torch

from llmos.run._dropout import FastDropout, use_fast_dropout


def test_it_drops_a_share_p_and_scales_the_rest_to_keep_the_mean() -> None:
    torch.manual_seed(0)
    x = torch.ones(200_000)
    y = FastDropout(0.1).train()(x)
    dropped = (y == 0).float().mean().item()
    assert dropped == pytest.approx(0.1, abs=0.003)
    assert torch.allclose(y[y != 0], torch.full_like(y[y != 0], 1 / 0.9), rtol=1e-4)
    assert y.mean().item() == pytest.approx(1.0, abs=0.01)


def test_the_same_torch_seed_draws_the_same_mask_and_another_seed_another() -> None:
    x, drop = torch.randn(4, 7, 33), FastDropout(0.3).train()
    torch.manual_seed(5)
    a = drop(x)
    torch.manual_seed(5)
    b = drop(x)
    c = drop(x)
    assert torch.equal(a, b) and not torch.equal(b, c)


def test_the_gradient_passes_through_the_kept_elements_scaled() -> None:
    torch.manual_seed(1)
    x = torch.randn(64, 16, requires_grad=True)
    y = FastDropout(0.25).train()(x)
    y.sum().backward()
    kept = y.detach() != 0
    assert torch.allclose(x.grad[kept], torch.full_like(x.grad[kept], 1 / 0.75))
    assert torch.all(x.grad[~kept] == 0)


def test_in_eval_mode_and_in_bf16_it_behaves_as_dropout() -> None:
    x = torch.randn(3, 5, dtype=torch.bfloat16)
    assert torch.equal(FastDropout(0.5).eval()(x), x)
    y = FastDropout(0.5).train()(x)
    assert y.dtype == torch.bfloat16


def test_a_model_swaps_its_dropouts_and_keeps_its_weights_and_eval_answers() -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Dropout(0.1),
                                torch.nn.Sequential(torch.nn.Dropout(0.2)), torch.nn.Dropout(0.0))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(2, 4)
    expected = model.eval()(x)
    assert use_fast_dropout(model) == 2  # p=0 is left alone
    assert isinstance(model[1], FastDropout) and isinstance(model[2][0], FastDropout) and model[2][0].p == 0.2
    assert model.state_dict().keys() == before.keys()
    assert torch.equal(model.eval()(x), expected)
