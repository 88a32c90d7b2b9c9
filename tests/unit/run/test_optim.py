import pytest
import torch

from llmos.errors import LlmosError
from llmos.run._optim import build_optimizer, build_schedule, precision_for
from llmos.spec import TrainSpec


def lrs(schedule: str, total: int = 100) -> list[float]:
    model = torch.nn.Linear(2, 2)
    cfg = TrainSpec(lr=1.0, schedule=schedule, warmup_ratio=0.1)
    opt = build_optimizer(model, cfg)
    sched = build_schedule(opt, cfg, total)
    out = []
    for _ in range(total):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_warmup_then_decay(kind: str) -> None:
    values = lrs(kind)
    assert values[0] < values[5] < values[9]
    assert max(values) == pytest.approx(1.0, abs=0.01)
    assert values[-1] < 0.05


def test_constant_after_warmup() -> None:
    assert lrs("constant")[50] == 1.0


def test_no_weight_decay_on_biases() -> None:
    opt = build_optimizer(torch.nn.Linear(3, 3), TrainSpec(weight_decay=0.1))
    decayed, plain = opt.param_groups
    assert decayed["weight_decay"] == 0.1 and [p.ndim for p in decayed["params"]] == [2]
    assert plain["weight_decay"] == 0.0 and [p.ndim for p in plain["params"]] == [1]


def test_fp16_needs_cuda() -> None:
    with pytest.raises(LlmosError, match="fp16 needs a CUDA device"):
        precision_for("fp16", torch.device("cpu"))
    assert precision_for("fp32", torch.device("cpu")) == (None, False)
    assert precision_for("bf16", torch.device("cpu")) == (torch.bfloat16, False)


@pytest.mark.parametrize("name", ["adamw", "sgd"])
def test_the_fused_update_is_used_and_matches_the_reference_loop(name: str) -> None:
    torch.manual_seed(0)
    fused_model, loop_model = torch.nn.Linear(8, 4), torch.nn.Linear(8, 4)
    loop_model.load_state_dict(fused_model.state_dict())
    cfg = TrainSpec(optimizer=name, lr=0.01, weight_decay=0.1)
    fused = build_optimizer(fused_model, cfg)
    assert all(group["fused"] for group in fused.param_groups)
    groups = [{"params": [loop_model.weight], "weight_decay": 0.1}, {"params": [loop_model.bias], "weight_decay": 0.0}]
    reference = (torch.optim.SGD(groups, lr=0.01, momentum=cfg.momentum, foreach=False) if name == "sgd"
                 else torch.optim.AdamW(groups, lr=0.01, foreach=False))
    x = torch.randn(16, 8)
    for _ in range(5):
        for model, opt in ((fused_model, fused), (loop_model, reference)):
            opt.zero_grad()
            model(x).square().mean().backward()
            opt.step()
    torch.testing.assert_close(fused_model.state_dict(), loop_model.state_dict(), rtol=1e-5, atol=1e-6)
