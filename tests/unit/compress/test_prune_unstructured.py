"""Unstructured magnitude pruning: the sparsity reached, what is and is not touched, round trips."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from llmos.compress._prune_magnitude import magnitude_prune, prunable_weights
from llmos.models import build, load_trained, save_trained


@pytest.fixture
def tiny_bert() -> object:
    torch.manual_seed(0)
    return build("tiny-bert", "classification", label_names=["neg", "pos"])


@pytest.mark.parametrize("sparsity", [0.1, 0.5, 0.9])
def test_global_magnitude_pruning_reaches_the_target_and_keeps_the_largest(tiny_bert: object, sparsity: float) -> None:
    model = tiny_bert.model  # type: ignore[attr-defined]
    weights = prunable_weights(model)
    assert all(".encoder.layer." in name for name in weights) and len(weights) == 12  # 6 Linear × 2 layers
    before = torch.cat([w.detach().abs().flatten() for w in weights.values()])
    report = magnitude_prune(model, sparsity)
    after = torch.cat([w.detach().flatten() for w in weights.values()])
    assert report.achieved == pytest.approx(sparsity, abs=1e-3)
    assert (after == 0).float().mean().item() == pytest.approx(sparsity, abs=1e-3)
    # one global threshold: every weight kept is at least as large as every weight removed
    assert before[after != 0].min() >= before[after == 0].max()


def test_embeddings_norms_and_classifier_are_left_alone_unless_asked(tiny_bert: object) -> None:
    model = tiny_bert.model  # type: ignore[attr-defined]
    untouched = {n: p.detach().clone() for n, p in model.named_parameters() if ".encoder.layer." not in n
                 or "LayerNorm" in n or n.endswith("bias")}
    magnitude_prune(model, 0.7)
    for name, value in untouched.items():
        assert torch.equal(dict(model.named_parameters())[name], value), name
    magnitude_prune(model, 0.7, classifier=True, embeddings=True)
    assert (model.classifier.weight == 0).any() and (model.bert.embeddings.word_embeddings.weight == 0).any()


def test_works_on_gpt2_conv1d_layers_and_tied_embeddings_count_once() -> None:
    torch.manual_seed(0)
    model = build("tiny-gpt2", "causal-lm").model
    names = prunable_weights(model, classifier=True, embeddings=True)
    assert "transformer.h.0.attn.c_attn.weight" in names
    assert "lm_head.weight" not in names  # tied to the token embeddings, listed under them
    assert magnitude_prune(model, 0.4).achieved == pytest.approx(0.4, abs=1e-3)


def test_pruned_model_saves_and_loads_with_its_zeros(tiny_bert: object, tmp_path: Path) -> None:
    built = tiny_bert
    magnitude_prune(built.model, 0.5)  # type: ignore[attr-defined]
    folder = save_trained(built.model, built.tokenizer, tmp_path / "c", task="classification",  # type: ignore[attr-defined]
                          base="tiny-bert", label_names=["neg", "pos"], max_length=32)
    loaded = load_trained(folder).model
    original = dict(built.model.named_parameters())  # type: ignore[attr-defined]
    for name, value in loaded.named_parameters():
        assert torch.equal(value, original[name]), name
