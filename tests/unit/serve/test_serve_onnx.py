"""Serving an ONNX model end to end: the session's tiny PyTorch models go through the `onnx-int8`
compression recipe (the recipe itself, set up by the pipeline's own `resolve_parent` and
`load_data`), the child is registered, then served over real HTTP by ONNX Runtime and compared
with the PyTorch parent served the same way.

Tolerances. The registered tiny random BERT classifier answers p(positive) = 0.4987 +- 0.0001 for
every input: its output is almost all input-independent (across texts its pooled [CLS] features
vary by ~0.5% of their size, about the resolution of int8 activations). Against it, "labels agree,
probabilities within 1e-3" checks the bulk of the output (int8 error measured 1e-4, label margin
1.3e-3) but could not see a server that fed the graph the wrong ids, mask or token types. So a
second parent is that model with its head re-aimed (no training) along the direction in which its
pooled features vary most over TEXTS, scaled to log-odds of +-2: its answers spread over ~0.1-0.8
and move with the input. The aimed head amplifies int8's noise as much as the signal (errors up to
0.25 in probability, correlation 0.95 with the parent, measured), so on it the serving path is
checked exactly (served = the same graph run in-process, 1e-5) and int8 only by correlation. The
embedding model mean-pools every token, where int8 is faithful: cosine >= 0.99995 with the parent
while different texts are at most 0.946 alike, so each ONNX vector must find its own text."""


from __future__ import annotations

import csv
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from tests.unit.serve.conftest import LABELS, compress_child, register_folder, serve_job

from llmos.errors import SpecError

pytestmark = pytest.mark.timeout(180)

TEXTS = ["a fine film", "dull", "the plot was a mess but the acting saved it", "loved every minute of it",
         "what a waste of two hours", "an ok movie, nothing more", "great", "terrible", "the movie was superb",
         "i hated the ending", "boring", "a b c d e f g", "moving and delightful", "the cast is tedious"]


def _register_aimed(home: Path, parent_ref: str, name: str) -> str:
    """`parent_ref` with its head aimed along the first principal direction of its pooled features
    over TEXTS, scaled so the log-odds span +-2 (see the module docstring)."""
    import torch

    from llmos.models import save_trained
    from llmos.registry import load

    built = load(parent_ref)
    model = built.model.eval()
    with torch.no_grad():
        pooled = model.bert(**built.tokenizer(TEXTS, padding=True, return_tensors="pt")).pooler_output
        mean = pooled.mean(0)
        direction = torch.linalg.svd(pooled - mean, full_matrices=False).Vh[0]
        half = 1.0 / ((pooled - mean) @ direction).abs().max()  # logit(pos) - logit(neg) = 2 * half * score
        model.classifier.weight.copy_(torch.stack([-direction, direction]) * half)
        model.classifier.bias.copy_(torch.tensor([1.0, -1.0]) * (mean @ direction) * half)
    folder = save_trained(model, built.tokenizer, home / "work" / name, task="classification", base="tiny-bert",
                          label_names=LABELS, max_length=64)
    return register_folder(home, folder, name, {"parent": parent_ref})


@pytest.fixture(scope="module")
def refs(serve_home: Path, tiny_refs: dict[str, str], sentiment_csv: tuple[Path, Path],
         tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """PyTorch parents and their ONNX children: cls, aimed (cls re-aimed), emb; X-onnx for each."""
    pairs = tmp_path_factory.mktemp("pairs") / "pairs.csv"
    with pairs.open("w", newline="") as f:
        csv.writer(f).writerows([("text", "positive"), ("a great film", "a wonderful movie"),
                                 ("a dull plot", "a boring story"), ("fine acting", "good cast")])
    aimed = _register_aimed(serve_home, tiny_refs["classification"], "tiny-cls-aimed")
    return {"cls": tiny_refs["classification"],
            "cls-onnx": compress_child(serve_home, tiny_refs["classification"], "tiny-cls-onnx",
                                       sentiment_csv[1], {}),
            "aimed": aimed,
            "aimed-onnx": compress_child(serve_home, aimed, "tiny-cls-aimed-onnx", sentiment_csv[1], {}),
            "emb": tiny_refs["embedding"],
            "emb-onnx": compress_child(serve_home, tiny_refs["embedding"], "tiny-emb-onnx", pairs,
                                       {"text_pair_column": "positive", "label_column": None})}


@pytest.fixture(scope="module")
def cls(refs: dict[str, str], start_server: Any) -> Iterator[dict[str, Any]]:
    """Both classification parents (PyTorch) and their ONNX children, served side by side."""
    with ExitStack() as stack:
        yield {key: stack.enter_context(start_server(serve_job(refs[key])))
               for key in ("cls", "cls-onnx", "aimed", "aimed-onnx")}


def _classify(server: Any, inputs: list[Any]) -> list[dict[str, Any]]:
    response = httpx.post(f"{server.url}/v1/classify", json={"input": inputs}, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()["data"]


def _positive(rows: list[dict[str, Any]]) -> np.ndarray:
    return np.array([row["probabilities"]["positive"] for row in rows])


def _log_odds(p: np.ndarray) -> np.ndarray:
    return np.log(p / (1 - p))


def test_models_card_says_onnx(cls: dict[str, Any]) -> None:
    card = httpx.get(f"{cls['cls-onnx'].url}/v1/models").json()["data"][0]
    assert card["id"] == "tiny-cls-onnx" and card["task"] == "classification" and card["version"].isdigit()
    assert card["runtime"] == "onnx" and card["precision"] == "onnx-int8"
    assert card["packing"].startswith("off: length buckets")
    assert httpx.get(f"{cls['cls'].url}/v1/models").json()["data"][0]["runtime"] == "torch"


def test_int8_answers_match_the_registered_parent(cls: dict[str, Any]) -> None:
    """The registered tiny model as is: every answer ~0.4987 (margin 1.3e-3 to the other label),
    int8 within 1e-4 of it measured: labels agree, probabilities within 1e-3, whether the inputs come
    in one request, one per request, or in concurrent requests that the worker batches together."""
    server = cls["cls-onnx"]
    want = _classify(cls["cls"], TEXTS)
    with ThreadPoolExecutor(4) as pool:
        concurrent = [rows[0] for rows in pool.map(lambda t: _classify(server, [t]), TEXTS)]
    for got in (_classify(server, TEXTS), [_classify(server, [t])[0] for t in TEXTS], concurrent):
        assert [row["label"] for row in got] == [row["label"] for row in want]
        assert _positive(got) == pytest.approx(_positive(want), abs=1e-3)


def test_served_answers_are_the_registered_graph(cls: dict[str, Any]) -> None:
    """One input per request (no padding): exactly what the graph gives when run in-process, on the
    aimed model where a wrong id, mask or token type would show; a text pair uses token types."""
    from transformers import AutoTokenizer

    from llmos.models._onnx import OnnxModel

    folder = cls["aimed-onnx"].service.source.folder
    tokenizer, graph = AutoTokenizer.from_pretrained(str(folder)), OnnxModel(folder / "model.onnx", "classification")
    assert "token_type_ids" in graph.inputs
    for item in [*TEXTS[:4], ["a fine film", "really"]]:
        enc = tokenizer(*([item] if isinstance(item, str) else item), return_tensors="pt")
        want = graph(**enc).logits.softmax(-1)[0].tolist()
        got = _classify(cls["aimed-onnx"], [item])[0]["probabilities"]
        assert [got[label] for label in LABELS] == pytest.approx(want, abs=1e-5)


def test_int8_answers_track_the_aimed_parent(cls: dict[str, Any]) -> None:
    """Input-dependent answers: int8 noise is ~1/3 of their spread on a random tiny model, so the
    check is that the ONNX answers follow the parent's across inputs, not that they equal them."""
    want, got = _positive(_classify(cls["aimed"], TEXTS)), _positive(_classify(cls["aimed-onnx"], TEXTS))
    assert want.max() - want.min() > 0.5  # the aimed head spreads the parent's answers
    assert np.corrcoef(_log_odds(want), _log_odds(got))[0, 1] > 0.85


def test_a_request_of_several_inputs_runs_as_one_batch(cls: dict[str, Any]) -> None:
    """A request's inputs run as one padded batch: the answers are exactly the runtime's batched
    call. Int8 quantizes activations per batch, so they differ from one-input answers, which is what
    shows they were not rerun input by input (the worker's fallback when a batch fails)."""
    from llmos.serve._runtime import pad_batch
    from llmos.serve._worker import PAD_MULTIPLE

    server = cls["aimed-onnx"]
    together = _positive(_classify(server, TEXTS))
    runtime = server.service.runtime
    rows = runtime.tokenizer(TEXTS)["input_ids"]
    batched = runtime.infer(pad_batch(rows, runtime.tokenizer.pad_token_id, multiple=PAD_MULTIPLE))
    assert batched.shape == (len(TEXTS), 2) and together == pytest.approx(batched[:, 1], abs=1e-6)
    alone = _positive([_classify(server, [text])[0] for text in TEXTS])
    assert np.abs(together - alone).max() > 1e-3


@pytest.mark.parametrize(("runtime", "needle"), [
    ({"precision": "bf16"}, "runtime.precision"),
    ({"kind": "torch"}, "runtime.kind"),
    ({"device": "cuda"}, "runtime.device"),
    ({"compile": "on"}, "runtime.compile"),
])
def test_settings_an_onnx_model_cannot_take_are_refused(refs: dict[str, str], start_server: Any,
                                                        runtime: dict[str, str], needle: str) -> None:
    if runtime.get("device") == "cuda":
        import onnxruntime

        if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
            pytest.skip("this machine's ONNX Runtime has a CUDA provider")
    with pytest.raises(SpecError) as err, start_server(serve_job(refs["cls-onnx"], runtime=runtime)):
        pass
    assert needle in err.value.message and err.value.hint


@pytest.fixture(scope="module")
def emb(refs: dict[str, str], start_server: Any) -> Iterator[dict[str, Any]]:
    with start_server(serve_job(refs["emb"])) as torch_server, start_server(serve_job(refs["emb-onnx"])) as onnx:
        yield {"torch": torch_server, "onnx": onnx}


def _embed(server: Any, texts: list[str]) -> np.ndarray:
    response = httpx.post(f"{server.url}/v1/embeddings", json={"input": texts, "model": server.service.model_id},
                          timeout=30)
    assert response.status_code == 200, response.text
    return np.array([row["embedding"] for row in response.json()["data"]])


def test_embeddings_match_the_pytorch_parent(emb: dict[str, Any]) -> None:
    assert httpx.get(f"{emb['onnx'].url}/v1/models").json()["data"][0]["runtime"] == "onnx"
    want, got = _embed(emb["torch"], TEXTS), _embed(emb["onnx"], TEXTS)
    assert got.shape == want.shape == (len(TEXTS), 32)
    assert np.linalg.norm(got, axis=1) == pytest.approx(np.ones(len(TEXTS)), abs=1e-4)
    similarity = got @ want.T  # row i: the ONNX vector of text i against every parent vector
    assert np.diag(similarity).min() > 0.999
    assert (similarity.argmax(1) == np.arange(len(TEXTS))).all()


def test_embedding_batches_agree_with_single_inputs(emb: dict[str, Any]) -> None:
    """Mean pooling over real tokens only: padding a short text into a batch of long ones must not
    move its vector (a mask ignored would average the pad tokens in); nor must batching concurrent
    requests together."""
    server = emb["onnx"]
    alone = np.concatenate([_embed(server, [text]) for text in TEXTS])
    with ThreadPoolExecutor(4) as pool:
        concurrent = np.concatenate(list(pool.map(lambda t: _embed(server, [t]), TEXTS)))
    for got in (_embed(server, TEXTS), concurrent):
        assert np.sum(got * alone, axis=1).min() > 0.999


def test_a_mixed_batch_runs_in_length_buckets_with_the_answers_of_one_padded_call(emb: dict[str, Any]) -> None:
    """ONNX Runtime cannot pack: a batch of short texts and one long one runs as two calls, each
    padded to its own longest, with the vectors one padded call gives (mean pooling ignores pads)."""
    from llmos.serve._runtime import pad_batch

    runtime = emb["onnx"].service.runtime
    texts = ["good", "bad", "fine", "ok", "so so", " ".join(["a long review of a long film"] * 8)]
    batch = pad_batch(runtime.tokenizer(texts)["input_ids"], runtime.tokenizer.pad_token_id)
    bucketed = runtime.infer(batch)
    assert runtime.last_positions < batch.input_ids.size / 2  # the shorts no longer pad to the long one
    one_call = runtime._run(batch)
    assert np.sum(bucketed * one_call, axis=1).min() > 0.999
