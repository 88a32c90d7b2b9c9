"""The fine-tuning recipe: set-up → loop → evaluate → save.

One file that reads top to bottom. It runs as a single process or as one worker of a
`torchrun` gang (DistributedDataParallel, gloo on CPU, nccl on GPU); rank 0 alone logs, writes
checkpoints and talks to MLflow. Start it with `python -m llmos.run JOB.json`.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch

from llmos.data import BatchPlan, collate, encode, load_dataset
from llmos.errors import LlmosError
from llmos.models import build, save_trained
from llmos.run import _checkpoint as ckpt
from llmos.run._dist import Dist, init
from llmos.run._evaluate import evaluate, task_loss
from llmos.run._optim import build_optimizer, build_schedule, precision_for
from llmos.run._progress import Progress
from llmos.run._signals import EXIT_PREEMPTED, StopRequest
from llmos.spec import TrainJob

__all__ = ["train"]


def train(job: TrainJob) -> int:
    """Run the job to completion (exit 0) or to a graceful stop (EXIT_PREEMPTED)."""
    # ---- set-up -----------------------------------------------------------------------------
    stop = StopRequest().install()
    dist = init(job.resources.device)
    cfg, task = job.train, job.model.task
    run_dir = Path(job.output)  # type: ignore[arg-type]  # resolved by the launcher
    torch.set_num_threads(cfg.num_threads or _cores_per_worker(job, dist))
    torch.manual_seed(cfg.seed)  # identical initial weights on every rank
    random.seed(cfg.seed)

    data = load_dataset(job.data, task)
    built = build(job.model.name, task, label_names=data.label_names, lora=job.model.lora,
                  trust_remote_code=job.model.trust_remote_code)
    model, tokenizer = built.model.to(dist.device), built.tokenizer
    enc_train = encode(data.train, tokenizer, max_length=job.model.max_length, task=task,
                       cache_key=f"{data.data_hash}:train")
    enc_eval = encode(data.eval, tokenizer, max_length=job.model.max_length, task=task,
                      cache_key=f"{data.data_hash}:eval")
    pad_id = tokenizer.pad_token_id or 0
    num_labels = len(data.label_names or [])

    plan = BatchPlan(tuple(enc_train.lengths), batch_size=cfg.batch_size, grad_accum=cfg.grad_accum,
                     world_size=dist.world_size, rank=dist.rank, seed=cfg.seed,
                     group_by_length=cfg.group_by_length)
    steps_per_epoch = plan.steps_per_epoch()
    if steps_per_epoch == 0:
        raise LlmosError(f"the training split has {len(enc_train.lengths)} examples, fewer than one step "
                         f"needs ({plan.world_size * plan.grad_accum}).",
                         hint="Add data, or lower train.grad_accum / resources.procs.")
    total_steps = math.ceil(cfg.epochs * steps_per_epoch)
    if cfg.max_steps:
        total_steps = min(total_steps, cfg.max_steps)
    optimizer = build_optimizer(model, cfg)
    schedule = build_schedule(optimizer, cfg, total_steps)
    autocast_dtype, needs_scaler = precision_for(cfg.precision, dist.device)
    scaler = torch.amp.GradScaler("cuda") if needs_scaler else None

    # ---- resume -----------------------------------------------------------------------------
    step, epoch, position = 0, 0, 0
    watch: dict[str, Any] = {"best": None, "stale": 0}
    last = ckpt.latest(run_dir / "checkpoints") if job.checkpoint.resume else None
    if last is not None:
        last.load_model(model)
        last.load_optimizer(optimizer)
        schedule.load_state_dict(last.state["scheduler"])
        ckpt.restore_rng(last)
        step, epoch, position = last.step, last.state["epoch"], last.state["position"]
        watch = last.state["watch"]

    model = dist.wrap(model)
    tracker = _tracker(job, data, run_dir, dist)
    progress = Progress(total_steps, start=step, enabled=dist.is_main)
    if dist.is_main:
        _write_run_file(run_dir, tracker.run_id, "running")
        if last is None:
            tracker.log_params({"data.train_examples": len(enc_train.lengths), "run.total_steps": total_steps,
                                "run.world_size": dist.world_size, "run.precision": str(autocast_dtype or "fp32")})
        else:
            progress.note(f"resumed from {last.path.name} (step {step}, epoch {epoch})")

    def save_checkpoint() -> None:
        if dist.is_main:
            state = {"epoch": epoch, "position": position, "watch": watch, "scheduler": schedule.state_dict()}
            ckpt.save(run_dir / "checkpoints", step=step, model=_unwrap(model), optimizer=optimizer,
                      state=state, keep=job.checkpoint.keep)
        dist.barrier()

    def run_eval() -> dict[str, float]:
        metrics = evaluate(_unwrap(model), enc_eval, task=task, dist=dist, batch_size=cfg.batch_size * 2,
                           pad_id=pad_id, autocast=autocast_dtype, num_labels=num_labels)
        tracker.log_metrics({f"eval/{k}": v for k, v in metrics.items()}, step)
        progress.note("eval " + "  ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
        return metrics

    # ---- loop -------------------------------------------------------------------------------
    model.train()
    started = time.perf_counter()
    window = {"loss": 0.0, "items": 0.0, "examples": 0, "t0": time.perf_counter(), "busy_s": 0.0}
    metrics: dict[str, float] = {}
    stopped_early = False
    while step < total_steps and not stopped_early:
        step_batches = plan.epoch(epoch)
        for i in range(position, len(step_batches)):
            t_step = time.perf_counter()
            # Dropout draws from a seed that is a function of (step, rank): resume is exact.
            torch.manual_seed(cfg.seed + 1_000_003 * (step + 1) + dist.rank)
            step_items = _items_in_step(enc_train, step_batches[i], task)
            for j, idx in enumerate(plan.micro_batches(step_batches[i])):
                batch = {k: v.to(dist.device, non_blocking=True)
                         for k, v in collate(enc_train, idx, pad_id=pad_id, task=task).items()}
                last_micro = j == cfg.grad_accum - 1
                sync = model.no_sync() if dist.enabled and not last_micro else nullcontext()
                amp = torch.autocast(dist.device.type, dtype=autocast_dtype) if autocast_dtype else nullcontext()
                with sync, amp:
                    loss_sum, _, _ = task_loss(model, batch, task)
                    # DDP averages gradients over ranks: scale so the result is sum / step_items.
                    loss = loss_sum * dist.world_size / step_items
                (scaler.scale(loss) if scaler else loss).backward()
                window["loss"] += loss_sum.item()
            if scaler:
                scaler.unscale_(optimizer)
            grad_norm = (torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm).item()
                         if cfg.max_grad_norm else float("nan"))
            if scaler:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            step, position = step + 1, i + 1
            window["items"] += step_items / dist.world_size
            window["examples"] += len(step_batches[i])
            window["busy_s"] += time.perf_counter() - t_step

            if step % cfg.log_every_steps == 0 or step == total_steps:
                _log_window(window, tracker, progress, dist, step, schedule, grad_norm, epoch, steps_per_epoch)
            progress.advance(step)
            if cfg.eval_every_steps and step % cfg.eval_every_steps == 0:
                metrics = run_eval()
                stopped_early = _should_stop(job, metrics, watch)
            if job.checkpoint.every_steps and step % job.checkpoint.every_steps == 0:
                save_checkpoint()
            if dist.any(stop.requested):
                save_checkpoint()
                return _preempted(run_dir, tracker, progress, dist, step, stop)
            if step >= total_steps or stopped_early:
                break
        else:
            epoch, position = epoch + 1, 0
            metrics = run_eval()
            stopped_early = stopped_early or _should_stop(job, metrics, watch)
            save_checkpoint()
            continue
        break

    # ---- evaluate and save ------------------------------------------------------------------
    if position != 0 or not metrics:  # the loop ended mid-epoch: evaluate the final weights
        metrics = run_eval()
        save_checkpoint()
    progress.close()
    wall_s = time.perf_counter() - started
    if dist.is_main:
        _finish(job, data, model, tokenizer, built.base, run_dir, tracker, metrics, wall_s, step, stopped_early)
    dist.barrier()
    dist.close()
    return 0


# ---- helpers (no hidden control flow: each does one thing the loop above names) -------------


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if hasattr(model, "module") else model


def _cores_per_worker(job: TrainJob, dist: Dist) -> int:
    if job.resources.cpus_per_proc:
        return job.resources.cpus_per_proc
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // dist.local_world_size)


def _items_in_step(enc: Any, indices: list[int], task: str) -> int:
    """What the step's loss is averaged over: examples, or predicted tokens for causal LMs."""
    if task == "causal-lm":
        return max(1, sum(len(enc.input_ids[i]) - 1 for i in indices))
    return len(indices)


def _should_stop(job: TrainJob, metrics: dict[str, float], watch: dict[str, Any]) -> bool:
    rule = job.train.early_stop
    if rule is None:
        return False
    if rule.metric not in metrics:
        raise LlmosError(f"train.early_stop.metric '{rule.metric}' is not among the eval metrics "
                         f"({', '.join(metrics)}).", hint="Pick one of those names.")
    value, best = metrics[rule.metric], watch["best"]
    better = best is None or (value < best - rule.min_delta if rule.mode == "min" else value > best + rule.min_delta)
    watch["best"], watch["stale"] = (value, 0) if better else (best, watch["stale"] + 1)
    return watch["stale"] >= rule.patience


def _log_window(window: dict[str, Any], tracker: Any, progress: Progress, dist: Dist, step: int,
                schedule: Any, grad_norm: float, epoch: int, steps_per_epoch: int) -> None:
    totals = dist.sum(torch.tensor([window["loss"], window["items"]], dtype=torch.float64))
    loss = (totals[0] / max(totals[1].item(), 1.0)).item()
    elapsed = time.perf_counter() - window["t0"]
    values = {"train/loss": loss, "train/lr": schedule.get_last_lr()[0], "train/grad_norm": grad_norm,
              "train/epoch": epoch + (step % steps_per_epoch) / max(1, steps_per_epoch),
              "train/samples_per_s": window["examples"] / max(window["busy_s"], 1e-9),
              "train/wall_samples_per_s": window["examples"] / max(elapsed, 1e-9)}
    tracker.log_metrics(values, step)
    progress.update(step, loss=loss, lr=values["train/lr"])
    window.update(loss=0.0, items=0.0, examples=0, t0=time.perf_counter(), busy_s=0.0)


def _tracker(job: TrainJob, data: Any, run_dir: Path, dist: Dist) -> Any:
    from llmos.tracking import NullTracker, start_run

    if not (dist.is_main and job.tracking.enabled):
        return NullTracker()
    previous = _read_run_file(run_dir).get("run_id") or None
    tags = {"llmos.recipe": "train", "llmos.task": job.model.task, "llmos.base_model": job.model.name,
            "llmos.data_hash": data.data_hash, "llmos.run_dir": str(run_dir)}
    return start_run(job.tracking, run_name=job.name, job=job.model_dump(mode="json"), tags=tags,
                     resume_run_id=previous)


def _read_run_file(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "run.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def _write_run_file(run_dir: Path, run_id: str, status: str, **extra: Any) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    tmp = run_dir / "run.json.tmp"
    tmp.write_text(json.dumps({**_read_run_file(run_dir), "run_id": run_id, "status": status, **extra}, indent=2))
    os.replace(tmp, run_dir / "run.json")


def _preempted(run_dir: Path, tracker: Any, progress: Progress, dist: Dist, step: int, stop: StopRequest) -> int:
    progress.close()
    if dist.is_main:
        progress.note(f"stopped by signal {stop.signal} after step {step}; checkpoint written, "
                      "run the same command again to resume")
        _write_run_file(run_dir, tracker.run_id, "preempted", step=step)
        tracker.set_tags({"llmos.status": "preempted"})
        tracker.finish("KILLED")
    dist.close()
    return EXIT_PREEMPTED


def _finish(job: TrainJob, data: Any, model: torch.nn.Module, tokenizer: Any, base: str, run_dir: Path,
            tracker: Any, metrics: dict[str, float], wall_s: float, step: int, stopped_early: bool) -> None:
    model_dir = save_trained(_unwrap(model), tokenizer, run_dir / "model", task=job.model.task, base=base,
                             label_names=data.label_names, max_length=job.model.max_length)
    summary: dict[str, Any] = {"name": job.name, "task": job.model.task, "steps": step, "wall_s": round(wall_s, 2),
                               "metrics": metrics, "model_dir": str(model_dir), "run_id": tracker.run_id,
                               "stopped_early": stopped_early, "data_hash": data.data_hash}
    tracker.log_metrics({"run/wall_s": wall_s, **{f"final/{k}": v for k, v in metrics.items()}}, step)
    if job.tracking.enabled and job.tracking.log_model:
        artifact_uri = tracker.log_model_dir(model_dir)
        summary["artifact_uri"] = artifact_uri
        if job.registration is not None:
            from llmos.registry import register_model

            reg = job.registration
            version = register_model(
                name=reg.name, run_id=tracker.run_id, artifact_uri=artifact_uri, alias=reg.alias,
                description=reg.description,
                tags={"data_hash": data.data_hash, "base_model": base, "recipe": "train",
                      "task": job.model.task},
                tracking_uri=job.tracking.uri)
            summary["registered"] = {"name": reg.name, "version": version, "alias": reg.alias}
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    tracker.log_artifact(run_dir / "summary.json")
    tracker.finish("FINISHED")
    _write_run_file(run_dir, tracker.run_id, "finished")
