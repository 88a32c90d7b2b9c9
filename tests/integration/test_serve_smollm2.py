"""SmolLM2-135M-Instruct served by llmos and called with the official openai client, as
docs/llm.md shows: the greedy answer is transformers' own generate()'s, also when the shared
system prompt comes from the prefix cache; a seeded answer repeats; logprobs come back."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.unit.serve.conftest import register_folder, serve_job

pytestmark = pytest.mark.timeout(300)

SYSTEM = "You are the support assistant of Northwind Bank. Answer in one short, polite sentence."


@pytest.fixture
def smollm2_server(smollm2_folder: Path, llmos_home: Path) -> Iterator[Any]:
    from llmos.serve import Service, prepare, serve_in_thread

    ref = register_folder(llmos_home, smollm2_folder, "smollm2", {})
    job = serve_job(ref, runtime={"num_threads": 2}, limits={"max_new_tokens": 16})
    with serve_in_thread(Service(job, prepare(job), api_key="KEY")) as running:
        yield running


def _generate(folder: Path, question: str, max_new_tokens: int) -> str:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    ids = tok.apply_chat_template([{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}],
                                  add_generation_prompt=True, return_tensors="pt", return_dict=True)["input_ids"]
    with torch.inference_mode():
        out = model.generate(ids, max_new_tokens=max_new_tokens, do_sample=False)
    return tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True)


def test_smollm2_with_the_openai_client(smollm2_server: Any, smollm2_folder: Path) -> None:
    from openai import OpenAI

    client = OpenAI(base_url=f"{smollm2_server.url}/v1", api_key="KEY", max_retries=0)
    questions = ["How do I reset my card PIN?", "My card was stolen, what now?", "Can I open an account online?"]

    def ask(question: str, **extra: Any) -> Any:
        return client.chat.completions.create(
            model="smollm2", max_tokens=12, messages=[{"role": "system", "content": SYSTEM},
                                                      {"role": "user", "content": question}], **extra)

    greedy = [ask(q, temperature=0).choices[0].message.content for q in questions]
    assert greedy[0] == _generate(smollm2_folder, questions[0], 12)
    assert greedy[2] == _generate(smollm2_folder, questions[2], 12)  # its system prompt came from the cache
    assert smollm2_server.service.worker.prefix.hits >= 1
    seeded = [ask(questions[1], seed=11, temperature=0.8).choices[0].message.content for _ in range(2)]
    assert seeded[0] == seeded[1]
    lp = ask(questions[1], temperature=0, logprobs=True, top_logprobs=2).choices[0].logprobs.content
    assert len(lp) >= 1 and all(len(e.top_logprobs) == 2 for e in lp)
    assert client.models.retrieve("smollm2").id == "smollm2"
