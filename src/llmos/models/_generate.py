"""Greedy chat answers from a causal LM: the one generation helper the SFT recipe's exact match and
the quickstart share (serving has its own batching engine)."""

from __future__ import annotations

from typing import Any

__all__ = ["greedy_answers"]

_BATCH = 16


def greedy_answers(model: Any, tokenizer: Any, prompts: list[list[dict[str, str]]], *, max_new_tokens: int,
                   device: Any = "cpu") -> list[str]:
    """The greedy completion of each conversation (its chat template applied, the assistant's turn
    opened), as text without special tokens; the model is left in the mode it was in."""
    import torch

    was_training = model.training
    model.eval()
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"  # generation continues from the last column of every row
    answers: list[str] = []
    try:
        with torch.no_grad():
            for start in range(0, len(prompts), _BATCH):
                texts = [tokenizer.apply_chat_template(p, tokenize=False, add_generation_prompt=True)
                         for p in prompts[start:start + _BATCH]]
                batch = tokenizer(texts, add_special_tokens=False, return_tensors="pt", padding=True).to(device)
                out = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False,
                                     pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
                answers += tokenizer.batch_decode(out[:, batch["input_ids"].shape[1]:], skip_special_tokens=True)
    finally:
        tokenizer.padding_side = side
        model.train(was_training)
    return answers
