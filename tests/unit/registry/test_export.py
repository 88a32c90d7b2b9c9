"""`llmos export`: a registered version loaded by plain transformers and plain ONNX Runtime in a
process that never imports llmos, answering as llmos does; the formats they cannot load are refused
with the fix."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from tests.unit.serve.conftest import register_tiny
from typer.testing import CliRunner

from llmos.cli.main import app
from llmos.errors import ModelError
from llmos.registry import export

TEXTS = ["a wonderful film", "the ending felt dull to me, and long"]
# Run in one fresh interpreter for every export a test checks: loads each with transformers or
# onnxruntime alone (an interpreter costs seconds of imports; llmos must stay out of all of them).
PLAIN = """
import json, sys
exports, texts = json.loads(sys.argv[1]), json.loads(sys.argv[2])
from transformers import AutoTokenizer

def answer(kind, folder, task):
    tokens = AutoTokenizer.from_pretrained(folder)(texts, padding=True, return_tensors="np" if kind == "onnx" else "pt")
    if kind == "onnx":
        import onnxruntime
        session = onnxruntime.InferenceSession(folder + "/model.onnx", providers=["CPUExecutionProvider"])
        names = [i.name for i in session.get_inputs()]
        return session.run(None, {n: tokens[n] for n in names})[0].tolist()
    import torch
    from transformers import AutoModel, AutoModelForSequenceClassification
    model = (AutoModelForSequenceClassification if task == "classification" else AutoModel).from_pretrained(folder)
    with torch.no_grad():
        out = model(**tokens)
    if task == "classification":
        return out.logits.tolist()
    mask = tokens["attention_mask"].unsqueeze(-1).float()  # mean pooling, L2-normalised: the export's README.md
    return torch.nn.functional.normalize((out.last_hidden_state * mask).sum(1) / mask.sum(1), dim=-1).tolist()

answers = [answer(*e) for e in exports]
assert not any(m == "llmos" or m.startswith("llmos.") for m in sys.modules), "llmos was imported"
print(json.dumps(answers))
"""


def llmos_answer(ref: str) -> list[list[float]]:
    import torch

    from llmos.models import load_trained
    from llmos.registry import fetch

    built = load_trained(fetch(ref))
    tokens = built.tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        out = built.model(**tokens)
    return (out if isinstance(out, torch.Tensor) else out.logits).tolist()


def plain_answers(exports: list[tuple[str, Path, str]]) -> list[list[list[float]]]:
    """Each (format, folder, task)'s answer to TEXTS from one interpreter without llmos."""
    jobs = json.dumps([(kind, str(folder), task) for kind, folder, task in exports])
    done = subprocess.run([sys.executable, "-c", PLAIN, jobs, json.dumps(TEXTS)],
                          capture_output=True, text=True, timeout=300, cwd="/")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_export_loads_without_llmos_and_answers_alike(llmos_home: Path, tmp_path: Path) -> None:
    """Both formats of both tasks."""
    import numpy as np

    cases = [(fmt, task) for task in ("classification", "embedding") for fmt in ("hf", "onnx")]
    refs = {task: register_tiny(llmos_home, task, f"exp-{task[:3]}") for task in ("classification", "embedding")}
    exports = []
    for fmt, task in cases:
        done = export(refs[task], format=fmt, out=tmp_path / f"{fmt}-{task}")  # type: ignore[arg-type]
        assert "llmos_model.json" not in done.files and "manifest.json" not in done.files, (fmt, task)
        assert ("model.onnx" if fmt == "onnx" else "model.safetensors") in done.files, (fmt, task)
        exports.append((fmt, done.out, task))
    for (fmt, task), plain in zip(cases, plain_answers(exports), strict=True):
        np.testing.assert_allclose(plain, llmos_answer(refs[task]), atol=1e-4, err_msg=f"{fmt} {task}")


def test_torchao_children_export_in_transformers_own_torchao_format(llmos_home: Path, tmp_path: Path,
                                                                     sentiment_csv: tuple[Path, Path]) -> None:
    """Plain transformers (with torchao, without llmos) loads each quantized child and answers as
    llmos serves it; the Linear weights stay quantized in the file (torchao's safetensors flattening)."""
    import numpy as np
    from safetensors import safe_open
    from tests.unit.serve.conftest import compress_child

    parent = register_tiny(llmos_home, "classification", "exp-ao")
    recipes = ["int8", "int8-weight", "int4-weight"]
    refs, exports = [], []
    for recipe in recipes:
        ref = compress_child(llmos_home, parent, f"exp-ao-{recipe}", sentiment_csv[1], {}, recipe=recipe)
        done = export(ref, format="hf", out=tmp_path / recipe)
        config = json.loads((done.out / "config.json").read_text())
        assert config["quantization_config"]["quant_method"] == "torchao", recipe
        with safe_open(str(done.out / "model.safetensors"), framework="pt") as fh:
            assert any(key.endswith("_weight_qdata") for key in fh.keys()), recipe  # noqa: SIM118
        refs.append(ref)
        exports.append(("hf", done.out, "classification"))
    for recipe, ref, plain in zip(recipes, refs, plain_answers(exports), strict=True):
        np.testing.assert_allclose(plain, llmos_answer(ref), atol=1e-4, err_msg=recipe)


def test_cli_export_json_and_refusals(llmos_home: Path, tmp_path: Path) -> None:
    ref = register_tiny(llmos_home, "classification", "exp-cli")
    runner = CliRunner()
    result = runner.invoke(app, ["export", ref, "--format", "hf", "--out", str(tmp_path / "a"), "--json"])
    assert result.exit_code == 0, result.output
    files = json.loads(result.output)["files"]
    assert {"config.json", "model.safetensors", "README.md"} <= set(files)
    assert "0: negative, 1: positive" in (tmp_path / "a" / "README.md").read_text()
    again = runner.invoke(app, ["export", ref, "--out", str(tmp_path / "a")])
    assert isinstance(again.exception, ModelError) and "not empty" in again.exception.message
    bad = runner.invoke(app, ["export", ref, "--format", "gguf", "--out", str(tmp_path / "b")])
    assert "--format hf or --format onnx" in bad.exception.hint


def test_formats_plain_tools_cannot_load_are_refused_with_the_fix(tmp_path: Path) -> None:
    from llmos.registry._export import _to_hf, _to_onnx

    folder = tmp_path / "stored"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"llmos_structure": {"heads": [2, 1]}}))
    with pytest.raises(ModelError, match="structurally pruned") as pruned:
        _to_hf(folder, "hf-safetensors", "m/3", tmp_path / "o1")
    assert "--format onnx" in pruned.value.hint
    (folder / "config.json").write_text("{}")
    (folder / "quantization.json").write_text(json.dumps({"scheme": "int8-weight-only", "conv1d_to_linear": True}))
    with pytest.raises(ModelError, match="GPT-2-style"):
        _to_hf(folder, "torchao-int8", "m/4", tmp_path / "o2")
    with pytest.raises(ModelError, match="do not export to ONNX"):
        _to_onnx(folder, "classification", "torchao-int8-weight", "m/5", tmp_path / "o3")
    with pytest.raises(ModelError, match="--format onnx"):
        _to_hf(folder, "onnx-int8", "m/6", tmp_path / "o4")
