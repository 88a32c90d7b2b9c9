"""Pydantic models of job specs: the YAML key, the field name, the CLI override and the word in
an error message are one and the same. Every field carries a one-line description, from which
`llmos spec example KIND` writes a commented example."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "CheckpointSpec",
    "DataSpec",
    "DistillSpec",
    "EarlyStopSpec",
    "LoraSpec",
    "ModelSpec",
    "RegisterSpec",
    "ResourcesSpec",
    "SftSpec",
    "TrackingSpec",
    "TrainJob",
    "TrainSpec",
]

Task = Literal["classification", "embedding", "causal-lm"]


class _Strict(BaseModel):
    # coerce_numbers_to_str: `text_column: 0` names the first column of a headerless file.
    model_config = ConfigDict(extra="forbid", validate_assignment=True, validate_by_name=True,
                              validate_by_alias=True, serialize_by_alias=True, coerce_numbers_to_str=True)


class LoraSpec(_Strict):
    r: Annotated[int, Field(gt=0, description="LoRA rank")] = 8
    alpha: Annotated[int, Field(gt=0, description="LoRA scaling numerator (scale = alpha / r)")] = 16
    dropout: Annotated[float, Field(ge=0, lt=1, description="dropout on the LoRA branch")] = 0.05
    target_modules: Annotated[list[str] | None, Field(
        description="module names to adapt; null lets peft choose for known architectures")] = None


class ModelSpec(_Strict):
    name: Annotated[str, Field(min_length=1, description=(
        "a preset (`llmos models presets`), a local Hugging Face folder or a hub id"))] = "minilm-l6"
    task: Annotated[Task, Field(description="classification, embedding or causal-lm")] = "classification"
    max_length: Annotated[int, Field(gt=0, le=32768, description="tokens kept per example")] = 128
    lora: Annotated[LoraSpec | None, Field(
        description="fine-tune a causal LM with LoRA adapters instead of all weights")] = None
    trust_remote_code: Annotated[bool, Field(description="allow custom model code from the hub")] = False

    @model_validator(mode="after")
    def _lora_only_for_causal(self) -> ModelSpec:
        if self.lora is not None and self.task != "causal-lm":
            raise ValueError("lora is supported for task 'causal-lm' only; remove model.lora")
        return self


class DataSpec(_Strict):
    train: Annotated[str, Field(min_length=1, description=(
        "training data: a .csv/.tsv/.jsonl/.parquet file, or `hf:DATASET_ID` (needs network)"))]
    eval: Annotated[str | None, Field(description=(
        "held-out data in the same forms; null splits `eval_fraction` off the training data"))] = None
    format: Annotated[Literal["auto", "csv", "tsv", "jsonl", "parquet", "hf"], Field(
        description="file format; auto reads the file extension")] = "auto"
    header: Annotated[bool | None, Field(description=(
        "whether CSV/TSV files start with a header row; null detects it"))] = None
    text_column: Annotated[str, Field(description=(
        "column holding the text (for a file without header: its 0-based index, e.g. '0')"))] = "text"
    text_pair_column: Annotated[str | None, Field(description=(
        "second text of a pair (classification of pairs; the positive for embedding)"))] = None
    label_column: Annotated[str | None, Field(description=(
        "column holding the label (classification); null for embedding and causal-lm"))] = "label"
    labels: Annotated[list[str] | None, Field(description=(
        "label names in id order; null takes the sorted distinct labels of the training data"))] = None
    eval_fraction: Annotated[float, Field(gt=0, lt=1, description=(
        "share of the training data held out when `eval` is null"))] = 0.1
    split_seed: Annotated[int, Field(description="seed of the held-out split")] = 0
    hf_train_split: Annotated[str, Field(description="split name for `hf:` training data")] = "train"
    hf_eval_split: Annotated[str, Field(description="split name for `hf:` eval data")] = "validation"
    limit: Annotated[int | None, Field(gt=0, description=(
        "use only the first N training examples (for smoke runs)"))] = None


class EarlyStopSpec(_Strict):
    metric: Annotated[str, Field(description="eval metric to watch, e.g. accuracy, macro_f1, loss")] = "loss"
    mode: Annotated[Literal["min", "max"], Field(description="whether lower or higher is better")] = "min"
    patience: Annotated[int, Field(gt=0, description="evaluations without improvement before stopping")] = 2
    min_delta: Annotated[float, Field(ge=0, description="smallest change that counts as improvement")] = 0.0


class TrainSpec(_Strict):
    epochs: Annotated[float, Field(gt=0, description="passes over the training data")] = 3
    max_steps: Annotated[int | None, Field(gt=0, description=(
        "stop after this many optimizer steps (overrides epochs when reached first)"))] = None
    batch_size: Annotated[int, Field(gt=0, description="examples per worker per micro-batch")] = 32
    grad_accum: Annotated[int, Field(gt=0, description="micro-batches accumulated per optimizer step")] = 1
    optimizer: Annotated[Literal["adamw", "sgd"], Field(description="adamw or sgd")] = "adamw"
    lr: Annotated[float, Field(gt=0, description="peak learning rate")] = 5e-5
    weight_decay: Annotated[float, Field(ge=0, description="decoupled weight decay (not on biases/norms)")] = 0.01
    momentum: Annotated[float, Field(ge=0, lt=1, description="SGD momentum")] = 0.9
    betas: Annotated[tuple[float, float], Field(description="AdamW betas")] = (0.9, 0.999)
    schedule: Annotated[Literal["linear", "cosine", "constant"], Field(
        description="learning-rate decay after warmup")] = "linear"
    warmup_ratio: Annotated[float, Field(ge=0, lt=1, description=(
        "share of all steps spent warming up linearly from 0"))] = 0.06
    max_grad_norm: Annotated[float | None, Field(gt=0, description="clip gradients to this norm; null: off")] = 1.0
    precision: Annotated[Literal["auto", "fp32", "bf16", "fp16"], Field(description=(
        "auto: bf16 autocast where the hardware has it (AMX/AVX512-BF16 CPUs, Ampere+ GPUs), fp16 on "
        "older GPUs, else fp32; "
        "fp16 needs CUDA and uses a gradient scaler"))] = "auto"
    seed: Annotated[int, Field(description="seed of weights init, dropout and data order")] = 42
    group_by_length: Annotated[bool, Field(description=(
        "batch examples of similar length together to cut padding"))] = True
    eval_every_steps: Annotated[int | None, Field(gt=0, description=(
        "also evaluate every N optimizer steps; null: at each epoch end only"))] = None
    early_stop: Annotated[EarlyStopSpec | None, Field(description="stop when an eval metric stalls")] = None
    log_every_steps: Annotated[int, Field(gt=0, description="log training metrics every N steps")] = 10
    num_threads: Annotated[int | None, Field(gt=0, description=(
        "CPU threads per worker; null: the cores given to the worker"))] = None


class CheckpointSpec(_Strict):
    every_steps: Annotated[int | None, Field(gt=0, description=(
        "write a checkpoint every N optimizer steps; null: at epoch ends only"))] = 200
    keep: Annotated[int, Field(gt=0, description="complete checkpoints kept on disk")] = 2
    resume: Annotated[bool, Field(description=(
        "resume from the latest complete checkpoint in the output folder"))] = True


class ResourcesSpec(_Strict):
    procs: Annotated[int, Field(gt=0, description="worker processes per node (DDP when above 1)")] = 1
    nodes: Annotated[int, Field(gt=0, description="machines taking part")] = 1
    node_rank: Annotated[int, Field(ge=0, description="this machine's rank among `nodes`")] = 0
    rdzv_endpoint: Annotated[str | None, Field(description=(
        "host:port of the rendezvous when nodes > 1 (the same on every node)"))] = None
    device: Annotated[Literal["auto", "cpu", "cuda"], Field(
        description="auto uses CUDA when present")] = "auto"
    cpus_per_proc: Annotated[int | None, Field(gt=0, description="CPU cores per worker")] = None
    memory_gb: Annotated[float | None, Field(gt=0, description="memory per worker, in GB")] = None
    gpus_per_proc: Annotated[int, Field(ge=0, description=(
        "GPUs per worker: 0 or 1 (data-parallel training runs one GPU per process; for N GPUs set "
        "procs to N)"))] = 0

    @field_validator("gpus_per_proc")
    @classmethod
    def _one_gpu_per_worker(cls, value: int) -> int:
        if value > 1:  # each worker trains a whole replica of the model on cuda:LOCAL_RANK
            raise ValueError(f"{value} GPUs per worker would leave all but one idle: data-parallel training runs "
                             f"one GPU per process; for {value} GPUs set procs: {value} and gpus_per_proc: 1")
        return value

    @model_validator(mode="after")
    def _multi_node(self) -> ResourcesSpec:
        # nodes > 1 without rdzv_endpoint is fine under a Ray control plane, which sets the rendezvous;
        # `llmos train` on each node asks for it (run._launch.worker_command).
        if self.node_rank >= self.nodes:
            raise ValueError(f"node_rank {self.node_rank} must be below nodes ({self.nodes})")
        return self


class DistillSpec(_Strict):
    teacher: Annotated[str, Field(min_length=1, description=(
        "folder of the teacher model (one written by llmos, e.g. a run's model/ folder), same task and labels"))]
    temperature: Annotated[float, Field(gt=0, description=(
        "softens teacher and student distributions; the KL term is scaled by temperature²"))] = 2.0
    alpha: Annotated[float, Field(ge=0, le=1, description=(
        "weight of KL(teacher ‖ student); the task loss gets 1 − alpha"))] = 0.5


class SftSpec(_Strict):
    """Instruction tuning: each JSONL row is a conversation, or a prompt/completion pair taken as one user
    turn and one assistant turn; the model's chat template is applied and only assistant tokens are learned."""

    messages_field: Annotated[str, Field(min_length=1, description=(
        "JSONL key of a conversation: a list of {role: system|user|assistant, content}"))] = "messages"
    prompt_field: Annotated[str, Field(min_length=1, description=(
        "JSONL key of the prompt, in rows without messages_field"))] = "prompt"
    completion_field: Annotated[str, Field(min_length=1, description=(
        "JSONL key of the completion (the answer learned) beside prompt_field"))] = "completion"
    packing: Annotated[bool, Field(description=(
        "pack several conversations into one row of up to model.max_length tokens, each attending only to "
        "itself"))] = True
    eval_examples: Annotated[int | None, Field(gt=0, description=(
        "eval conversations kept for loss and perplexity (the first N); null: all"))] = None
    exact_match_examples: Annotated[int, Field(ge=0, description=(
        "eval conversations answered greedily for exact match against their last assistant turn; 0: off"))] = 64
    max_new_tokens: Annotated[int, Field(gt=0, le=4096, description=(
        "tokens generated per exact-match answer"))] = 32
    eval_before: Annotated[bool, Field(description=(
        "also evaluate the base model before the first step (summary: before_loss, before_exact_match)"))] = False


class TrackingSpec(_Strict):
    enabled: Annotated[bool, Field(description="record the run in MLflow")] = True
    uri: Annotated[str | None, Field(description=(
        "MLflow tracking URI; null: $LLMOS_TRACKING_URI, else SQLite under $LLMOS_HOME"))] = None
    experiment: Annotated[str, Field(min_length=1, description="MLflow experiment name")] = "llmos"
    system_metrics: Annotated[bool, Field(description="log CPU, memory and GPU use")] = True
    log_model: Annotated[bool, Field(description="log the final model as an artifact")] = True


class RegisterSpec(_Strict):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", description=(
        "registered model name"))]
    alias: Annotated[str | None, Field(pattern=r"^[A-Za-z][A-Za-z0-9_-]*$", description=(
        "alias pointed at the new version, e.g. candidate"))] = None
    description: Annotated[str | None, Field(description="free text stored with the version")] = None


class TrainJob(_Strict):
    kind: Annotated[Literal["train"], Field(description="what the job does")] = "train"
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", description=(
        "run name; also names the output folder"))] = "train"
    output: Annotated[Path | None, Field(description=(
        "run folder (checkpoints, resolved spec, model); null: $LLMOS_HOME/runs/NAME"))] = None
    model: Annotated[ModelSpec, Field(description="what to fine-tune")] = ModelSpec()
    data: Annotated[DataSpec, Field(description="where the examples come from")]
    train: Annotated[TrainSpec, Field(description="the optimisation loop")] = TrainSpec()
    checkpoint: Annotated[CheckpointSpec, Field(description="when to save resumable state")] = CheckpointSpec()
    resources: Annotated[ResourcesSpec, Field(description="processes, machines and devices")] = ResourcesSpec()
    distill: Annotated[DistillSpec | None, Field(description=(
        "learn from a teacher model's outputs as well as the labels (knowledge distillation)"))] = None
    sft: Annotated[SftSpec | None, Field(description=(
        "instruction tuning of a causal LM on chat JSONL (data.train, data.eval); null: plain text"))] = None
    tracking: Annotated[TrackingSpec, Field(description="MLflow recording")] = TrackingSpec()
    # `register` would shadow a class attribute of pydantic's metaclass, hence the alias.
    registration: Annotated[RegisterSpec | None, Field(alias="register", description=(
        "register the trained model in the registry"))] = None

    @model_validator(mode="after")
    def _task_columns(self) -> TrainJob:
        task, data = self.model.task, self.data
        if task == "classification" and not data.label_column:
            raise ValueError("task 'classification' needs data.label_column")
        if task == "embedding" and not data.text_pair_column:
            raise ValueError("task 'embedding' trains on (text, positive) pairs: set data.text_pair_column")
        if self.sft is not None and task != "causal-lm":
            raise ValueError("sft trains a causal LM: set model.task to causal-lm, or remove the sft section")
        if self.sft is not None and self.distill is not None:
            raise ValueError("sft and distill cannot be combined yet: remove one of the two sections")
        if self.registration is not None and not (self.tracking.enabled and self.tracking.log_model):
            raise ValueError("register needs the model in MLflow: set tracking.enabled and tracking.log_model "
                             "to true, or remove the register section")
        if self.train.early_stop and task != "classification" and self.train.early_stop.metric not in (
                "loss", "perplexity", "recall_at_1", *(("exact_match",) if self.sft else ())):
            raise ValueError(f"train.early_stop.metric '{self.train.early_stop.metric}' is not reported "
                             f"for task '{task}'")
        return self
