"""The quickstart jobs: MiniLM-L6 fine-tuned on the bundled support-intents data, registered as
`quickstart@candidate`; and with `--llm`, SmolLM2-135M-Instruct instruction-tuned with LoRA on the
bundled support-routing conversations, registered as `support-router@candidate` and asked a question."""

from __future__ import annotations

from typing import Any

from llmos.spec import TrainJob

__all__ = ["LLM_MODEL_NAME", "ask", "quickstart_job", "quickstart_llm_job", "routing_prompt"]

LLM_MODEL_NAME = "support-router"


def quickstart_job(model: str = "minilm-l6", epochs: float = 4, max_steps: int | None = None,
                   procs: int = 1) -> TrainJob:
    from llmos.data import bundled_dataset_path
    from llmos.paths import runs_dir

    data = bundled_dataset_path("support-intents")
    return TrainJob.model_validate({
        "kind": "train",
        "name": "quickstart",
        "output": str(runs_dir() / "quickstart"),
        "model": {"name": model, "task": "classification", "max_length": 64},
        "data": {"train": str(data / "train.csv"), "eval": str(data / "test.csv"),
                 "text_column": "text", "label_column": "label"},
        # A small set: a higher learning rate and a short warmup converge in a few epochs.
        "train": {"epochs": epochs, "max_steps": max_steps, "batch_size": 16, "lr": 1e-4,
                  "warmup_ratio": 0.1, "log_every_steps": 5},
        "checkpoint": {"every_steps": None, "keep": 1},
        "resources": {"procs": procs},
        "register": {"name": "quickstart", "alias": "candidate",
                     "description": f"{'MiniLM-L6' if model == 'minilm-l6' else model} fine-tuned on the "
                                    "bundled support-intents data"},
    })


def quickstart_llm_job(model: str = "smollm2-135m", max_steps: int = 40, eval_examples: int = 32,
                       procs: int = 1) -> TrainJob:
    """LoRA SFT sized for a few minutes on 2 cores: `max_steps` rows of 512 packed tokens (about five
    conversations each), loss and exact match on the first `eval_examples` test conversations before
    and after."""
    from llmos.data import bundled_dataset_path
    from llmos.paths import runs_dir

    data = bundled_dataset_path("support-routing")
    return TrainJob.model_validate({
        "kind": "train",
        "name": "quickstart-llm",
        "output": str(runs_dir() / "quickstart-llm"),
        "model": {"name": model, "task": "causal-lm", "max_length": 512,
                  "lora": {"r": 16, "alpha": 32, "dropout": 0.0,
                           "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                              "down_proj"]}},
        "data": {"train": str(data / "train.jsonl"), "eval": str(data / "test.jsonl"), "label_column": None},
        "sft": {"eval_examples": eval_examples, "exact_match_examples": eval_examples, "max_new_tokens": 8,
                "eval_before": True},
        # LoRA on a small set: a high learning rate; one packed row a step keeps each step short on a CPU.
        "train": {"max_steps": max_steps, "epochs": 1, "batch_size": 1, "lr": 1e-3, "warmup_ratio": 0.05,
                  "log_every_steps": 5},
        "checkpoint": {"every_steps": None, "keep": 1},
        "resources": {"procs": procs},
        "register": {"name": LLM_MODEL_NAME, "alias": "candidate",
                     "description": f"{model} tuned with LoRA on the bundled support-routing conversations"},
    })


def routing_prompt(message: str) -> list[dict[str, str]]:
    """A conversation asking to route `message`, worded as the training conversations are."""
    import json

    from llmos.data import bundled_dataset_path

    first = json.loads((bundled_dataset_path("support-routing") / "train.jsonl").read_text().splitlines()[0])
    return [first["messages"][0], {"role": "user", "content": f"Route this message: {message}"}]


def ask(ref: str, conversation: list[dict[str, str]], max_new_tokens: int = 16) -> str:
    """The greedy answer of the registered model `ref` (e.g. support-router@candidate) to a conversation."""
    from llmos.models import greedy_answers
    from llmos.registry import load

    built: Any = load(ref)
    return greedy_answers(built.model, built.tokenizer, [conversation], max_new_tokens=max_new_tokens)[0].strip()
