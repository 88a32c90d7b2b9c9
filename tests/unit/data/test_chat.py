"""Chat data for instruction tuning: reading JSONL conversations and prompt/completion pairs, the
learned-token mask against one built by hand on SmolLM2's real tokenizer, and packing that keeps
each conversation's attention to itself."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from llmos.data import bundled_dataset_path, collate_chat, encode_chat, load_chat, tokenize_chat
from llmos.errors import DataError
from llmos.spec import DataSpec, SftSpec

CONVERSATION = [{"role": "system", "content": "Route support messages."},
                {"role": "user", "content": "Where is my parcel?"},
                {"role": "assistant", "content": "order_status"},
                {"role": "user", "content": "And my refund?"},
                {"role": "assistant", "content": "refund_request"}]


@pytest.fixture(scope="module")
def tokenizer(smollm2_folder: Path) -> object:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(smollm2_folder))


def _jsonl(write: Callable[[str, str], Path], name: str, rows: list[object]) -> Path:
    return write(name, "".join(json.dumps(r) + "\n" for r in rows))


def test_mask_equals_one_built_by_hand(tokenizer: object) -> None:
    # ChatML, written out piece by piece: only the answers and their <|im_end|> are learned.
    pieces = [("<|im_start|>system\nRoute support messages.<|im_end|>\n", 0),
              ("<|im_start|>user\nWhere is my parcel?<|im_end|>\n<|im_start|>assistant\n", 0),
              ("order_status<|im_end|>", 1), ("\n", 0),
              ("<|im_start|>user\nAnd my refund?<|im_end|>\n<|im_start|>assistant\n", 0),
              ("refund_request<|im_end|>", 1), ("\n", 0)]
    ids, mask = [], []
    for text, learned in pieces:
        piece = tokenizer(text, add_special_tokens=False)["input_ids"]
        ids += piece
        mask += [learned] * len(piece)
    assert tokenize_chat(CONVERSATION, tokenizer) == (ids, mask)
    assert tokenizer.decode([t for t, m in zip(ids, mask, strict=True) if m]) == \
        "order_status<|im_end|>refund_request<|im_end|>"


def test_packing_fills_rows_in_order_and_collate_restarts_positions(tokenizer: object) -> None:
    short = CONVERSATION[:3]
    n = len(tokenize_chat(short, tokenizer)[0])
    packed = encode_chat([short] * 5, tokenizer, max_length=2 * n, packing=True)
    assert packed.segments == [[n, n], [n, n], [n]]
    assert len(encode_chat([short] * 5, tokenizer, max_length=2 * n, packing=False)) == 5
    batch = collate_chat(packed, [0, 2], pad_id=tokenizer.pad_token_id)
    assert batch["position_ids"][0].tolist() == [*range(n), *range(n)]
    assert batch["position_ids"][1].tolist() == [*range(n), *range(n)]  # the padding is a segment of its own
    assert (batch["labels"][1, n:] == -100).all()


def test_packed_rows_attend_within_each_conversation(tokenizer: object) -> None:
    """A tiny random Llama gives the same logits to each conversation packed as alone."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2)).eval()
    conversations = [CONVERSATION[:3], CONVERSATION, CONVERSATION[3:]]
    packed = encode_chat(conversations, tokenizer, max_length=512, packing=True)
    assert len(packed) == 1
    batch = collate_chat(packed, [0], pad_id=tokenizer.pad_token_id)
    with torch.no_grad():
        # use_cache=False, as the recipe's loss passes it: with a cache transformers ignores packing.
        together = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits[0]
        start = 0
        for conversation in conversations:
            ids = torch.tensor([tokenize_chat(conversation, tokenizer)[0]])
            alone = model(input_ids=ids).logits[0]
            torch.testing.assert_close(together[start:start + ids.shape[1]], alone, rtol=1e-4, atol=1e-5)
            start += ids.shape[1]


def test_truncation_drops_conversations_with_nothing_learned(tokenizer: object) -> None:
    long_question = [{"role": "user", "content": "word " * 400}, {"role": "assistant", "content": "complaint"}]
    encoded = encode_chat([long_question, CONVERSATION[:3]], tokenizer, max_length=64, packing=True)
    assert encoded.dropped == 1 and len(encoded) == 1


def test_load_reads_messages_and_prompt_completion(write: Callable[[str, str], Path]) -> None:
    path = _jsonl(write, "t.jsonl", [{"messages": CONVERSATION}, {"q": "Where is it?", "a": "order_status"}])
    data = load_chat(DataSpec(train=str(path), eval=str(path), label_column=None),
                     SftSpec(prompt_field="q", completion_field="a"))
    assert data.train[0] == CONVERSATION
    assert data.train[1] == [{"role": "user", "content": "Where is it?"},
                             {"role": "assistant", "content": "order_status"}]
    assert data.label_names is None and len(data.data_hash) == 64


def test_bad_rows_are_named_by_line_and_field(write: Callable[[str, str], Path]) -> None:
    path = _jsonl(write, "bad.jsonl", [{"messages": CONVERSATION}, {"text": "no fields"},
                                       {"messages": [{"role": "bot", "content": "hi"}]},
                                       {"messages": CONVERSATION[:2]}])
    with pytest.raises(DataError) as err:
        load_chat(DataSpec(train=str(path), label_column=None), SftSpec())
    message = str(err.value)
    assert "3 malformed rows" in message and "line 2: neither 'messages' nor 'prompt' + 'completion'" in message
    assert "line 3: messages[0] must be {role: system|user|assistant" in message
    assert "line 4: the conversation must end with an assistant turn" in message


def test_a_csv_file_is_refused_with_the_fix(write: Callable[[str, str], Path]) -> None:
    path = write("t.csv", "text,label\nhi,a\n")
    with pytest.raises(DataError, match=r"sft\) reads JSONL"):
        load_chat(DataSpec(train=str(path), label_column=None), SftSpec())


def test_the_bundled_routing_set_loads_and_holds_both_forms() -> None:
    folder = bundled_dataset_path("support-routing")
    lines = (folder / "train.jsonl").read_text().splitlines()
    assert len(lines) == 559 and sum('"prompt"' in line for line in lines) == 139
    data = load_chat(DataSpec(train=str(folder / "train.jsonl"), eval=str(folder / "test.jsonl"),
                              label_column=None), SftSpec())
    assert len(data.train) == 559 and len(data.eval) == 142
    assert {c[-1]["content"] for c in data.eval} == {
        "account_access", "cancel_subscription", "change_shipping_address", "complaint", "order_status",
        "payment_problem", "product_question", "refund_request"}
