"""schemathesis with every check against a real generation server (tiny causal LM, an API key
set), bounded by a fixed number of examples per operation and a time budget: no 5xx, no answer
that breaks the OpenAPI document (status codes, content types, response schemas, headers).

A request that the schema allows but a limit the schema cannot express refuses (too many tokens in
a prompt: 400, as OpenAI answers context_length_exceeded; prompts x n above limits.max_inputs: 413)
counts as an accepted answer for the positive-data check, and 413 (too many inputs) as a rejection
for the negative-data check, beside the statuses schemathesis ships (without 5xx); everything else is
as schemathesis ships it."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.unit.serve.conftest import register_tiny, serve_job

pytestmark = pytest.mark.timeout(240)

_CONFIG = """\
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "400", "401", "404", "413", "429"]

[checks.negative_data_rejection]
expected-statuses = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429"]
"""


@pytest.fixture
def lm_server(llmos_home: Path) -> Iterator[Any]:
    from llmos.serve import Service, prepare, serve_in_thread

    ref = register_tiny(llmos_home, "causal-lm", "tiny-lm")
    job = serve_job(ref, batching={"max_batch_size": 8},
                    limits={"max_new_tokens": 4, "max_inputs": 4, "max_input_tokens": 48, "timeout_s": 20})
    with serve_in_thread(Service(job, prepare(job), api_key="sesame")) as running:
        yield running


def test_schemathesis_all_checks_no_5xx_no_violation(lm_server: Any, tmp_path: Path) -> None:
    config = tmp_path / "schemathesis.toml"
    config.write_text(_CONFIG)
    st = Path(sys.executable).with_name("st")
    start = time.monotonic()
    done = subprocess.run([str(st), "--config-file", str(config), "run", f"{lm_server.url}/openapi.json",
                           "--checks", "all", "--max-examples", "10", "--max-time", "35", "--seed", "1",
                           "--generation-deterministic", "-H", "Authorization: Bearer sesame", "--workers", "1",
                           "--no-color"], capture_output=True, text=True, timeout=180)
    took_s = time.monotonic() - start
    assert done.returncode == 0, done.stdout[-8000:] + done.stderr[-2000:]
    assert " 5xx" not in done.stdout
    assert took_s < 90, f"schemathesis took {took_s:.0f} s"
