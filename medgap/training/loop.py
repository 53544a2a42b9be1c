"""The one generic training loop, on Lightning Fabric.

Methods supply ``training_step``, ``validation_scores`` and optionally ``on_after_optimizer_step`` (the contract
of :mod:`medgap.methods.base`); the loop knows no kind of method or task. Everything else lives here:
devices/precision/strategy (Fabric: ``--devices``, ``--num-nodes``, ``--strategy ddp`` come straight from it),
the two-stream loader, optimiser and schedule, logging, periodic validation choosing ``best.pt``, atomic
checkpoints and exact resume. Only rank 0 writes the run folder.
"""

from __future__ import annotations

import json
import math
import os
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from lightning_fabric import Fabric

from medgap.atomic import write_json, write_text
from medgap.config import ExperimentConfig, config_to_dict, load_config, save_config
from medgap.data.pipeline import PreparedData, prepare_data, training_loader
from medgap.errors import MedgapError, TrainingError
from medgap.phases import phase, timed
from medgap.progress import progress_bar
from medgap.registry import build_method
from medgap.training.checkpoint import load_checkpoint, load_model_state, save_checkpoint
from medgap.training.loggers import TrainingLog, check_loggers
from medgap.training.run_folder import (RunLock, environment, prepare_run_folder, read_jsonl,
                                       remove_unstarted_run, with_absolute_paths)
from medgap.training.schedules import build_optimizer, build_scheduler


def default_run_dir(config: ExperimentConfig) -> Path:
    return Path(config.run_dir or Path("runs") / (config.name or config.method.name))


def train(config: ExperimentConfig, run_dir: str | os.PathLike | None = None, *, resume: bool = False,
          overwrite: bool = False, console=None) -> dict:
    """Train ``config`` into ``run_dir``; returns the summary written to ``summary.json``."""
    run_dir = Path(run_dir) if run_dir is not None else default_run_dir(config)
    given, config = config.data.dataset_dir, with_absolute_paths(config)  # config.yaml names the data absolutely
    trainer = config.trainer
    check_loggers(trainer.loggers)  # a missing TensorBoard is reported before anything is written
    with phase("setup"):
        fabric = Fabric(accelerator=trainer.accelerator, devices=trainer.devices, num_nodes=trainer.num_nodes,
                        strategy=trainer.strategy, precision=trainer.precision)
        fabric.launch()
        try:
            _rank_zero_first(fabric, lambda: prepare_run_folder(
                run_dir, resume=resume, overwrite=overwrite, dataset_dir=config.data.dataset_dir,
                provenance={"dataset_dir_as_given": given, "working_directory": os.getcwd()}))
        except MedgapError:
            _leave_process_group()
            raise
    try:
        with RunLock(run_dir) if fabric.is_global_zero else nullcontext():
            return _train(fabric, config, run_dir, resume, console)
    except MedgapError:
        if fabric.is_global_zero and not resume:  # bad data/config: leave no half-made run folder behind
            remove_unstarted_run(run_dir)
        raise


def _leave_process_group() -> None:
    """Tear the process group down before an error ends a rank: left to interpreter exit, gloo's threads can
    abort the process (SIGABRT) instead of letting it exit with the CLI's code 2."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def _rank_zero_first(fabric: Fabric, action):
    """Run ``action`` on rank 0 while the other ranks wait; its result on rank 0 (None elsewhere).

    A MedgapError on rank 0 (bad run folder, bad dataset) is raised on every rank, so no rank is left waiting
    at a barrier for a rank that has exited.
    """
    result, failure = None, None
    if fabric.is_global_zero:
        try:
            result = action()
        except MedgapError as error:
            failure = error
    # the broadcast is also the barrier: the other ranks wait here until rank 0 is done
    failed = fabric.broadcast(failure is not None and str(failure), src=0) if fabric.world_size > 1 else False
    if failure is not None:
        raise failure
    if failed:
        raise TrainingError(f"rank {fabric.global_rank}: stopped because rank 0 failed: {failed}")
    return result


def _train(fabric: Fabric, config: ExperimentConfig, run_dir: Path, resume: bool, console) -> dict:
    trainer, seed = config.trainer, config.trainer.seed
    rank_zero = fabric.is_global_zero
    if resume:
        _check_resume_config(config, run_dir)
    if rank_zero:
        save_config(config, run_dir / "config.yaml")
    # Rank 0 preprocesses (writes the cache and splits); the others then read the same files.
    data = _rank_zero_first(fabric, lambda: _prepare_with_progress(config, seed, run_dir, console))
    if not rank_zero:
        data = prepare_data(config.data, seed, run_dir, write_splits=False)

    torch.manual_seed(seed)  # identical initial weights on every rank and on resume
    with phase("setup"):
        method = build_method(config, data.spec)
        optimizer = build_optimizer([p for p in method.parameters() if p.requires_grad], config.optim)
        scheduler = build_scheduler(optimizer, config.optim, trainer.max_steps)
        model, optimizer = fabric.setup(method, optimizer)
        model.mark_forward_method("training_step")  # route through forward so DDP syncs gradients

    start_step, best, seconds_before = 0, {"metric": -math.inf, "step": None}, 0.0
    checkpoints = run_dir / "checkpoints"
    if resume:
        state = load_checkpoint(checkpoints / "last.pt", resume=True)
        load_model_state(method, state["model"], checkpoints / "last.pt")
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start_step, best = int(state["step"]), dict(state["best"])
        seconds_before = float(state.get("train_seconds", 0.0))  # checkpoints before max_minutes lack it
        if trainer.max_minutes is not None and seconds_before >= trainer.max_minutes * 60:
            raise TrainingError(f"{checkpoints / 'last.pt'}: the run already trained {seconds_before / 60:.1f} min, "
                                f"trainer.max_minutes is {trainer.max_minutes:g}; raise it to continue")
        if int(state.get("world_size", fabric.world_size)) != fabric.world_size:
            raise TrainingError(f"{checkpoints / 'last.pt'}: saved by {state['world_size']} process(es), resumed with "
                                f"{fabric.world_size}; the batches would differ (resume with the same --devices)")
        torch.set_rng_state(state["rng"]["torch"])
        if torch.cuda.is_available() and state["rng"].get("cuda"):
            torch.cuda.set_rng_state_all(list(state["rng"]["cuda"]))
        if rank_zero:
            _truncate_log(run_dir / "metrics.jsonl", start_step)

    loader = training_loader(data, config.data, seed, rank=fabric.global_rank, world_size=fabric.world_size,
                             start_step=start_step)
    running: dict[str, list[float]] = {}
    started = time.perf_counter()
    last_validation_s, stopped_by, done = 0.0, None, start_step
    method.train()
    with phase("training"), TrainingLog(config, run_dir, enabled=rank_zero, console=console,
                                        start_step=start_step) as log:
        batches = iter(loader)
        for step in range(start_step, trainer.max_steps):
            step_started = time.perf_counter()
            batch = _to_device(next(batches), fabric.device)
            output = model.training_step(batch, step)
            if not torch.isfinite(output.loss):
                kept = (f"last good checkpoint kept at {checkpoints / 'last.pt'}" if (checkpoints / "last.pt").is_file()
                        else "no checkpoint had been written yet")
                raise TrainingError(f"step {step + 1}: loss is {float(output.loss.detach())} (NaN/Inf); training "
                                    f"stopped, {kept}")
            optimisation_step(fabric, model, optimizer, scheduler, output.loss, config.optim.grad_clip)
            method.on_after_optimizer_step(step)
            done = step + 1
            for key, value in {"loss": float(output.loss.detach()), **output.logs}.items():
                running.setdefault(key, []).append(value)
            log.step(done, running["loss"][-1])
            if trainer.max_minutes is not None and done < trainer.max_steps:
                now = time.perf_counter()  # stop unless one more step and a validation fit
                if _out_of_time(fabric, seconds_before + now - started + (now - step_started) + last_validation_s,
                                trainer.max_minutes):
                    stopped_by = "max_minutes"
            last = done == trainer.max_steps or stopped_by is not None
            if done % trainer.log_every == 0 or last:
                row = {"step": done, "lr": scheduler.get_last_lr()[0],
                       **{k: float(np.mean(v)) for k, v in running.items()},
                       "elapsed_s": round(time.perf_counter() - started, 3)}
                running = {}
                log.write(row)
            if done % trainer.val_every == 0 or last:
                validation_started = time.perf_counter()
                scores = validate(method, data, config, fabric.device)
                last_validation_s = time.perf_counter() - validation_started  # the final one must fit max_minutes
                method.train()
                log.validation(done, scores)
                if rank_zero:
                    metric_name, metric = next(iter(scores.items()))  # first entry selects (higher is better)
                    best.setdefault("name", metric_name)  # names the summary key even if no score is finite
                    if metric > best["metric"]:
                        best = {"metric": metric, "step": done, "name": metric_name}
                        save_checkpoint(checkpoints / "best.pt",
                                        {"model": method.state_dict(), "step": done, f"val_{metric_name}": metric})
            if done % trainer.checkpoint_every == 0 or last:
                if rank_zero:
                    save_checkpoint(checkpoints / "last.pt", _training_state(
                        method, optimizer, scheduler, done, best, fabric.world_size,
                        train_seconds=seconds_before + time.perf_counter() - started))
                fabric.barrier()
            if stopped_by:
                break

    if rank_zero and best["step"] is None:  # no validation score ever (no validation cases): the final weights
        save_checkpoint(checkpoints / "best.pt", {"model": method.state_dict(), "step": done})
    summary = {
        "run_dir": str(run_dir), "name": config.name, "method": config.method.name,
        "dataset": data.spec.name, "steps": done, "max_steps": trainer.max_steps, "stopped_by": stopped_by,
        "seed": seed,
        # named after the selecting score (the method's first validation score: dice, kappa, neg_contrastive_loss ...)
        f"best_val_{best.get('name') or 'score'}": best["metric"] if best["step"] is not None else None,
        "best_step": best["step"],
        "train_seconds_this_session": round(time.perf_counter() - started, 1),
        "train_seconds": round(seconds_before + time.perf_counter() - started, 1),  # summed over resumes
        "resumed_from_step": start_step if resume else None,
        "splits": {key: len(data.splits[key]) for key in ("train", "val", "test", "labelled", "unlabelled")},
        "world_size": fabric.world_size, "environment": environment(),
    }
    if rank_zero:
        write_json(run_dir / "summary.json", summary)
        from medgap.training.curves import plot_training_curves

        plot_training_curves(run_dir / "metrics.jsonl", run_dir / "plots" / "training_curves.png")
    fabric.barrier()
    return summary


def optimisation_step(fabric: Fabric, model, optimizer, scheduler, loss: torch.Tensor, grad_clip: float | None) -> None:
    """Backward (through Fabric: precision, DDP gradient sync), optional norm clipping, optimiser and LR step."""
    optimizer.zero_grad(set_to_none=True)
    fabric.backward(loss)
    if grad_clip:
        fabric.clip_gradients(model, optimizer, max_norm=grad_clip)
    optimizer.step()
    scheduler.step()


@timed("validation")
@torch.inference_mode()
def validate(method, data: PreparedData, config: ExperimentConfig, device) -> dict[str, float]:
    """The method's validation scores on the val split (eval mode, no autograd); the first entry selects
    ``best.pt`` (higher is better)."""
    method.eval()
    return method.validation_scores(data, config, device, "val")


# Keys that may change between a run and its resumption without changing what is computed.
_RESUME_MAY_CHANGE = {"trainer.progress", "trainer.loggers", "trainer.log_every", "trainer.max_minutes",
                      "data.num_workers", "data.cache_dir", "run_dir"}


def _check_resume_config(config: ExperimentConfig, run_dir: Path) -> None:
    """Refuse to resume with a config that differs from the run's ``config.yaml`` (it would not continue the
    same training): one line listing the differing keys."""
    saved_path = run_dir / "config.yaml"
    if not saved_path.is_file():
        return
    saved = _flatten(config_to_dict(with_absolute_paths(load_config(saved_path))))  # older runs: relative paths
    given = _flatten(config_to_dict(config))
    changed = [f"{key} {saved.get(key)!r} -> {given.get(key)!r}" for key in sorted(set(saved) | set(given))
               if key not in _RESUME_MAY_CHANGE and saved.get(key) != given.get(key)]
    if changed:
        raise TrainingError(f"{saved_path}: --resume with a different config ({'; '.join(changed)}); give the "
                            f"run's overrides again or resume from it: medgap train {saved_path} --run-dir {run_dir} "
                            "--resume")


def _flatten(tree: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in tree.items():
        flat.update(_flatten(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value})
    return flat


def _training_state(method, optimizer, scheduler, step: int, best: dict, world_size: int,
                    train_seconds: float) -> dict:
    rng = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    return {"model": method.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "step": step, "best": best, "rng": rng, "world_size": world_size, "train_seconds": train_seconds}


def _out_of_time(fabric: Fabric, projected_seconds: float, max_minutes: float) -> bool:
    """Whether to stop now; rank 0's clock decides for every rank (they must stop at the same step)."""
    out = projected_seconds > max_minutes * 60
    return bool(fabric.broadcast(out, src=0)) if fabric.world_size > 1 else out


def _prepare_with_progress(config, seed, run_dir, console) -> PreparedData:
    progress = progress_bar("preprocess", console) if config.trainer.progress else None
    with progress or nullcontext():
        task = progress.add_task("preprocess", total=None) if progress else None
        callback = (lambda done, total: progress.update(task, completed=done, total=total)) if progress else None
        return prepare_data(config.data, seed, run_dir, progress=callback)


def _to_device(batch: dict, device) -> dict:
    return {key: value.to(device, non_blocking=True) if isinstance(value, torch.Tensor) else value
            for key, value in batch.items()}


def _truncate_log(path: Path, step: int) -> None:
    """On resume, drop log rows written after the checkpoint (they will be written again)."""
    rows = [row for row in read_jsonl(path) if row.get("step", 0) <= step]
    write_text(path, "".join(json.dumps(row) + "\n" for row in rows))
