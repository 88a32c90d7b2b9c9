"""The quantization recipes on tiny models: children that load, keep the contract and stay close
to the parent; recipes that cannot handle a model refuse it before any work."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tests.unit.compress.compress_helpers import batch, make_context, make_parent

from llmos.compress import get_recipe
from llmos.errors import ModelError, SpecError
from llmos.models import load_trained

TEXTS = ["the movie was great", "a dull and tedious story", "honestly wonderful acting"]


@pytest.fixture(scope="module")
def bert_parent(tmp_path_factory: pytest.TempPathFactory) -> object:
    return make_parent(tmp_path_factory.mktemp("parent") / "model")


@pytest.mark.parametrize(("recipe", "fmt", "atol"), [("int8", "torchao-int8", 0.05), ("bf16", "bf16", 0.05),
                                                     ("onnx-int8", "onnx-int8", 0.05)])
def test_encoder_recipes_write_a_child_that_loads_and_agrees(tmp_path: Path, bert_parent: object, sentiment_csv: tuple,
                                                             recipe: str, fmt: str, atol: float) -> None:
    before = {p.name: p.stat().st_mtime_ns for p in bert_parent.folder.iterdir()}  # type: ignore[attr-defined]
    ctx, params = make_context(tmp_path, bert_parent, recipe, sentiment_csv[1])  # type: ignore[arg-type]
    child = get_recipe(recipe).run(ctx, params)
    info = json.loads((child / "llmos_model.json").read_text())
    assert info["format"] == fmt and info["task"] == "classification"
    assert info["label_names"] == ["negative", "positive"]
    assert info["parent"] == {"name": "s", "version": "1", "format": "hf-safetensors"}
    assert info["recipe"]["name"] == recipe and info["max_length"] == 32
    inputs = batch(bert_parent, TEXTS)  # type: ignore[arg-type]
    parent_model, loaded = load_trained(bert_parent.folder).model, load_trained(child)  # type: ignore[attr-defined]
    assert loaded.format == fmt
    with torch.inference_mode():
        want = parent_model(**inputs).logits
        got = loaded.model(**inputs).logits.float()
    torch.testing.assert_close(got, want, atol=atol, rtol=0.0)
    assert not [p for p in child.rglob("*") if p.suffix in (".bin", ".pt", ".pth", ".pkl")]
    assert {p.name: p.stat().st_mtime_ns for p in bert_parent.folder.iterdir()} == before  # type: ignore[attr-defined]


def test_onnx_embedding_child_returns_the_pooled_vector(tmp_path: Path, sentiment_csv: tuple) -> None:
    import csv

    pairs = tmp_path / "pairs.csv"
    with pairs.open("w", newline="") as f:
        csv.writer(f).writerows([("text", "positive"), ("a great film", "a wonderful movie"),
                                 ("a dull plot", "a boring story"), ("fine acting", "good cast")])
    parent = make_parent(tmp_path / "emb", task="embedding")
    ctx, params = make_context(tmp_path, parent, "onnx-int8", pairs,
                               data={"text_pair_column": "positive", "label_column": None})
    child = get_recipe("onnx-int8").run(ctx, params)
    inputs = batch(parent, TEXTS)
    with torch.inference_mode():
        want = load_trained(parent.folder).model(**inputs)
        got = load_trained(child).model(**inputs)
    assert got.shape == want.shape == (3, 32)
    torch.testing.assert_close(got.norm(dim=-1), torch.ones(3), atol=1e-4, rtol=0)
    assert torch.nn.functional.cosine_similarity(got, want).min() > 0.98


def test_weight_only_recipes_on_a_causal_lm(tmp_path: Path, sentiment_csv: tuple) -> None:
    parent = make_parent(tmp_path / "lm", preset="tiny-gpt2", task="causal-lm")
    inputs = batch(parent, TEXTS)
    with torch.inference_mode():
        want = load_trained(parent.folder).model(**inputs).logits
    for recipe, fmt in (("int8-weight", "torchao-int8-weight"), ("int4-weight", "torchao-int4-weight")):
        folder = tmp_path / recipe
        folder.mkdir()
        ctx, params = make_context(folder, parent, recipe, sentiment_csv[1])
        child = get_recipe(recipe).run(ctx, params)
        loaded = load_trained(child)
        assert loaded.format == fmt
        with torch.inference_mode():
            got = loaded.model(**inputs).logits
        # weight-only error grows with fewer bits; a random tiny LM has near-flat logits
        assert (got - want).abs().max() < (0.05 if recipe == "int8-weight" else 0.5)
        layout = json.loads((child / "quantization.json").read_text())
        assert layout["conv1d_to_linear"] and "transformer.h.0.attn.c_attn" in layout["quantized"]
        assert "lm_head" in layout["full_precision"]  # tied to the embeddings


def test_recipes_refuse_what_they_cannot_handle(tmp_path: Path, bert_parent: object, sentiment_csv: tuple) -> None:
    from llmos.compress._pipeline import _plan
    from llmos.spec import parse_job

    job = parse_job({"kind": "compress", "model": "s/1", "recipe": ["int4-weight", "int8", "bf16"],
                     "eval": str(tmp_path / "missing.csv")})
    with pytest.raises(SpecError) as err:
        _plan(job, bert_parent)  # type: ignore[arg-type]
    problems = dict(err.value.problems)
    refused = problems["recipe.0 (int4-weight)"]
    assert "int4-weight" in refused and "classification" in refused
    assert "does not exist" in problems["eval"]
    assert len(problems) == 2  # int8 and bf16 can handle it
    quantized = type(bert_parent)(name="s", version="2", folder=bert_parent.folder,  # type: ignore[attr-defined]
                                  info={**bert_parent.info, "format": "torchao-int8",  # type: ignore[attr-defined]
                                        "parent": {"name": "s", "version": "1"}}, config={})
    with pytest.raises(ModelError, match="stored as 'torchao-int8' \\(its own parent is s/1\\)"):
        get_recipe("int8").check(quantized, get_recipe("int8").params(), job)
