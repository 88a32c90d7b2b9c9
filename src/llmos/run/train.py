"""The fine-tuning recipe: set-up → loop → evaluate → save.

One file that reads top to bottom. It runs as a single process or as one worker of a
`torchrun` gang (DistributedDataParallel, gloo on CPU, nccl on GPU); rank 0 alone logs, writes
checkpoints and talks to MLflow. Start it with `python -m llmos.run JOB.json`.
"""

from __future__ import annotations

import json
import math
import random
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from llmos._threads import CoreWatch, apply_plan, plan_threads
from llmos.data import BatchPlan, collate, encode, encode_chat, load_chat, load_dataset
from llmos.errors import CheckpointError, DataError, SpecError
from llmos.models import build, save_trained
from llmos.run import _checkpoint as ckpt
from llmos.run import _evalfile as evalfile
from llmos.run import _runfile as runfile
from llmos.run._dist import Dist, init
from llmos.run._distill import load_teacher
from llmos.run._dropout import use_fast_dropout
from llmos.run._evaluate import evaluate, task_loss
from llmos.run._exact_match import exact_match
from llmos.run._optim import build_optimizer, build_schedule, precision_for
from llmos.run._progress import Progress
from llmos.run._signals import EXIT_PREEMPTED, StopRequest
from llmos.spec import TrainJob

__all__ = ["train"]


@dataclass
class LoopState:
    """Where the loop is; saved whole in every checkpoint, so a resumed run continues exactly."""

    step: int = 0  # optimizer steps done
    epoch: int = 0
    position: int = 0  # step batches of `epoch` done
    best: float | None = None  # best value of train.early_stop.metric so far
    stale: int = 0  # evaluations since it improved
    last_eval_step: int = -1
    stopped_early: bool = False


def train(job: TrainJob) -> int:
    """Run the job to completion (exit 0) or to a graceful stop (EXIT_PREEMPTED)."""
    # ---- set-up -----------------------------------------------------------------------------
    stop = StopRequest().install()
    dist = init(job.resources.device)
    cfg, task = job.train, job.model.task
    run_dir = Path(job.output)  # type: ignore[arg-type]  # resolved by the launcher
    threads = plan_threads(cfg.num_threads, workers=dist.local_world_size, field="train.num_threads")
    apply_plan(threads)
    # Fewer threads while other processes keep some of our cores busy (none of them is the user's).
    watch = CoreWatch(threads.threads, threads.cores) if threads.adaptive and dist.device.type == "cpu" else None
    torch.manual_seed(cfg.seed)  # identical initial weights on every rank
    random.seed(cfg.seed)

    # Instruction tuning (sft) reads conversations; every other run reads texts (and labels).
    data = load_chat(job.data, job.sft) if job.sft else load_dataset(job.data, task)
    built = build(job.model.name, task, label_names=data.label_names, lora=job.model.lora,
                  trust_remote_code=job.model.trust_remote_code)
    model, tokenizer = built.model.to(dist.device), built.tokenizer
    if dist.device.type == "cpu":
        use_fast_dropout(model)  # same masks' distribution, ~3x cheaper random bits (run/_dropout.py)
    enc_train, enc_eval = _encode_splits(job, data, tokenizer)
    pad_id = tokenizer.pad_token_id or 0
    num_labels = len(data.label_names or [])
    # Distillation: a frozen teacher whose outputs the loss also follows (None: plain fine-tuning).
    teacher = load_teacher(job.distill, task=task, label_names=data.label_names, tokenizer=tokenizer,
                           device=dist.device) if job.distill else None

    plan = BatchPlan(tuple(enc_train.lengths), batch_size=cfg.batch_size, grad_accum=cfg.grad_accum,
                     world_size=dist.world_size, rank=dist.rank, seed=cfg.seed,
                     group_by_length=cfg.group_by_length)
    steps_per_epoch = plan.steps_per_epoch()
    if steps_per_epoch == 0:
        raise DataError(f"the training split has {len(enc_train.lengths)} examples, fewer than one step "
                        f"needs ({plan.world_size * plan.grad_accum}).",
                        hint="Add data, or lower train.grad_accum / resources.procs.")
    total_steps = math.ceil(cfg.epochs * steps_per_epoch)
    if cfg.max_steps:
        total_steps = min(total_steps, cfg.max_steps)
    # What fixes the order of examples: a checkpoint resumes only into the same plan.
    geometry = {"examples": len(enc_train.lengths), "step_size": plan.step_size, "seed": cfg.seed,
                "group_by_length": cfg.group_by_length}
    optimizer = build_optimizer(model, cfg)
    schedule = build_schedule(optimizer, cfg, total_steps)
    autocast_dtype, needs_scaler = precision_for(cfg.precision, dist.device)
    scaler = torch.amp.GradScaler("cuda") if needs_scaler else None

    # ---- resume: rank 0 picks the newest complete checkpoint, every rank loads that one --------
    state = LoopState()
    ckpt_dir = run_dir / "checkpoints"
    newest = ckpt.latest(ckpt_dir) if job.checkpoint.resume and dist.is_main else None
    resume_step = dist.share(newest.step if newest else -1)
    last = newest if dist.is_main else (ckpt.at(ckpt_dir, resume_step) if resume_step >= 0 else None)
    if last is not None:
        if last.state["geometry"] != geometry:
            raise CheckpointError(f"{last.path} was written with a different data plan "
                                  f"({last.state['geometry']} vs {geometry}).",
                                  hint="Resume with the same data, seed and global batch "
                                       "(procs × batch_size × grad_accum), or start over with --fresh.")
        last.load_model(model)
        last.load_optimizer(optimizer)
        schedule.load_state_dict(last.state["scheduler"])
        if scaler is not None and last.state.get("scaler"):
            scaler.load_state_dict(last.state["scaler"])
        ckpt.restore_rng(last)
        state = LoopState(**last.state["loop"])
    saved_step = state.step if last is not None else -1

    model = dist.wrap(model)
    tracker = _tracker(job, data, run_dir, dist)
    progress = Progress(total_steps, start=state.step, enabled=dist.is_main)
    if dist.is_main:
        runfile.update(run_dir, run_id=tracker.run_id, status="running")
        if last is None:
            tracker.log_params({"data.train_examples": len(enc_train.lengths), "run.total_steps": total_steps,
                                "run.world_size": dist.world_size, "run.precision": str(autocast_dtype or "fp32"),
                                "run.threads_per_worker": threads.threads})
        else:
            progress.note(f"resumed from {last.path.name} (step {state.step}, epoch {state.epoch})")

    def save_checkpoint() -> None:
        nonlocal saved_step
        if state.step == saved_step:  # e.g. an epoch end that was also a checkpoint step
            return
        if dist.is_main:
            ckpt.save(ckpt_dir, step=state.step, model=_unwrap(model), optimizer=optimizer,
                      state={"loop": asdict(state), "geometry": geometry, "scheduler": schedule.state_dict(),
                             "scaler": scaler.state_dict() if scaler else None},
                      keep=job.checkpoint.keep)
        saved_step = state.step
        dist.barrier()

    def evaluate_now() -> dict[str, float]:
        metrics = evaluate(_unwrap(model), enc_eval, task=task, dist=dist, batch_size=cfg.batch_size * 2,
                           pad_id=pad_id, autocast=autocast_dtype, num_labels=num_labels)
        state.last_eval_step = state.step
        state.stopped_early = _should_stop(job, metrics, state)
        if job.sft and job.sft.exact_match_examples:  # greedy answers against the reference turns
            metrics.update(exact_match(_unwrap(model), tokenizer, data.eval, limit=job.sft.exact_match_examples,
                                       max_new_tokens=job.sft.max_new_tokens, dist=dist))
        tracker.log_metrics({f"eval/{k}": v for k, v in metrics.items()}, state.step)
        if dist.is_main:  # read by a sweep's pruner (llmos.sweep), which has no other way in
            evalfile.append(run_dir, state.step, metrics)
        progress.note("eval " + "  ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
        return metrics

    # ---- loop -------------------------------------------------------------------------------
    model.train()
    started = time.perf_counter()
    window = _Window()
    steady = _Window()  # every step after this process's first _WARM_STEPS: the run's steady-state rate
    first_step = state.step
    metrics: dict[str, float] = {}
    batches = plan.epoch(state.epoch)
    before: dict[str, float] = {}  # the base model's eval metrics, for a before/after comparison
    if job.sft and job.sft.eval_before and state.step == 0:
        before = {f"before_{k}": v for k, v in evaluate_now().items()}
    while state.step < total_steps and not state.stopped_early:
        if state.position == len(batches):  # the epoch is done: evaluate, checkpoint, next one
            state.epoch, state.position = state.epoch + 1, 0
            batches = plan.epoch(state.epoch)
            metrics = evaluate_now()
            save_checkpoint()
            continue

        step_batch = batches[state.position]
        t_step = time.perf_counter()
        # Dropout draws from a seed that is a function of (step, rank): resume is exact.
        torch.manual_seed(cfg.seed + 1_000_003 * (state.step + 1) + dist.rank)
        step_items = _items_in_step(enc_train, step_batch, task)
        for j, idx in enumerate(plan.micro_batches(step_batch)):
            batch = {k: v.to(dist.device, non_blocking=True)
                     for k, v in collate(enc_train, idx, pad_id=pad_id, task=task).items()}
            sync = model.no_sync() if dist.enabled and j < cfg.grad_accum - 1 else nullcontext()
            amp = torch.autocast(dist.device.type, dtype=autocast_dtype) if autocast_dtype else nullcontext()
            with sync, amp:
                loss_sum, _, logits = task_loss(model, batch, task)
                if teacher is not None:
                    loss_sum = teacher.blend(loss_sum, logits, batch, task)
                # DDP averages gradients over ranks: scale so the result is sum / step_items.
                loss = loss_sum * dist.world_size / step_items
            (scaler.scale(loss) if scaler else loss).backward()
            window.loss_sum += loss_sum.detach()  # stays on the device: no sync per step
        if scaler:
            scaler.unscale_(optimizer)
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm) if cfg.max_grad_norm \
            else None
        if scaler:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        state.step, state.position = state.step + 1, state.position + 1
        if watch is not None:
            watch.adjust()
        busy_s = time.perf_counter() - t_step
        window.add(items=step_items / dist.world_size, examples=len(step_batch), busy_s=busy_s)
        if state.step - first_step > _WARM_STEPS:
            steady.add(items=0, examples=len(step_batch), busy_s=busy_s)

        if state.step % cfg.log_every_steps == 0 or state.step == total_steps:
            _log_window(window, grad_norm, tracker, progress, dist, state, schedule, steps_per_epoch)
            window = _Window()
        progress.advance(state.step)
        if cfg.eval_every_steps and state.step % cfg.eval_every_steps == 0:
            metrics = evaluate_now()
        if job.checkpoint.every_steps and state.step % job.checkpoint.every_steps == 0:
            save_checkpoint()
        if dist.any(stop.requested):
            save_checkpoint()
            return _preempted(run_dir, tracker, progress, dist, state.step, stop)

    # ---- evaluate and save ------------------------------------------------------------------
    if state.last_eval_step != state.step or not metrics:  # ended mid-epoch, or resumed at the end
        metrics = evaluate_now()
    save_checkpoint()
    progress.close()
    wall_s = time.perf_counter() - started
    if dist.is_main:
        model_dir = save_trained(_unwrap(model), tokenizer, run_dir / "model", task=task, base=built.base,
                                 label_names=data.label_names, max_length=job.model.max_length)
        rate = steady.examples * dist.world_size / steady.busy_s if steady.busy_s else None
        _finish(job, data, model_dir, built.base, tracker, {**before, **metrics}, wall_s, state, rate)
    dist.barrier()
    dist.close()
    return 0


# ---- helpers (no hidden control flow: each does one thing the loop above names) -------------

_WARM_STEPS = 10  # steps left out of the steady-state rate (first kernels, allocator warm-up)


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if hasattr(model, "module") else model


def _encode_splits(job: TrainJob, data: Any, tokenizer: Any) -> tuple[Any, Any]:
    """Token rows of both splits: chat-templated (and packed) conversations for sft, else texts."""
    if job.sft:
        return tuple(encode_chat(split, tokenizer, max_length=job.model.max_length, packing=job.sft.packing)
                     for split in (data.train, data.eval))  # type: ignore[return-value]
    return tuple(encode(split, tokenizer, max_length=job.model.max_length, task=job.model.task,
                        cache_key=f"{data.data_hash}:{name}")
                 for name, split in (("train", data.train), ("eval", data.eval)))  # type: ignore[return-value]


def _items_in_step(enc: Any, indices: list[int], task: str) -> int:
    """What the step's loss is averaged over: examples, or predicted tokens for causal LMs (only the
    learned ones, the assistant's, for sft rows)."""
    if getattr(enc, "label_mask", None) is not None:
        return max(1, sum(sum(enc.label_mask[i][1:]) for i in indices))
    if task == "causal-lm":
        return max(1, sum(len(enc.input_ids[i]) - 1 for i in indices))
    return len(indices)


def _should_stop(job: TrainJob, metrics: dict[str, float], state: LoopState) -> bool:
    """Track the early-stop metric; True once it has stalled for `patience` evaluations."""
    rule = job.train.early_stop
    if rule is None:
        return False
    if rule.metric not in metrics:
        raise SpecError(f"train.early_stop.metric '{rule.metric}' is not among the eval metrics "
                        f"({', '.join(metrics)}).", hint="Pick one of those names.")
    value, best = metrics[rule.metric], state.best
    better = best is None or (value < best - rule.min_delta if rule.mode == "min" else value > best + rule.min_delta)
    state.best, state.stale = (value, 0) if better else (best, state.stale + 1)
    return state.stale >= rule.patience


@dataclass
class _Window:
    """Sums over one logging window; the loss stays a device tensor until it is logged."""

    loss_sum: Any = 0.0
    items: float = 0.0
    examples: int = 0
    busy_s: float = 0.0
    t0: float = field(default_factory=time.perf_counter)

    def add(self, *, items: float, examples: int, busy_s: float) -> None:
        self.items += items
        self.examples += examples
        self.busy_s += busy_s


def _log_window(window: _Window, grad_norm: torch.Tensor | None, tracker: Any, progress: Progress, dist: Dist,
                state: LoopState, schedule: Any, steps_per_epoch: int) -> None:
    loss_sum = float(window.loss_sum)
    totals = dist.sum(torch.tensor([loss_sum, window.items], dtype=torch.float64))
    loss = (totals[0] / max(totals[1].item(), 1.0)).item()
    elapsed = time.perf_counter() - window.t0
    values = {"train/loss": loss, "train/lr": schedule.get_last_lr()[0],
              "train/grad_norm": float(grad_norm) if grad_norm is not None else float("nan"),
              "train/epoch": state.epoch + state.position / max(1, steps_per_epoch),
              "train/samples_per_s": window.examples / max(window.busy_s, 1e-9),
              "train/threads": torch.get_num_threads(),
              "train/wall_samples_per_s": window.examples / max(elapsed, 1e-9)}
    tracker.log_metrics(values, state.step)
    progress.update(state.step, loss=loss, lr=values["train/lr"])


def _tracker(job: TrainJob, data: Any, run_dir: Path, dist: Dist) -> Any:
    from llmos.tracking import NullTracker, start_run

    if not (dist.is_main and job.tracking.enabled):
        return NullTracker()
    previous = runfile.read(run_dir).get("run_id") or None
    tags = {"llmos.recipe": _recipe_name(job), "llmos.task": job.model.task, "llmos.base_model": job.model.name,
            "llmos.data_hash": data.data_hash, "llmos.run_dir": str(run_dir)}
    if job.distill is not None:
        tags["llmos.teacher"] = job.distill.teacher
    return start_run(job.tracking, run_name=job.name, job=job.model_dump(mode="json"), tags=tags,
                     resume_run_id=previous)


def _recipe_name(job: TrainJob) -> str:
    return "distill" if job.distill is not None else "sft" if job.sft is not None else "train"


def _preempted(run_dir: Path, tracker: Any, progress: Progress, dist: Dist, step: int, stop: StopRequest) -> int:
    progress.close()
    if dist.is_main:
        progress.note(f"stopped by signal {stop.signal} after step {step}; checkpoint written, "
                      "run the same command again to resume")
        runfile.update(run_dir, run_id=tracker.run_id, status="preempted", step=step)
        tracker.set_tags({"llmos.status": "preempted"})
        tracker.finish("KILLED")
    dist.close()
    return EXIT_PREEMPTED


def _finish(job: TrainJob, data: Any, model_dir: Path, base: str, tracker: Any, metrics: dict[str, float],
            wall_s: float, state: LoopState, samples_per_s: float | None) -> None:
    run_dir = model_dir.parent
    summary: dict[str, Any] = {"name": job.name, "task": job.model.task, "steps": state.step,
                               "wall_s": round(wall_s, 2), "metrics": metrics, "model_dir": str(model_dir),
                               "samples_per_s": round(samples_per_s, 2) if samples_per_s else None,
                               "run_id": tracker.run_id, "stopped_early": state.stopped_early,
                               "data_hash": data.data_hash}
    tracker.log_metrics({"run/wall_s": wall_s, **{f"final/{k}": v for k, v in metrics.items()}}, state.step)
    if job.tracking.enabled and job.tracking.log_model:
        artifact_uri = tracker.log_model_dir(model_dir)
        summary["artifact_uri"] = artifact_uri
        if job.registration is not None:
            from llmos.registry import register_model

            reg = job.registration
            version = register_model(
                name=reg.name, run_id=tracker.run_id, artifact_uri=artifact_uri, alias=reg.alias,
                description=reg.description,
                tags={"data_hash": data.data_hash, "base_model": base, "recipe": _recipe_name(job),
                      "task": job.model.task},
                tracking_uri=job.tracking.uri)
            summary["registered"] = {"name": reg.name, "version": version, "alias": reg.alias}
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    tracker.log_artifact(run_dir / "summary.json")
    tracker.finish("FINISHED")
    runfile.update(run_dir, run_id=tracker.run_id, status="finished")
