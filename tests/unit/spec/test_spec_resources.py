"""resources: what a training job may ask for."""

from __future__ import annotations

import pytest

from llmos.errors import SpecError
from llmos.spec import validate_dict

BASE = {"kind": "train", "model": {"name": "tiny-bert"}, "data": {"train": "x.csv"}}


def test_one_gpu_per_worker_and_the_fix_is_named() -> None:
    assert validate_dict({**BASE, "resources": {"procs": 4, "gpus_per_proc": 1}}).resources.gpus_per_proc == 1
    with pytest.raises(SpecError) as err:
        validate_dict({**BASE, "resources": {"procs": 1, "gpus_per_proc": 4}})
    assert "resources.gpus_per_proc" in err.value.message and "procs: 4 and gpus_per_proc: 1" in err.value.message
