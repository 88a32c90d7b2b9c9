"""Quantized formats: saved without pickle, loaded back to the very same outputs."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from llmos.models import build, load_trained
from llmos.models._formats import _pack_int4, _unpack_int4, conv1d_to_linear, load_torchao, save_torchao
from llmos.tracking import verify_manifest, write_manifest

TEXTS = ["the movie was great", "a dull and tedious story", "honestly wonderful"]


def _quantized(preset: str, task: str, config: object) -> tuple[object, object, bool]:
    from torchao.quantization import quantize_

    torch.manual_seed(0)
    built = build(preset, task, label_names=["neg", "pos"] if task == "classification" else None)
    model = built.model.eval()
    swapped = conv1d_to_linear(model) > 0
    quantize_(model, config, filter_fn=lambda mod, name: isinstance(mod, torch.nn.Linear) and "lm_head" not in name)
    return model, built.tokenizer, swapped


def _configs() -> list[tuple[str, str, object]]:
    from torchao.quantization import (
        Int8DynamicActivationInt8WeightConfig,
        Int8WeightOnlyConfig,
        IntxWeightOnlyConfig,
        PerGroup,
    )

    return [("tiny-bert", "classification", Int8DynamicActivationInt8WeightConfig()),
            ("tiny-bert", "classification", Int8WeightOnlyConfig()),
            ("tiny-gpt2", "causal-lm", IntxWeightOnlyConfig(weight_dtype=torch.int4, granularity=PerGroup(32)))]


@pytest.mark.parametrize("case", range(3), ids=["int8-dynamic", "int8-weight", "int4-weight"])
def test_torchao_round_trip_gives_identical_outputs(tmp_path: Path, case: int) -> None:
    preset, task, config = _configs()[case]
    model, tokenizer, swapped = _quantized(preset, task, config)
    save_torchao(model, tokenizer, tmp_path, task=task, layout={"scheme": "test", "conv1d_to_linear": swapped})
    loaded = load_torchao(tmp_path, task)
    ids = tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.inference_mode():
        want = model(input_ids=ids["input_ids"], attention_mask=ids["attention_mask"]).logits
        got = loaded(input_ids=ids["input_ids"], attention_mask=ids["attention_mask"]).logits
    assert torch.equal(want, got)
    qweight = loaded.get_submodule("bert.encoder.layer.0.attention.self.query" if task == "classification"
                                   else "transformer.h.0.attn.c_attn").weight
    assert type(qweight).__name__ in ("Int8Tensor", "IntxUnpackedToInt8Tensor")
    assert not list(tmp_path.glob("*.bin")) and not list(tmp_path.glob("*.pt"))
    write_manifest(tmp_path)
    verify_manifest(tmp_path)  # refuses pickles and unlisted weight files


def test_int4_is_packed_two_a_byte_and_the_lm_head_stays_tied(tmp_path: Path) -> None:
    model, tokenizer, swapped = _quantized(*_configs()[2])
    save_torchao(model, tokenizer, tmp_path, task="causal-lm", layout={"conv1d_to_linear": swapped})
    from safetensors import safe_open

    with safe_open(str(tmp_path / "model.safetensors"), framework="pt") as fh:
        packed = fh.get_tensor("transformer.h.0.attn.c_attn._weight_qdata_packed4")
    assert packed.dtype == torch.uint8 and packed.shape == (96, 16)  # 96 outputs × 32 inputs / 2
    loaded = load_torchao(tmp_path, "causal-lm")
    assert loaded.lm_head.weight is loaded.transformer.wte.weight


def test_int4_packing_is_lossless() -> None:
    values = torch.arange(-8, 8, dtype=torch.int8).repeat(3, 2)
    assert torch.equal(_unpack_int4(_pack_int4(values)), values)


def test_conv1d_swap_keeps_outputs() -> None:
    torch.manual_seed(0)
    model = build("tiny-gpt2", "causal-lm").model.eval()
    ids = torch.tensor([[101, 2023, 3185, 102]])
    before = model(input_ids=ids).logits
    swapped = copy.deepcopy(model)
    assert conv1d_to_linear(swapped) == 8  # c_attn, c_proj, c_fc, mlp c_proj × 2 layers
    torch.testing.assert_close(swapped(input_ids=ids).logits, before, atol=1e-5, rtol=1e-5)


def test_unknown_format_is_a_clear_error(tmp_path: Path) -> None:
    from llmos.errors import ModelError

    (tmp_path / "llmos_model.json").write_text('{"task": "classification", "format": "gguf-q4"}')
    with pytest.raises(ModelError, match="unknown format 'gguf-q4'"):
        load_trained(tmp_path)


def test_int8_embeddings_round_trip_and_shrink_the_file(tmp_path: Path) -> None:
    from torchao.quantization import Int8DynamicActivationInt8WeightConfig

    from llmos.models._int8_embedding import Int8Embedding, quantize_embeddings

    model, tokenizer, _ = _quantized("tiny-bert", "classification", Int8DynamicActivationInt8WeightConfig())
    ids = tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.inference_mode():
        before = model(**ids).logits
    assert quantize_embeddings(model, skip=set()) == ["bert.embeddings.word_embeddings"]  # positions: too small
    with torch.inference_mode():
        after = model(**ids).logits
    torch.testing.assert_close(after, before, atol=0.02, rtol=0)
    save_torchao(model, tokenizer, tmp_path, task="classification",
                 layout={"int8_embeddings": ["bert.embeddings.word_embeddings"]})
    loaded = load_torchao(tmp_path, "classification")
    assert isinstance(loaded.bert.embeddings.word_embeddings, Int8Embedding)
    with torch.inference_mode():
        assert torch.equal(loaded(**ids).logits, after)
    # 30522 × 32 int8 plus a scale per row, against 4 bytes a value in fp32
    assert (tmp_path / "model.safetensors").stat().st_size < 0.4 * 30522 * 32 * 4
