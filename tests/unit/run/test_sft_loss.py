"""The SFT loss: the recipe's causal-LM loss over chat rows counts the assistant's tokens only, and
the step is averaged over exactly those (tested against cross-entropy picked out by hand)."""

from __future__ import annotations

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from llmos.data import ChatEncoded, collate_chat
from llmos.run._evaluate import task_loss
from llmos.run.train import _items_in_step


def test_loss_sums_the_learned_tokens_only() -> None:
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=50, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                         num_attention_heads=2, num_key_value_heads=1)).eval()
    # Two conversations packed in one row (5 + 4 tokens), one alone; 1 marks a learned token.
    enc = ChatEncoded(input_ids=[[1, 5, 6, 7, 2, 1, 8, 9, 2], [1, 3, 4, 2]],
                      label_mask=[[0, 0, 0, 1, 1, 0, 0, 1, 1], [0, 0, 1, 1]], segments=[[5, 4], [4]])
    batch = collate_chat(enc, [0, 1], pad_id=0)
    with torch.no_grad():
        loss, count, _ = task_loss(model, batch, "causal-lm")
        logits = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits
    log_probs = logits.log_softmax(-1)
    by_hand = [-log_probs[r, t - 1, enc.input_ids[r][t]] for r in range(2) for t in range(1, len(enc.input_ids[r]))
               if enc.label_mask[r][t]]
    assert count.item() == len(by_hand) == 6 == _items_in_step(enc, [0, 1], "causal-lm")
    torch.testing.assert_close(loss, torch.stack(by_hand).sum())
