"""Structured pruning: importance on a constructed model, physical removal, save/load round trips."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from llmos.compress._prune_importance import keep_top, removal_count, taylor_importance
from llmos.models import build, load_trained, save_trained
from llmos.models._pruned import STRUCTURE_KEY, encoder_layers, shrink

LABELS = ["negative", "positive"]
TEXTS = ["the movie was great", "what a boring and tedious film", "i loved the acting", "awful plot"]


def tiny_classifier(heads: int = 4, intermediate: int = 64) -> tuple[torch.nn.Module, object]:
    from transformers import BertConfig, BertForSequenceClassification

    from llmos.models import minilm_path

    torch.manual_seed(0)
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=heads,
                        intermediate_size=intermediate, num_labels=2, hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.0)
    from transformers import AutoTokenizer

    return BertForSequenceClassification(config).eval(), AutoTokenizer.from_pretrained(str(minilm_path()))


def batch_of(tokenizer: object, texts: list[str] = TEXTS) -> dict[str, torch.Tensor]:
    enc = dict(tokenizer(texts, padding=True, return_tensors="pt"))  # type: ignore[operator]
    enc["labels"] = torch.tensor([i % 2 for i in range(len(texts))])
    return enc


def test_removal_count_and_keep_top_are_plain_decisions() -> None:
    assert [removal_count(12, f) for f in (0.3, 0.5, 0.04, 0.96)] == [4, 6, 0, 12]
    scores = [torch.tensor([0.5, 0.1, 0.9, 0.2]), torch.tensor([3.0, 2.0, 1.0, 0.0])]
    assert keep_top(scores, 0.5) == [[0, 2], [0, 1]]
    assert keep_top(scores, 0.25) == [[0, 2, 3], [0, 1, 2]]


def test_importance_ranks_a_silenced_head_and_neuron_last() -> None:
    model, tokenizer = tiny_classifier()
    layers = encoder_layers(model)
    with torch.no_grad():  # head 2 of layer 0 and neuron 7 of layer 1 no longer reach the output
        layers[0].attention.output.dense.weight[:, 2 * 8:3 * 8] = 0
        layers[1].output.dense.weight[:, 7] = 0
    importance = taylor_importance(model, [batch_of(tokenizer)] * 2, "classification")
    assert importance.batches == 2
    assert importance.heads[0][2] == 0 and importance.heads[0].min() == 0 and (importance.heads[0] > 0).sum() == 3
    assert importance.neurons[1][7] == 0 and (importance.neurons[1] > 0).sum() == 63
    kept_heads = keep_top(importance.heads, 0.25)
    assert kept_heads[0] == [0, 1, 3] and len(kept_heads[1]) == 3
    assert 7 not in keep_top(importance.neurons, 1 / 64)[1]


def test_shrink_physically_removes_units_and_the_saved_child_loads_back_equal(tmp_path: Path) -> None:
    model, tokenizer = tiny_classifier()
    before = sum(p.numel() for p in model.parameters())
    batch = {k: v for k, v in batch_of(tokenizer).items() if k != "labels"}
    shrink(model, heads=[[0, 3], [1, 2]], neurons=[list(range(0, 64, 2)), list(range(10))])
    layer0, layer1 = encoder_layers(model)
    assert layer0.attention.self.query.weight.shape == (16, 32)  # 2 heads of 8
    assert layer0.attention.output.dense.weight.shape == (32, 16)
    assert layer0.intermediate.dense.weight.shape == (32, 32) and layer1.output.dense.weight.shape == (32, 10)
    # a head: 8 rows (+ biases) of Q, K, V and 8 columns of the output; a neuron: a row (+ bias) and a column
    removed = 4 * (3 * (8 * 32 + 8) + 32 * 8) + (32 + 54) * (33 + 32)
    assert sum(p.numel() for p in model.parameters()) == before - removed
    assert getattr(model.config, STRUCTURE_KEY) == {"attention_heads": [2, 2], "intermediate_sizes": [32, 10]}
    with torch.no_grad():
        expected = model(**batch).logits
    folder = save_trained(model, tokenizer, tmp_path / "child", task="classification", base="tiny",
                          label_names=LABELS, max_length=32)
    loaded = load_trained(folder).model
    with torch.no_grad():
        assert torch.equal(loaded(**batch).logits, expected)
    rebuilt = build(str(folder), "classification", label_names=LABELS).model.eval()  # what a fine-tune starts from
    with torch.no_grad():
        assert torch.equal(rebuilt(**batch).logits, expected)


def test_heads_are_kept_whole_with_the_right_weights() -> None:
    model, _ = tiny_classifier()
    query = encoder_layers(model)[0].attention.self.query.weight.detach().clone()
    shrink(model, heads=[[1, 3], [0, 1, 2, 3]], neurons=[list(range(64))] * 2)
    kept = encoder_layers(model)[0].attention.self.query.weight
    assert torch.equal(kept, torch.cat([query[8:16], query[24:32]]))


def test_a_damaged_pruned_folder_is_an_error_not_a_silent_reinit(tmp_path: Path) -> None:
    import json

    from llmos.errors import ModelError

    model, tokenizer = tiny_classifier()
    shrink(model, heads=[[0, 1], [0, 1]], neurons=[list(range(32))] * 2)
    folder = save_trained(model, tokenizer, tmp_path / "child", task="classification", base="tiny",
                          label_names=LABELS, max_length=32)
    config = json.loads((folder / "config.json").read_text())
    config[STRUCTURE_KEY]["attention_heads"] = [3, 2]
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelError, match="do not fit"):
        load_trained(folder)


def test_embedding_models_are_scored_pruned_and_reloaded_too(tmp_path: Path) -> None:
    torch.manual_seed(0)
    built = build("tiny-bert", "embedding")
    enc = dict(built.tokenizer(["how do i get a refund", "reset my password", "track my order"], padding=True,
                               return_tensors="pt"))
    batch = {**enc, "pair_input_ids": enc["input_ids"].flip(0), "pair_attention_mask": enc["attention_mask"].flip(0)}
    importance = taylor_importance(built.model, [batch], "embedding")
    shrink(built.model, keep_top(importance.heads, 0.5), keep_top(importance.neurons, 0.5))
    with torch.no_grad():
        expected = built.model(enc["input_ids"], enc["attention_mask"])
    folder = save_trained(built.model, built.tokenizer, tmp_path / "emb", task="embedding", base="tiny-bert",
                          label_names=None, max_length=32)
    loaded = load_trained(folder).model
    assert [layer.intermediate.dense.out_features for layer in encoder_layers(loaded)] == [32, 32]
    with torch.no_grad():
        torch.testing.assert_close(loaded(enc["input_ids"], enc["attention_mask"]), expected)
