"""The sft section of a train spec: its defaults, and the combinations refused with the field named."""

from __future__ import annotations

import pytest

from llmos.errors import SpecError
from llmos.spec import validate_dict

BASE = {"kind": "train", "model": {"name": "smollm2-135m", "task": "causal-lm"},
        "data": {"train": "c.jsonl", "label_column": None}}


def test_sft_defaults_name_the_fields_and_pack() -> None:
    job = validate_dict({**BASE, "sft": {}})
    assert (job.sft.messages_field, job.sft.prompt_field, job.sft.completion_field) == (
        "messages", "prompt", "completion")
    assert job.sft.packing and job.sft.exact_match_examples == 64 and not job.sft.eval_before


def test_sft_needs_a_causal_lm_and_no_teacher() -> None:
    with pytest.raises(SpecError, match="sft trains a causal LM"):
        validate_dict({**BASE, "model": {"name": "minilm-l6", "task": "embedding"}, "sft": {},
                       "data": {"train": "c.jsonl", "text_pair_column": "p"}})
    with pytest.raises(SpecError, match="sft and distill cannot be combined"):
        validate_dict({**BASE, "sft": {}, "distill": {"teacher": "t"}})


def test_exact_match_can_stop_an_sft_run_early_and_unknown_keys_are_named() -> None:
    job = validate_dict({**BASE, "sft": {}, "train": {"early_stop": {"metric": "exact_match", "mode": "max"}}})
    assert job.train.early_stop.metric == "exact_match"
    with pytest.raises(SpecError) as err:
        validate_dict({**BASE, "sft": {"message_field": "m"}})
    assert "sft.message_field" in str(err.value)
