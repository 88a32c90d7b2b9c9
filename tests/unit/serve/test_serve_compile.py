"""`runtime.compile`: a torchao int8 model on CPU is compiled while warming up (its eager int8
kernels are many times slower than fp32), answers as the eager model does, and builds no new
graph under traffic of any batch shape; the settings that cannot work are refused or warned about."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from tests.unit.serve.conftest import LABELS, compress_child, register_folder, serve_job

from llmos.errors import SpecError

pytestmark = pytest.mark.timeout(900)

TEXTS = ["a fine film", "dull", "the plot was a mess but the acting saved it", "loved every minute of it",
         "what a waste of two hours", "an ok movie, nothing more", "great", "terrible", "the movie was superb",
         "i hated the ending", "boring", "a b c d e f g", "moving and delightful", "the cast is tedious"]


@pytest.fixture(scope="module")
def int8_ref(serve_home: Path, tiny_refs: dict[str, str], sentiment_csv: tuple[Path, Path]) -> str:
    return compress_child(serve_home, tiny_refs["classification"], "tiny-cls-int8", sentiment_csv[1], {},
                          recipe="int8")


@pytest.fixture(scope="module")
def eager(int8_ref: str, start_server: Any) -> Iterator[Any]:
    with start_server(serve_job(int8_ref, runtime={"num_threads": 1, "compile": "off"})) as running:
        yield running


def _probs(server: Any, inputs: list[str]) -> np.ndarray:
    response = httpx.post(f"{server.url}/v1/classify", json={"input": inputs}, timeout=60)
    assert response.status_code == 200, response.text
    rows = response.json()["data"]
    return np.array([[row["probabilities"][k] for k in sorted(row["probabilities"])] for row in rows])


def test_auto_leaves_fp32_eager_and_off_warns_for_int8(tiny_refs: dict[str, str], int8_ref: str, eager: Any,
                                                      caplog: pytest.LogCaptureFixture, start_server: Any) -> None:
    card = httpx.get(f"{eager.url}/v1/models").json()["data"][0]
    assert card["compiled"] == "off (runtime.compile: off)" and card["precision"] == "torchao-int8"
    with start_server(serve_job(tiny_refs["classification"])) as fp32:
        assert httpx.get(f"{fp32.url}/v1/models").json()["data"][0]["compiled"].startswith("off (auto")
    with caplog.at_level(logging.WARNING), start_server(
            serve_job(int8_ref, runtime={"num_threads": 1, "compile": "off"})):
        pass
    assert any("runtime.compile is off" in r.getMessage() and "slower" in r.getMessage() for r in caplog.records)


def test_compile_on_is_refused_for_generation(tiny_refs: dict[str, str], start_server: Any) -> None:
    job = serve_job(tiny_refs["causal-lm"], runtime={"num_threads": 1, "compile": "on"})
    with pytest.raises(SpecError) as err, start_server(job):
        pass
    assert "runtime.compile" in err.value.message and err.value.hint


def test_an_int8_model_is_compiled_and_answers_as_the_eager_one(int8_ref: str, eager: Any,
                                                              start_server: Any) -> None:
    from torch._dynamo.utils import counters

    with start_server(serve_job(int8_ref, runtime={"num_threads": 1},
                                batching={"max_batch_size": 8, "max_wait_ms": 20})) as compiled:
        assert httpx.get(f"{compiled.url}/v1/models").json()["data"][0]["compiled"] == "on"
        graphs = counters["stats"]["unique_graphs"]
        assert graphs >= 1  # built while warming up, before ready
        want = _probs(eager, TEXTS)
        whole = _probs(compiled, TEXTS)  # one request: packed rows
        with ThreadPoolExecutor(6) as pool:  # concurrent singles and pairs: batches of many shapes
            singles = list(pool.map(lambda t: _probs(compiled, [t])[0], TEXTS))
            pairs = list(pool.map(lambda i: _probs(compiled, TEXTS[i:i + 2]), range(0, len(TEXTS), 2)))
        assert counters["stats"]["unique_graphs"] == graphs, "traffic made the model compile again"
    for got in (whole, np.array(singles), np.concatenate(pairs)):
        assert np.abs(got - want).max() < 2e-3
        assert (got.argmax(1) == want.argmax(1))[np.abs(want[:, 1] - want[:, 0]) > 0.02].all()


def test_a_full_precision_encoder_is_compiled_when_asked(tiny_refs: dict[str, str], start_server: Any) -> None:
    """`on` for a plain encoder, in the precision `auto` picks here (bf16 autocast inside the
    compiled graph on a CPU with bf16 units, fp32 elsewhere): same answers as the eager server."""
    ref = tiny_refs["classification"]
    with start_server(serve_job(ref, runtime={"num_threads": 1})) as plain:
        precision = httpx.get(f"{plain.url}/v1/models").json()["data"][0]["precision"]
        want = _probs(plain, TEXTS)
    with start_server(serve_job(ref, runtime={"num_threads": 1, "compile": "on"})) as compiled:
        card = httpx.get(f"{compiled.url}/v1/models").json()["data"][0]
        assert card["compiled"] == "on" and card["precision"] == precision
        whole = _probs(compiled, TEXTS)
        singles = np.array([_probs(compiled, [t])[0] for t in TEXTS[:4]])
    tolerance = 2e-3 if precision == "fp32" else 3e-2  # bf16 rounds differently once ops are fused
    assert np.abs(whole - want).max() < tolerance
    assert np.abs(singles - want[:4]).max() < tolerance


@pytest.fixture(scope="module")
def deep_int8_ref(serve_home: Path, sentiment_csv: tuple[Path, Path]) -> str:
    """An int8 child whose packing check fails, as MiniLM-L6's does: four layers of hidden 128 are
    enough for the fp32 rounding of the packed attention to flip int8 activation rounding (the
    tiny 2-layer model's check passes)."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from llmos.models import minilm_path, save_trained

    torch.manual_seed(0)
    config = BertConfig(vocab_size=30522, hidden_size=128, num_hidden_layers=4, num_attention_heads=4,
                        intermediate_size=512, max_position_embeddings=512, num_labels=len(LABELS),
                        id2label=dict(enumerate(LABELS)), label2id={n: i for i, n in enumerate(LABELS)})
    folder = save_trained(BertForSequenceClassification(config).eval(),
                          AutoTokenizer.from_pretrained(str(minilm_path())), serve_home / "work" / "deep-cls",
                          task="classification", base="bert-4x128", label_names=LABELS, max_length=64)
    parent = register_folder(serve_home, folder, "deep-cls", {})
    return compress_child(serve_home, parent, "deep-cls-int8", sentiment_csv[1], {}, recipe="int8")


def test_an_int8_model_whose_packing_check_fails_is_still_compiled(serve_home: Path, deep_int8_ref: str) -> None:
    """Issue 19: the failed packing check used to leave its wrapper where the layer stack was, so
    `runtime.compile: auto` found no stack and the server refused to start. The runtime alone (a
    server adds only its warm-up): one graph built, for a batch of several rows."""
    from llmos.serve._runtime import load_runtime, pad_batch

    folder = serve_home / "work" / "deep-cls-int8" / "child"
    served = load_runtime(folder, serve_job(deep_int8_ref).runtime)  # the defaults: packing and compile auto
    assert served.packing.startswith("off (packed and padded"), served.packing
    assert served.compiled == "on", served.compiled
    eager = load_runtime(folder, serve_job(deep_int8_ref, runtime={"num_threads": 1, "compile": "off",
                                                                   "packing": "off"}).runtime)
    rows = [ids for ids in served.tokenizer(TEXTS)["input_ids"]]
    batch = pad_batch(rows, served.tokenizer.pad_token_id, multiple=8)
    want, got = eager.infer(batch), served.infer(batch)
    assert np.abs(got - want).max() < 2e-3
