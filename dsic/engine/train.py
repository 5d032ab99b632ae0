"""Training loop: SGD + warmup + multi-step, AMP on CUDA, grad clipping, DDP, exact resume.

Outputs in ``output_dir`` (rank 0):

* ``config.yaml`` - the resolved config; ``log.jsonl`` - one JSON record per ``log_every``
  iterations (iter, epoch, lr, every loss, ``loss``, ``time``) and per evaluation (``eval``);
* ``last.pth`` - written atomically after every ``checkpoint_every`` epochs: model, optimizer,
  scheduler, AMP scaler, epoch, iteration, RNG states and config. ``resume`` continues from it
  and reproduces an uninterrupted run exactly (on CPU; tested);
* ``interrupted.pth`` - the same, written when training stops on an exception, Ctrl-C or a
  non-finite loss. It holds the state *at the interruption*; resuming from it restarts that epoch
  (``dsic train --resume`` prefers ``last.pth``; copy ``interrupted.pth`` over it to keep the
  partial epoch's updates);
* ``eval_epoch{N}.json`` - COCO metrics after epoch N (every ``eval_every`` epochs and the last)
  and ``results_epoch{N}.json`` the detections; ``final.pth`` - model weights and config.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

from ..config import dump_config, load_config
from .builders import build_model, make_dataset, make_loader
from .checkpoint import load_checkpoint, rng_state, save_atomic, set_rng_state
from .distributed import DistInfo, barrier, cleanup, init_distributed
from .evaluate import evaluate
from .schedule import build_scheduler, scaled_lr


def parameter_groups(model: torch.nn.Module, weight_decay: float, norm_bias_decay: bool) -> list[dict]:
    """With ``norm_bias_decay`` False, biases and norm weights (1-d params) get no weight decay."""
    params = [p for p in model.parameters() if p.requires_grad]
    if norm_bias_decay:
        return [{"params": params, "weight_decay": weight_decay}]
    decay = [p for p in params if p.ndim > 1]
    no_decay = [p for p in params if p.ndim <= 1]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


class Logger:
    def __init__(self, path: Path | None):
        self.path = path

    def write(self, record: dict) -> None:
        if self.path is not None:
            with open(self.path, "a") as f:
                f.write(json.dumps(record) + "\n")


def _state(model, optimizer, scheduler, scaler, epoch: int, iteration: int, cfg: dict) -> dict:
    bare = model.module if hasattr(model, "module") else model
    return {"model": bare.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict(), "epoch": epoch, "iteration": iteration, "rng": rng_state(),
            "config": cfg}


def train(cfg: dict, model_factory=None, resume: bool = False) -> dict:
    """Train as ``cfg`` says; returns ``{"metrics": last evaluation, "output_dir": ...}``."""
    info = init_distributed(cfg["device"])
    try:
        return _train(cfg, info, model_factory or build_model, resume)
    finally:
        cleanup()


def _train(cfg: dict, info: DistInfo, model_factory, resume: bool) -> dict:
    tcfg = cfg["train"]
    out = Path(cfg["output_dir"])
    if info.is_main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.yaml").write_text(dump_config(cfg))
    torch.manual_seed(tcfg["seed"] + info.rank)
    model = model_factory(cfg)
    if tcfg["sync_bn"] and info.enabled:
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model.to(info.device)
    train_set = make_dataset(cfg, "train")
    loader = make_loader(cfg, "train", info, train_set)
    val_loader = make_loader(cfg, "val", info) if cfg["data"]["val"]["annotations"] else None
    lr = scaled_lr(tcfg["base_lr"], tcfg["batch_size"], info.world_size, tcfg["base_batch_size"])
    optimizer = torch.optim.SGD(parameter_groups(model, tcfg["weight_decay"], tcfg["norm_bias_decay"]),
                                lr=lr, momentum=tcfg["momentum"])
    iters_per_epoch = len(loader)
    scheduler = build_scheduler(optimizer, tcfg["steps"], iters_per_epoch, tcfg["gamma"], tcfg["warmup_iters"],
                                tcfg["warmup_factor"])
    use_amp = bool(tcfg["amp"]) and info.device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    start_epoch, iteration = 0, 0
    if resume and (out / "last.pth").is_file():
        state = load_checkpoint(out / "last.pth")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        start_epoch, iteration = state["epoch"], state["iteration"]
        set_rng_state(state["rng"])
    if info.enabled:
        model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[info.local_rank] if info.device.type == "cuda" else None,
            find_unused_parameters=tcfg["find_unused_parameters"])
    log = Logger(out / "log.jsonl" if info.is_main else None)
    progress = info.is_main and sys.stderr.isatty() and not os.environ.get("CI")
    metrics: dict | None = None
    max_iters = tcfg["max_iters"]
    for epoch in range(start_epoch, tcfg["epochs"]):
        loader.sampler.set_epoch(epoch)
        model.train()
        try:
            bar = tqdm(loader, desc=f"epoch {epoch + 1}/{tcfg['epochs']}", disable=not progress, leave=False)
            for images, targets in bar:
                start = time.perf_counter()
                images = [im.to(info.device, non_blocking=True) for im in images]
                targets = [{k: v.to(info.device, non_blocking=True) for k, v in t.items()} for t in targets]
                with torch.autocast(info.device.type, enabled=use_amp):
                    losses = model(images, targets)
                loss = sum(losses.values())
                if not math.isfinite(loss.item()):
                    raise FloatingPointError(
                        f"non-finite loss at iteration {iteration} (epoch {epoch + 1}): "
                        f"{ {k: round(v.item(), 4) for k, v in losses.items()} }")
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                if tcfg["grad_clip"]:
                    scaler.unscale_(optimizer)
                    torch.nn.utils.clip_grad_norm_(model.parameters(), tcfg["grad_clip"])
                scaler.step(optimizer)
                scaler.update()
                scheduler.step()
                iteration += 1
                if iteration % tcfg["log_every"] == 0 or iteration == 1:
                    rec = {"iter": iteration, "epoch": epoch + 1, "lr": optimizer.param_groups[0]["lr"],
                           "loss": loss.item(), **{k: v.item() for k, v in losses.items()},
                           "time": round(time.perf_counter() - start, 4)}
                    log.write(rec)
                    bar.set_postfix(loss=f"{rec['loss']:.3f}", lr=f"{rec['lr']:.4f}")
                if max_iters and iteration >= max_iters:
                    break
        except BaseException:
            if info.is_main:
                save_atomic(_state(model, optimizer, scheduler, scaler, epoch, iteration, cfg), out / "interrupted.pth")
                print(f"training stopped at iteration {iteration}; state saved to {out / 'interrupted.pth'}",
                      file=sys.stderr)
            raise
        done = epoch + 1
        last = done == tcfg["epochs"] or bool(max_iters and iteration >= max_iters)
        if info.is_main and (done % tcfg["checkpoint_every"] == 0 or last):
            save_atomic(_state(model, optimizer, scheduler, scaler, done, iteration, cfg), out / "last.pth")
        if val_loader is not None and tcfg["eval_every"] and (done % tcfg["eval_every"] == 0 or last):
            metrics = evaluate(model.module if info.enabled else model, val_loader, cfg["eval"]["iou_types"],
                               cfg["eval"]["evaluator"], cfg["eval"]["max_dets"], info,
                               out / f"results_epoch{done}.json" if info.is_main else None, progress)
            if info.is_main:
                (out / f"eval_epoch{done}.json").write_text(json.dumps(metrics, indent=2))
                log.write({"eval": metrics, "epoch": done, "iter": iteration})
        barrier(info)
        if last:
            break
    if info.is_main:
        bare = model.module if info.enabled else model
        save_atomic({"model": bare.state_dict(), "config": cfg}, out / "final.pth")
    return {"metrics": metrics, "output_dir": str(out)}


def main_train(config_path, overrides=None, resume: bool = False) -> dict:
    """``dsic train``: load the config (with overrides) and train; works under torchrun."""
    return train(load_config(config_path, overrides), resume=resume)
