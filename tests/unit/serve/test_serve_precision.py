"""bf16 serving casts each linear layer's weights once at load, and answers exactly as autocast over
the fp32 weights does; weights an embedding shares stay fp32."""

from __future__ import annotations

import warnings

import pytest
import torch
from tests.unit.serve.conftest import serve_job

from llmos.models import load_trained
from llmos.registry import fetch
from llmos.serve._runtime import load_runtime


def _bf16_runtime(ref: str):
    folder = fetch(ref)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        runtime = load_runtime(folder, serve_job(ref, runtime={"num_threads": 1, "precision": "bf16",
                                                             "packing": "off"}).runtime)
    return runtime, load_trained(folder).model.eval()


@pytest.mark.parametrize("task", ["classification", "causal-lm"])
def test_bf16_casts_linear_weights_once_with_the_same_answers(tiny_refs: dict[str, str], task: str) -> None:
    runtime, reference = _bf16_runtime(tiny_refs[task])
    assert runtime.precision == "bf16"
    embedded = {id(m.weight) for m in runtime.model.modules() if isinstance(m, torch.nn.Embedding)}
    linears = [m for m in runtime.model.modules() if type(m) is torch.nn.Linear]
    assert linears
    for m in linears:
        assert m.weight.dtype == (torch.float32 if id(m.weight) in embedded else torch.bfloat16)
    assert all(m.weight.dtype == torch.float32 for m in runtime.model.modules() if isinstance(m, torch.nn.Embedding))
    ids = torch.tensor([[5, 17, 42, 8, 3, 99, 7], [12, 4, 4, 61, 2, 0, 0]])
    mask = torch.tensor([[1] * 7, [1] * 5 + [0] * 2])
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        got = runtime.model(input_ids=ids, attention_mask=mask).logits
        want = reference(input_ids=ids, attention_mask=mask).logits
    assert torch.equal(got, want)
