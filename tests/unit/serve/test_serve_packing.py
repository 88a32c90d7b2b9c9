"""Packing: rows chosen by a pure function; packed outputs equal padded ones; a wrong packing is
caught by the load-time check and left off."""

from __future__ import annotations

import pytest
import torch

from llmos.serve._batching import pack_rows
from llmos.serve._runtime import pad_batch


def test_rows_fill_first_fit_by_decreasing_length() -> None:
    assert pack_rows([], 8) == []
    assert pack_rows([3, 5, 2, 4], 8) == [[1, 0], [3, 2]]  # 5+3, 4+2
    assert pack_rows([7, 7], 8) == [[0], [1]]
    # A sentence longer than the row length makes the rows that long.
    assert pack_rows([20, 3, 2], 8) == [[0], [1, 2]]
    assert pack_rows([12, 3, 2], 16) == [[0, 1], [2]]  # 12+3 leave 1: 2 does not fit
    assert pack_rows([12, 3, 1], 16) == [[0, 1, 2]]
    # Equal lengths keep arrival order.
    assert pack_rows([4, 4, 4, 4], 8) == [[0, 1], [2, 3]]


def test_pad_width_rounds_up_within_the_limit() -> None:
    assert pad_batch([[1] * 5, [2] * 3], 0, multiple=8).input_ids.shape == (2, 8)
    assert pad_batch([[1] * 9, [2] * 3], 0, multiple=8, max_width=12).input_ids.shape == (2, 12)
    assert pad_batch([[1] * 5], 0, multiple=8).input_ids.shape == (1, 5)  # a single row never pads
    padded = pad_batch([[1] * 5, [2] * 3], 0, multiple=8)
    assert padded.attention_mask.sum(1).tolist() == [5, 3]


def _model(task: str) -> torch.nn.Module:
    from llmos.models import build

    torch.manual_seed(0)
    return build("tiny-bert", task, label_names=["a", "b", "c"] if task == "classification" else None).model.eval()


@pytest.mark.parametrize("task", ["classification", "embedding"])
@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_packed_outputs_equal_padded_outputs(task: str, attention: str) -> None:
    from llmos.serve._packing import enable_packing, verify

    model = _model(task)
    for module in model.modules():
        if hasattr(module, "config"):
            module.config._attn_implementation = attention
    packed = enable_packing(model)
    assert not isinstance(packed, str), packed
    assert verify(model, packed, model.config.vocab_size) is None
    # More sentences than one row holds, one longer than a row: several rows, padded row ends.
    lengths = [40, 3, 17, 150, 9, 64, 1, 33]
    rows = [list(range(5, 5 + n)) for n in lengths]
    batch = pad_batch(rows, 0)
    ids, mask = torch.from_numpy(batch.input_ids), torch.from_numpy(batch.attention_mask)
    with torch.inference_mode():
        padded = model(input_ids=ids, attention_mask=mask)
        packed.lengths = lengths
        together = model(input_ids=ids, attention_mask=mask)
        packed.lengths = None
    if task == "classification":
        padded, together = padded.logits, together.logits
    torch.testing.assert_close(together, padded, atol=2e-5, rtol=1e-4)


def test_the_load_check_catches_a_packing_that_mixes_sentences() -> None:
    from llmos.serve import _packing

    class Leaky(_packing.PackedEncoder):  # every token sees its whole row: sentences leak into each other
        def row_mask(self, segments: torch.Tensor) -> torch.Tensor:
            return torch.ones(segments.shape[0], 1, segments.shape[1], segments.shape[1], dtype=torch.bool)

    model = _model("classification")
    leaky = Leaky(model.base_model.encoder, "bool")
    model.base_model.encoder = leaky
    problem = _packing.verify(model, leaky, model.config.vocab_size)
    assert problem is not None and "differ" in problem


def test_models_packing_cannot_serve_say_why() -> None:
    from llmos.serve._packing import why_not

    model = _model("classification")
    model.config.position_embedding_type = "rotary"
    assert "rotary" in (why_not(model) or "")
    assert "backbone" in (why_not(torch.nn.Linear(2, 2)) or "")


def test_a_refused_packing_puts_the_models_own_stack_back_for_compiling() -> None:
    from llmos.serve._packing import disable_packing, enable_packing, layer_stack

    model = _model("classification")
    stack = model.base_model.encoder
    packed = enable_packing(model)
    assert model.base_model.encoder is packed
    disable_packing(model, packed)  # as the runtime does when the load check fails (e.g. an int8 model)
    assert model.base_model.encoder is stack
    owner, name, _ = layer_stack(model, None)  # runtime.compile finds the stack (it used to find none)
    assert getattr(owner, name) is stack
