"""Knowledge distillation in the training recipe: a frozen teacher and the loss that blends it in.

The student's training loss becomes alpha · KL(teacher/T ‖ student/T) · T² + (1 − alpha) · task
loss (Hinton et al. 2015; the T² keeps the soft term's gradients on the scale of the hard one's
as T grows). Both terms are sums over the micro-batch's items, like `task_loss`, so the loop's
division by the step's item count still makes the gradient independent of how the step is split.

What "logits" means per task is what `task_loss` returns: class scores (classification), next-
token scores at every predicted position (causal-lm, padding masked out), and the in-batch
similarity matrix of texts against positives (embedding: the student learns the teacher's
ranking of the batch's positives).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from llmos.errors import ModelError
from llmos.run._evaluate import task_loss

__all__ = ["Teacher", "kl_sum", "load_teacher"]


@dataclass
class Teacher:
    model: Any  # frozen, eval mode, on the student's device
    temperature: float
    alpha: float

    def blend(self, loss_sum: torch.Tensor, student_logits: torch.Tensor, batch: dict[str, torch.Tensor],
              task: str) -> torch.Tensor:
        """The micro-batch's distillation loss (a sum over items) from its task-loss sum and logits."""
        with torch.no_grad():  # task_loss shapes the teacher's outputs like the student's (shifted for causal-lm)
            _, _, teacher_logits = task_loss(self.model, batch, task)
        mask = batch["labels"][:, 1:] != -100 if task == "causal-lm" else None
        kl = kl_sum(student_logits, teacher_logits.detach(), self.temperature, mask)
        return self.alpha * kl + (1.0 - self.alpha) * loss_sum


def kl_sum(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float,
           mask: torch.Tensor | None = None) -> torch.Tensor:
    """Σ over items of KL(softmax(teacher/T) ‖ softmax(student/T)) · T²; `mask` drops items (padding)."""
    t = temperature
    log_p_student = torch.log_softmax(student_logits.float() / t, dim=-1)
    log_p_teacher = torch.log_softmax(teacher_logits.float() / t, dim=-1)
    per_item = (log_p_teacher.exp() * (log_p_teacher - log_p_student)).sum(-1)
    if mask is not None:
        per_item = per_item * mask
    return per_item.sum() * (t * t)


def load_teacher(spec: Any, *, task: str, label_names: list[str] | None, tokenizer: Any,
                 device: torch.device) -> Teacher:
    """Load `distill.teacher` and check that its outputs line up with the student's."""
    from llmos.data._encode import tokenizer_fingerprint
    from llmos.models import MODEL_INFO, load_trained

    folder = Path(spec.teacher)
    if not (folder / MODEL_INFO).is_file():
        raise ModelError(f"distill.teacher: {folder} is not a model folder written by llmos (no {MODEL_INFO}).",
                         hint="Point distill.teacher at a run's model/ folder, or fetch a registered version "
                              "with `llmos models show NAME/VERSION`.")
    built = load_trained(folder)
    info = _info(folder)
    if info.get("task") != task:
        raise ModelError(f"distill.teacher was trained for task '{info.get('task')}', the student for '{task}'.",
                         hint="Distil from a teacher of the same task.")
    if task == "classification" and info.get("label_names") != label_names:
        raise ModelError(f"distill.teacher predicts labels {info.get('label_names')}, the data has {label_names}.",
                         hint="Set data.labels to the teacher's label names, in the teacher's order.")
    # The teacher reads the student's token ids: the two must tokenize alike.
    if tokenizer_fingerprint(built.tokenizer) != tokenizer_fingerprint(tokenizer):
        raise ModelError(f"distill.teacher ({folder}) uses another tokenizer than the student.",
                         hint="Distil into a student built from the teacher's tokenizer (same vocabulary).")
    model = built.model.to(device).eval().requires_grad_(False)
    return Teacher(model=model, temperature=spec.temperature, alpha=spec.alpha)


def _info(folder: Path) -> dict[str, Any]:
    import json

    from llmos.models import MODEL_INFO

    return json.loads((folder / MODEL_INFO).read_text())
