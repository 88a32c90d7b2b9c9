"""Known library noise is dropped from the logs; everything else those loggers say still shows."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

import llmos  # noqa: F401  (installs the filters)


def test_known_noise_is_dropped_and_the_rest_kept(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        logging.getLogger("torchao").warning("Failed to load /x/_C_mxfp8.so: Could not load this library")
        logging.getLogger("torchao").warning("a real problem")
        logging.getLogger("torch.utils._pytree").warning("%s is an Enum subclass and is now natively supported by "
                                                         "torch.compile", "<enum 'X'>")
        logging.getLogger("torch.utils._pytree").warning("another message")
    assert [r.getMessage() for r in caplog.records] == ["a real problem", "another message"]


def test_importing_the_model_stack_prints_no_kernel_library_noise() -> None:
    code = "import llmos, transformers, torchao; import llmos.models"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Failed to load" not in done.stderr and "Enum subclass" not in done.stderr, done.stderr
