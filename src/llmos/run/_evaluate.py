"""Losses and evaluation for each task: accuracy and macro-F1, loss and perplexity, recall@1.

Evaluation is sharded over ranks and the sufficient statistics summed, so every rank ends with
the same numbers.
"""

from __future__ import annotations

import math
from contextlib import nullcontext
from typing import Any

import torch

from llmos.data import collate
from llmos.run._dist import Dist

__all__ = ["evaluate", "task_loss"]

# In-batch-negatives temperature for embeddings (the usual 20× scale of cosine scores).
_EMBEDDING_SCALE = 20.0


def task_loss(model: Any, batch: dict[str, torch.Tensor], task: str
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """(sum of per-item losses, number of items, logits) for one micro-batch.

    Returning sums lets the loop divide by the whole step's count, so the gradient is the same
    however the step is split across workers and micro-batches.
    """
    if task == "embedding":
        anchor = model(batch["input_ids"], batch["attention_mask"])
        positive = model(batch["pair_input_ids"], batch["pair_attention_mask"])
        scores = anchor @ positive.T * _EMBEDDING_SCALE
        target = torch.arange(len(scores), device=scores.device)
        loss = torch.nn.functional.cross_entropy(scores, target, reduction="sum")
        return loss, target.new_tensor(len(target)), scores
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    if task == "causal-lm":
        # No KV cache when computing a loss; with one, transformers would also ignore the restarting
        # position ids of packed sft rows and let their conversations attend to each other.
        inputs["use_cache"] = False
    logits = model(**inputs).logits.float()
    labels = batch["labels"]
    if task == "causal-lm":
        logits, labels = logits[:, :-1], labels[:, 1:]
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1),
                                             ignore_index=-100, reduction="sum")
    return loss, (labels != -100).sum(), logits


@torch.no_grad()
def evaluate(model: Any, encoded: Any, *, task: str, dist: Dist, batch_size: int, pad_id: int,
             autocast: torch.dtype | None, num_labels: int = 0) -> dict[str, float]:
    model.eval()
    ctx = torch.autocast(dist.device.type, dtype=autocast) if autocast else nullcontext()
    if task == "embedding":
        result = _recall_at_1(model, encoded, batch_size=batch_size, pad_id=pad_id, ctx=ctx, dist=dist)
    else:
        order = sorted(range(len(encoded.input_ids)), key=lambda i: len(encoded.input_ids[i]))
        mine = order[dist.rank::dist.world_size]
        # loss sum, item count, then the flattened confusion matrix (true × predicted)
        stats = torch.zeros(2 + num_labels * num_labels, dtype=torch.float64)
        for start in range(0, len(mine), batch_size):
            batch = collate(encoded, mine[start:start + batch_size], pad_id=pad_id, task=task)
            batch = {k: v.to(dist.device) for k, v in batch.items()}
            with ctx:
                loss, count, logits = task_loss(model, batch, task)
            stats[0] += loss.item()
            stats[1] += count.item()
            if task == "classification":
                cells = batch["labels"].cpu() * num_labels + logits.argmax(-1).cpu()
                stats[2:] += cells.bincount(minlength=num_labels ** 2).double()
        stats = dist.sum(stats)
        mean_loss = (stats[0] / stats[1].clamp(min=1)).item()
        result = {"loss": mean_loss}
        if task == "classification":
            result.update(_classification(stats[2:].view(num_labels, num_labels)))
        else:
            result["perplexity"] = math.exp(min(mean_loss, 50.0))
    model.train()
    return result


def _classification(confusion: torch.Tensor) -> dict[str, float]:
    tp = confusion.diag()
    predicted, actual = confusion.sum(0), confusion.sum(1)
    precision = tp / predicted.clamp(min=1)
    recall = tp / actual.clamp(min=1)
    f1 = 2 * precision * recall / (precision + recall).clamp(min=1e-12)
    present = actual > 0  # macro-F1 over the classes the eval set has
    return {"accuracy": (tp.sum() / confusion.sum().clamp(min=1)).item(),
            "macro_f1": f1[present].mean().item() if present.any() else 0.0}


def _recall_at_1(model: Any, encoded: Any, *, batch_size: int, pad_id: int, ctx: Any,
                 dist: Dist) -> dict[str, float]:
    """Retrieve each text's positive among all eval positives: recall@1 and the InfoNCE loss."""
    anchors, positives = [], []
    for start in range(0, len(encoded.input_ids), batch_size):
        idx = list(range(start, min(start + batch_size, len(encoded.input_ids))))
        batch = {k: v.to(dist.device) for k, v in collate(encoded, idx, pad_id=pad_id, task="embedding").items()}
        with ctx:
            anchors.append(model(batch["input_ids"], batch["attention_mask"]).float())
            positives.append(model(batch["pair_input_ids"], batch["pair_attention_mask"]).float())
    scores = torch.cat(anchors) @ torch.cat(positives).T
    target = torch.arange(len(scores), device=scores.device)
    loss = torch.nn.functional.cross_entropy(scores * _EMBEDDING_SCALE, target).item()
    return {"loss": loss, "recall_at_1": (scores.argmax(-1) == target).float().mean().item()}
