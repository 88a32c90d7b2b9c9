"""The pruning and distillation recipes run against a real RecipeContext: a tiny parent folder, the
job's data loaded by the compression pipeline's own loader, children that load back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from llmos.compress._recipe import Parent, RecipeContext
from llmos.models import build, load_trained, save_trained
from llmos.models._pruned import encoder_layers

LABELS = ["negative", "positive"]


@pytest.fixture(scope="module")
def parent_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    built = build("tiny-bert", "classification", label_names=LABELS)  # for its tokenizer
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=4, num_attention_heads=4,
                        intermediate_size=64, num_labels=2, id2label=dict(enumerate(LABELS)))
    return save_trained(BertForSequenceClassification(config), built.tokenizer,
                        tmp_path_factory.mktemp("parent") / "model", task="classification", base="tiny-bert",
                        label_names=LABELS, max_length=32)


def context(tmp_path: Path, parent_dir: Path, recipe: str, files: tuple[Path, Path], **job: Any) -> tuple[Any, Any]:
    from llmos.compress._data import load_data
    from llmos.spec._compress import CompressJob
    from llmos.tracking import NullTracker

    parent = Parent(name="sentiment", version="1", folder=parent_dir,
                    info=json.loads((parent_dir / "llmos_model.json").read_text()),
                    config=json.loads((parent_dir / "config.json").read_text()))
    spec = CompressJob.model_validate({"model": "sentiment/1", "recipe": recipe, "eval": str(files[1]),
                                       "train": str(files[0]), **job})
    data = load_data(spec, parent, load_trained(parent_dir).tokenizer)
    (tmp_path / "out").mkdir(parents=True)
    (tmp_path / "work").mkdir()
    ctx = RecipeContext(parent=parent, job=spec, label=spec.recipe[0].label, out_dir=tmp_path / "out",
                        work_dir=tmp_path / "work", data=data, tracker=NullTracker(), note=lambda _: None)
    params = spec.recipe[0].typed_params()
    from llmos.compress._recipes import get_recipe

    recipe_ = get_recipe(spec.recipe[0].name)
    recipe_.check(parent, params, spec)
    return recipe_, (ctx, params)


def outputs(folder: Path, texts: list[str]) -> torch.Tensor:
    built = load_trained(folder)
    with torch.no_grad():
        return built.model(**built.tokenizer(texts, padding=True, return_tensors="pt")).logits


def test_prune_structured_child_has_fewer_heads_and_neurons_and_records_them(
        tmp_path: Path, parent_dir: Path, sentiment_csv: tuple[Path, Path]) -> None:
    recipe, (ctx, params) = context(tmp_path, parent_dir, "prune-structured:heads=0.5,ffn=0.25", sentiment_csv)
    child = recipe.run(ctx, params)
    model = load_trained(child).model
    assert [layer.attention.self.query.out_features for layer in encoder_layers(model)] == [16] * 4  # 2 heads of 8
    assert [layer.intermediate.dense.out_features for layer in encoder_layers(model)] == [48] * 4
    info = json.loads((child / "llmos_model.json").read_text())
    assert info["structure"] == {"attention_heads": [2] * 4, "intermediate_sizes": [48] * 4}
    assert info["parameters"]["child"] == sum(p.numel() for p in model.parameters()) < info["parameters"]["parent"]
    assert info["recipe"] == {"name": "prune-structured", "params": params.model_dump(mode="json")}
    assert info["parent"] == {"name": "sentiment", "version": "1", "format": "hf-safetensors"}
    assert info["format"] == "hf-safetensors" and info["label_names"] == LABELS
    assert "llmos_structure" not in (parent_dir / "config.json").read_text()  # the parent is untouched
    # the same parent and data give the same child
    again, (ctx2, _) = context(tmp_path / "again", parent_dir, "prune-structured:heads=0.5,ffn=0.25", sentiment_csv)
    assert torch.equal(outputs(again.run(ctx2, params), ["a fine film"]), outputs(child, ["a fine film"]))


def test_prune_unstructured_child_reaches_its_sparsity_and_says_it_is_not_faster(
        tmp_path: Path, parent_dir: Path, sentiment_csv: tuple[Path, Path]) -> None:
    recipe, (ctx, params) = context(tmp_path, parent_dir, "prune-unstructured:sparsity=0.6", sentiment_csv)
    parent_weights = (parent_dir / "model.safetensors").read_bytes()
    child = recipe.run(ctx, params)
    info = json.loads((child / "llmos_model.json").read_text())
    assert info["sparsity"]["achieved"] == pytest.approx(0.6, abs=1e-3)
    assert "no faster" in info["note"]
    layer = encoder_layers(load_trained(child).model)[0]
    assert (layer.intermediate.dense.weight == 0).any()
    assert (parent_dir / "model.safetensors").read_bytes() == parent_weights  # pruned a copy, not the parent


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_recovery_and_distillation_train_through_the_training_recipe(
        tmp_path: Path, parent_dir: Path, sentiment_csv: tuple[Path, Path]) -> None:
    limits = {"data": {"train_limit": 64, "calib_limit": 64}}
    recipe, (ctx, params) = context(tmp_path / "recover", parent_dir,
                                    "prune-structured:heads=0.5,ffn=0.5,recover_epochs=1,batch_size=16", sentiment_csv,
                                    **limits)
    child = recipe.run(ctx, params)
    info = json.loads((child / "llmos_model.json").read_text())
    assert info["recovery"]["steps"] == 4 and "accuracy" in info["recovery"]["metrics"]  # 64 rows / 16
    assert info["structure"]["attention_heads"] == [2] * 4
    assert not torch.equal(outputs(child, ["a fine film"]), outputs(tmp_path / "recover" / "work" / "pruned",
                                                                  ["a fine film"]))  # the fine-tune moved it
    recipe, (ctx, params) = context(tmp_path / "distill", parent_dir, "distill:layers=2,epochs=1,batch_size=16",
                                    sentiment_csv, **limits)
    student = recipe.run(ctx, params)
    info = json.loads((student / "llmos_model.json").read_text())
    assert info["student"] == {"layers": 2, "teacher_layers": [1, 3]}
    assert load_trained(student).model.config.num_hidden_layers == 2
    job = json.loads((tmp_path / "distill" / "work" / "distill" / "job.json").read_text())
    assert job["distill"] == {"teacher": str(parent_dir), "temperature": 2.0, "alpha": 0.5}
