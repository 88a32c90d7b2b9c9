"""Distillation pieces: which teacher layers a student starts from, the student itself, the KL term."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from llmos.compress._distill_student import make_student, spread_layers
from llmos.models import build, load_trained, save_trained
from llmos.run._distill import kl_sum


def test_spread_layers_keeps_the_top_layer_and_spreads_the_rest() -> None:
    assert spread_layers(6, 3) == [1, 3, 5]
    assert spread_layers(12, 4) == [2, 5, 8, 11]
    assert spread_layers(2, 1) == [1]
    assert spread_layers(6, 5) == [0, 1, 3, 4, 5]
    with pytest.raises(ValueError):
        spread_layers(6, 6)


def test_student_has_fewer_layers_copied_from_the_teacher_and_round_trips(tmp_path: Path) -> None:
    torch.manual_seed(0)
    teacher = build("tiny-bert", "classification", label_names=["neg", "pos"])
    student = make_student(teacher.model, [1])
    assert student.config.num_hidden_layers == 1 and len(student.bert.encoder.layer) == 1
    assert teacher.model.config.num_hidden_layers == 2  # the teacher is untouched
    t_sd, s_sd = teacher.model.state_dict(), student.state_dict()
    top = "bert.encoder.layer.{}.output.dense.weight"
    assert torch.equal(s_sd[top.format(0)], t_sd[top.format(1)])
    assert torch.equal(s_sd["classifier.weight"], t_sd["classifier.weight"])
    assert sum(p.numel() for p in student.parameters()) < sum(p.numel() for p in teacher.model.parameters())
    folder = save_trained(student, teacher.tokenizer, tmp_path / "s", task="classification", base="t",
                          label_names=["neg", "pos"], max_length=32)
    batch = dict(teacher.tokenizer(["a fine film", "dull"], padding=True, return_tensors="pt"))
    with torch.no_grad():
        assert torch.equal(load_trained(folder).model(**batch).logits, student.eval()(**batch).logits)


def test_causal_lm_student_renumbers_its_cache_layers() -> None:
    torch.manual_seed(0)
    student = make_student(build("tiny-gpt2", "causal-lm").model, [1])
    assert student.config.n_layer == 1
    assert [m.layer_idx for m in student.modules() if hasattr(m, "layer_idx")] == [0] * len(
        [m for m in student.modules() if hasattr(m, "layer_idx")])
    out = student.generate(torch.tensor([[101, 2023, 2003]]), max_new_tokens=3, do_sample=False)
    assert out.shape == (1, 6)


def test_kl_term_matches_torch_and_is_scaled_by_t_squared() -> None:
    torch.manual_seed(0)
    student, teacher = torch.randn(5, 3), torch.randn(5, 3)
    for t in (1.0, 2.0, 4.0):
        reference = torch.nn.functional.kl_div(torch.log_softmax(student / t, -1), torch.log_softmax(teacher / t, -1),
                                               log_target=True, reduction="sum") * t * t
        torch.testing.assert_close(kl_sum(student, teacher, t), reference)
    assert kl_sum(teacher, teacher, 2.0).abs() < 1e-6
    mask = torch.tensor([True, False, True, False, False])
    torch.testing.assert_close(kl_sum(student, teacher, 1.0, mask), kl_sum(student[mask], teacher[mask], 1.0))


def test_student_of_a_pruned_teacher_keeps_the_structure_of_its_blocks(tmp_path: Path) -> None:
    from llmos.models._pruned import STRUCTURE_KEY, shrink

    torch.manual_seed(0)
    teacher = build("tiny-bert", "classification", label_names=["neg", "pos"])
    shrink(teacher.model, heads=[[0], [0, 1]], neurons=[list(range(20)), list(range(40))])
    student = make_student(teacher.model, [1])
    assert getattr(student.config, STRUCTURE_KEY) == {"attention_heads": [2], "intermediate_sizes": [40]}
    folder = save_trained(student, teacher.tokenizer, tmp_path / "s", task="classification", base="t",
                          label_names=["neg", "pos"], max_length=32)
    assert load_trained(folder).model.bert.encoder.layer[0].intermediate.dense.out_features == 40
