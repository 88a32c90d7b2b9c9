"""Bad parameters and models the pruning and distillation recipes cannot handle: clear errors from
the parameter models and from `check`, which runs before any recipe does work."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from llmos.compress._distill import DISTILL
from llmos.compress._prune_structured import PRUNE_STRUCTURED
from llmos.compress._prune_unstructured import PRUNE_UNSTRUCTURED
from llmos.compress._recipe import Parent
from llmos.errors import ModelError, SpecError
from llmos.spec._compress import CompressJob

BERT = {"model_type": "bert", "hidden_size": 384, "num_attention_heads": 12, "intermediate_size": 1536,
        "num_hidden_layers": 6}


def parent(config: dict[str, Any] = BERT, task: str = "classification", fmt: str = "hf-safetensors") -> Parent:
    return Parent(name="sentiment", version="1", folder=Path("/nonexistent"), config=config,
                  info={"task": task, "label_names": ["0", "1"], "max_length": 128, "format": fmt})


def job(recipe: str, train: str | None = "train.tsv") -> CompressJob:
    return CompressJob.model_validate({"model": "sentiment/1", "recipe": recipe, "train": train})


@pytest.mark.parametrize("text", ["prune-unstructured:sparsity=0", "prune-unstructured:sparsity=1",
                                  "prune-unstructured:sparsity=1.5", "prune-unstructured:sparsity=-0.1",
                                  "prune-unstructured:sparsity=high", "prune-unstructured:sparsty=0.5"])
def test_sparsity_outside_zero_one_is_refused_by_the_spec(text: str) -> None:
    with pytest.raises(ValidationError, match="bad parameters for recipe 'prune-unstructured'"):
        job(text)


@pytest.mark.parametrize("text", ["prune-structured:heads=1", "prune-structured:ffn=1.0",
                                  "prune-structured:heads=0,ffn=0", "prune-structured:recover_epochs=-1",
                                  "distill:layers=0", "distill:alpha=2", "distill:temperature=0"])
def test_bad_recipe_parameters_are_spec_errors(text: str) -> None:
    with pytest.raises(ValidationError, match="bad parameters for recipe"):
        job(text)


def check(recipe: Any, text: str, p: Parent | None = None, train: str | None = "train.tsv") -> None:
    spec = job(text, train=train)
    recipe.check(p or parent(), spec.recipe[0].typed_params(), spec)


def test_structured_pruning_shares_that_leave_no_head_or_remove_none_are_refused() -> None:
    check(PRUNE_STRUCTURED, "prune-structured:heads=0.3,ffn=0.3")  # 12 heads: 4 go; 1536 neurons: 461 go
    two_heads = {**BERT, "hidden_size": 32, "num_attention_heads": 2, "intermediate_size": 64}
    with pytest.raises(SpecError) as err:
        check(PRUNE_STRUCTURED, "prune-structured:heads=0.8,ffn=0.001", parent(two_heads))
    problems = dict(err.value.problems)
    assert "removes all 2" in problems["recipe.prune-structured.heads"]
    assert "rounds to 0" in problems["recipe.prune-structured.ffn"]


def test_structured_pruning_refuses_models_it_cannot_slice() -> None:
    with pytest.raises(ModelError, match="not divisible"):
        check(PRUNE_STRUCTURED, "prune-structured:heads=0.3", parent({**BERT, "num_attention_heads": 5}))
    with pytest.raises(ModelError, match="BERT-style encoders"):
        check(PRUNE_STRUCTURED, "prune-structured:heads=0.3", parent({"model_type": "gpt2", "n_layer": 2}, "causal-lm"))
    with pytest.raises(ModelError, match="needs a full-precision parent"):
        check(PRUNE_STRUCTURED, "prune-structured:heads=0.3", parent(fmt="torchao-int8"))


def test_structured_pruning_of_an_already_pruned_parent_counts_its_kept_heads() -> None:
    pruned = {**BERT, "llmos_structure": {"attention_heads": [2] * 6, "intermediate_sizes": [700] * 6}}
    with pytest.raises(SpecError, match="removes all 2"):
        check(PRUNE_STRUCTURED, "prune-structured:heads=0.8", parent(pruned))


def test_recipes_that_train_need_training_data_before_work() -> None:
    with pytest.raises(SpecError) as err:
        check(DISTILL, "distill:layers=3", train=None)
    assert dict(err.value.problems) == {"train": "required by recipe 'distill'"}
    with pytest.raises(SpecError, match="needs training data"):
        check(PRUNE_STRUCTURED, "prune-structured:heads=0.5,recover_epochs=1", train=None)
    check(PRUNE_STRUCTURED, "prune-structured:heads=0.5", train=None)  # calibration rows suffice
    check(PRUNE_UNSTRUCTURED, "prune-unstructured:sparsity=0.5", train=None)  # needs no data


def test_distill_student_sizes() -> None:
    check(DISTILL, "distill:layers=3")
    check(DISTILL, "distill")  # half the teacher
    for text, field in (("distill:layers=6", "layers"), ("distill:layers=9", "layers")):
        with pytest.raises(SpecError) as err:
            check(DISTILL, text)
        assert f"recipe.distill.{field}" in dict(err.value.problems)
    spec = CompressJob.model_validate({"model": "s/1", "train": "t.tsv",
                                       "recipe": {"name": "distill", "params": {"layers": 2, "keep": [0, 9]}}})
    with pytest.raises(SpecError, match="distinct blocks between 0 and 5"):
        DISTILL.check(parent(), spec.recipe[0].typed_params(), spec)
    with pytest.raises(ModelError, match="needs a full-precision parent"):
        check(DISTILL, "distill:layers=3", parent(fmt="onnx-int8"))
