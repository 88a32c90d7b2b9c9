"""Deterministic, length-grouped, rank-sharded batching.

An optimizer step consumes one *step batch* of `world_size × grad_accum × batch_size` examples.
Its composition depends only on (seed, epoch, lengths, step size), never on how many workers
share it: 2 workers × 4 examples and 1 worker × 8 examples see the same examples per step, so
DDP and a single process with the same global batch reach the same weights. The plan is a pure
function of the epoch, so resuming is skipping the first k step batches.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

__all__ = ["BatchPlan", "collate"]

# How many step batches are sorted together when grouping by length: large enough to cut
# padding, small enough that batches stay well mixed across the epoch.
_MEGA_STEPS = 50


@dataclass(frozen=True)
class BatchPlan:
    lengths: tuple[int, ...]
    batch_size: int
    grad_accum: int = 1
    world_size: int = 1
    rank: int = 0
    seed: int = 0
    group_by_length: bool = True

    @property
    def step_size(self) -> int:
        return self.world_size * self.grad_accum * self.batch_size

    def steps_per_epoch(self) -> int:
        full, rest = divmod(len(self.lengths), self.step_size)
        return full + (1 if rest >= self._min_step() else 0)

    def epoch(self, epoch: int) -> list[list[int]]:
        """All step batches of `epoch`, as example indices, the same on every rank."""
        rng = random.Random(self.seed * 1_000_003 + epoch)
        order = list(range(len(self.lengths)))
        rng.shuffle(order)
        if self.group_by_length:
            mega = self.step_size * _MEGA_STEPS
            order = [i for start in range(0, len(order), mega)
                     for i in sorted(order[start:start + mega], key=self.lengths.__getitem__, reverse=True)]
        steps = [order[i:i + self.step_size] for i in range(0, len(order), self.step_size)]
        if steps and len(steps[-1]) < self._min_step():
            steps.pop()  # too small to give every worker's every micro-batch an example
        rng.shuffle(steps)
        return steps

    def micro_batches(self, step: list[int]) -> list[list[int]]:
        """This rank's `grad_accum` micro-batches of a step batch (contiguous, so lengths match)."""
        return [_split(chunk, self.world_size)[self.rank] for chunk in _split(step, self.grad_accum)]

    def _min_step(self) -> int:
        return self.world_size * self.grad_accum


def _split(items: list[int], parts: int) -> list[list[int]]:
    """Split into `parts` contiguous pieces whose sizes differ by at most one."""
    size, extra = divmod(len(items), parts)
    out, start = [], 0
    for p in range(parts):
        end = start + size + (1 if p < extra else 0)
        out.append(items[start:end])
        start = end
    return out


def collate(encoded: Any, indices: list[int], *, pad_id: int, task: str,
            pad_to_multiple_of: int | None = None) -> dict[str, Any]:
    """Tensors for one micro-batch, padded to its own longest example (dynamic padding)."""
    if getattr(encoded, "label_mask", None) is not None:  # chat rows for instruction tuning
        from llmos.data._chat_encode import collate_chat

        return collate_chat(encoded, indices, pad_id=pad_id)
    batch = _pad([encoded.input_ids[i] for i in indices], pad_id, pad_to_multiple_of)
    if encoded.token_type_ids is not None:
        batch["token_type_ids"] = _pad([encoded.token_type_ids[i] for i in indices], 0,
                                       pad_to_multiple_of)["input_ids"]
    import torch

    if task == "classification":
        batch["labels"] = torch.tensor([encoded.labels[i] for i in indices], dtype=torch.long)
    elif task == "causal-lm":
        labels = batch["input_ids"].clone()
        labels[batch["attention_mask"] == 0] = -100  # no loss on padding
        batch["labels"] = labels
    elif task == "embedding":
        pair = _pad([encoded.pair_input_ids[i] for i in indices], pad_id, pad_to_multiple_of)
        batch["pair_input_ids"], batch["pair_attention_mask"] = pair["input_ids"], pair["attention_mask"]
    return batch


def _pad(rows: list[list[int]], pad_id: int, multiple: int | None) -> dict[str, Any]:
    import torch

    width = max(len(r) for r in rows)
    if multiple:
        width = -(-width // multiple) * multiple
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        mask[i, : len(row)] = 1
    return {"input_ids": ids, "attention_mask": mask}
