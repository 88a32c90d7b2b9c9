import warnings
from pathlib import Path

import pytest
import torch

from llmos.run import _checkpoint as ckpt


def model_and_optimizer() -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.8, 0.9))
    for _ in range(3):
        model(torch.randn(5, 4)).sum().backward()
        opt.step()
        opt.zero_grad()
    return model, opt


def test_round_trip_restores_model_optimizer_and_rng(tmp_path: Path) -> None:
    model, opt = model_and_optimizer()
    ckpt.save(tmp_path, step=3, model=model, optimizer=opt, state={"epoch": 1, "position": 2}, keep=2)
    expected_next = torch.rand(3)  # the RNG draw right after saving

    fresh, fresh_opt = model_and_optimizer()
    torch.nn.init.zeros_(fresh[0].weight)
    torch.manual_seed(123)
    found = ckpt.latest(tmp_path)
    assert found is not None and found.step == 3 and found.state["position"] == 2
    found.load_model(fresh)
    found.load_optimizer(fresh_opt)
    ckpt.restore_rng(found)
    assert torch.equal(fresh[0].weight, model[0].weight)
    for a, b in zip(opt.state.values(), fresh_opt.state.values(), strict=True):
        assert torch.equal(a["exp_avg_sq"], b["exp_avg_sq"])
    assert fresh_opt.param_groups[0]["betas"] == (0.8, 0.9)
    assert torch.equal(torch.rand(3), expected_next)


def test_keeps_only_the_newest(tmp_path: Path) -> None:
    model, opt = model_and_optimizer()
    for step in (1, 2, 3):
        ckpt.save(tmp_path, step=step, model=model, optimizer=opt, state={}, keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-00000002", "step-00000003"]


@pytest.mark.parametrize("damage", ["flip", "truncate", "no-manifest"])
def test_corrupt_or_torn_checkpoint_is_skipped(tmp_path: Path, damage: str) -> None:
    model, opt = model_and_optimizer()
    ckpt.save(tmp_path, step=1, model=model, optimizer=opt, state={}, keep=3)
    newest = ckpt.save(tmp_path, step=2, model=model, optimizer=opt, state={}, keep=3)
    target = newest / "model.safetensors"
    if damage == "flip":
        data = bytearray(target.read_bytes())
        data[-1] ^= 0xFF
        target.write_bytes(bytes(data))
    elif damage == "truncate":
        target.write_bytes(target.read_bytes()[:10])
    else:
        (newest / "manifest.json").unlink()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        found = ckpt.latest(tmp_path)
    assert found is not None and found.step == 1
    assert any("skipping checkpoint" in str(w.message) for w in caught)


def test_unfinished_temporary_folder_is_ignored(tmp_path: Path) -> None:
    (tmp_path / ".tmp-step-00000009-1").mkdir(parents=True)
    assert ckpt.latest(tmp_path) is None


def test_no_pickle_files_written(tmp_path: Path) -> None:
    model, opt = model_and_optimizer()
    path = ckpt.save(tmp_path, step=1, model=model, optimizer=opt, state={}, keep=1)
    assert {p.suffix for p in path.iterdir()} == {".safetensors", ".json"}
