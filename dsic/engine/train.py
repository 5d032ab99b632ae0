"""Training loop: SGD + warmup + multi-step, AMP (bf16 on CPU/CUDA, fp16 on CUDA), grad clipping, DDP, exact resume.

Outputs in ``output_dir`` (written by rank 0):

* ``config.yaml`` - the resolved config;
* ``log.jsonl`` - one JSON record every ``log_every`` iterations (and the first): ``iter``
  (iterations done), ``epoch`` (1-based), ``lr`` (used by that update), every loss and their sum
  ``loss`` (averaged over ranks), ``time`` / ``data_time`` (seconds per iteration since the last
  record), ``grad_norm`` (with ``grad_clip``), ``mem_mb`` (CUDA); and one record per evaluation
  (``{"epoch", "iter", "eval": metrics}``). A resumed run first drops records past its checkpoint;
* ``last.pth`` - after every ``checkpoint_every`` epochs, every ``checkpoint_every_iters``
  iterations, ``checkpoint_minutes`` after the previous one and at the end (also when ``max_iters``
  stops a run mid-epoch): model, optimizer, scheduler, AMP scaler, ``epoch`` (completed epochs),
  ``epoch_iter`` (iterations into the next epoch), ``iteration``, RNG states of every rank, config,
  ``run`` (the fingerprint of the run-defining keys);
* ``interrupted.pth`` - the same, written when training stops on an exception, Ctrl-C / SIGTERM or
  a non-finite loss or gradient: the state after the last *completed* update (a signal arriving
  during an update is deferred until the update and its log line are done); never non-finite;
* ``eval_epoch{N}.json`` / ``results_epoch{N}.json`` - COCO metrics and detections after epoch N
  (every ``eval_every`` epochs and at the end);
* ``final.pth`` - model weights and config, at the end.

All checkpoints are written atomically (:func:`~dsic.engine.checkpoint.save_atomic`).

Resume (``resume=True``) continues from the most advanced of ``last.pth`` / ``interrupted.pth``
that is readable, of this run and finite (:func:`~dsic.engine.checkpoint.select_resume_state`),
also in the middle of an epoch: that epoch's remaining batches are the ones the interrupted run would have
used. Determinism: the epoch's data order and every sample's augmentation are functions of (seed,
epoch, index); the RNGs the model uses (e.g. RoI sampling) are reseeded from (seed, rank, epoch)
at every epoch start and restored from the checkpoint mid-epoch. On the CPU a resumed run therefore
reproduces an uninterrupted one bit for bit (tested), from epoch boundaries and mid-epoch alike.
Limits: ``interrupted.pth`` holds rank 0's RNG state only, so a multi-process run resumed from it
mid-epoch reseeds the other ranks' model RNGs; CUDA kernels are not bit-deterministic anyway.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import sys
import threading
import time
from pathlib import Path

import torch
from tqdm import tqdm

from ..config import FLOAT32_MAX, ConfigError, dump_config, finalize, load_config
from ..data.classes import check_classes
from .builders import _mix, build_model, make_dataset, make_eval_loader, make_train_loader
from .checkpoint import (
    check_resume_state,
    load_checkpoint,
    model_state,
    move_earlier_run,
    non_finite_names,
    remove_stale_temporaries,
    rng_state,
    run_fingerprint,
    save_atomic,
    seed_everything,
    select_resume_state,
    set_rng_state,
)
from .distributed import (
    DistInfo,
    all_gather_objects,
    all_reduce_mean,
    barrier,
    broadcast_object,
    cleanup,
    init_distributed,
    unwrap,
    wrap_model,
)
from .ema import ModelEMA
from .evaluate import evaluate
from .param_groups import parameter_groups
from .precision import amp_precision, autocast, needs_grad_scaler
from .reporting import RunReport, on_terminal
from .schedule import build_scheduler, late_steps, scaled_lr


class TrainingInterrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived during training (``signum`` says which)."""

    def __init__(self, signum: int):
        super().__init__(f"training interrupted by signal {signal.Signals(signum).name}")
        self.signum = signum


class SignalGuard:
    """While active (main thread only): SIGINT/SIGTERM raise :class:`TrainingInterrupted`, except
    inside :meth:`critical` (a weight update, a checkpoint being written), where they are held
    until the section is complete."""

    def __init__(self):
        self.in_critical = False
        self.pending: int | None = None
        self.previous: dict = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        self.previous.clear()
        return False

    def _handle(self, signum, frame):
        if self.in_critical:
            self.pending = signum
            return
        raise TrainingInterrupted(signum)

    @contextlib.contextmanager
    def critical(self, until_release: bool = False):
        """``until_release``: keep holding signals after the section, until :meth:`release` (the rest
        of an iteration: its log line, its checkpoint)."""
        if self.in_critical:  # nested: the outer section delivers
            yield
            return
        self.in_critical = True
        try:
            yield
        except BaseException:
            self.in_critical = False
            raise
        if not until_release:
            self.release()

    def release(self) -> None:
        """End a held section; a signal that arrived meanwhile is raised now."""
        self.in_critical = False
        if self.pending is not None:
            signum, self.pending = self.pending, None
            raise TrainingInterrupted(signum)


class NonFiniteLossError(FloatingPointError):
    """A loss, a gradient or (after an update) a weight was NaN or infinite; the message names the
    iteration, the loss terms and where the last finite state is saved."""


class JsonLog:
    """Append-only JSON-lines log (a no-op on ranks other than 0)."""

    def __init__(self, path: Path | None):
        self.path = path

    def write(self, record: dict) -> None:
        """Append ``record`` as one line of strict JSON: a NaN or inf value is written as null."""
        if self.path is not None:
            line = json.dumps(finite_json(record), allow_nan=False) + "\n"
            try:
                with open(self.path, "a") as f:
                    f.write(line)
            except OSError as err:  # a full disk: say which file
                raise OSError(err.errno, err.strerror, str(self.path)) from err

    def truncate_after(self, iteration: int) -> None:
        """Drop records of iterations after ``iteration`` (a resumed run repeats them)."""
        if self.path is None or not self.path.is_file():
            return
        kept = []
        for line in self.path.read_text().splitlines():
            with contextlib.suppress(ValueError, AttributeError):  # a torn or foreign line is dropped
                record = json.loads(line)
                if record.get("iter", 0) <= iteration:
                    kept.append(json.dumps(finite_json(record), allow_nan=False))
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text("".join(line + "\n" for line in kept))
        os.replace(tmp, self.path)

    def has_eval_at(self, iteration: int) -> bool:
        """Whether the log holds an evaluation record of ``iteration``."""
        if self.path is None or not self.path.is_file():
            return False
        for line in self.path.read_text().splitlines():
            with contextlib.suppress(ValueError, AttributeError):
                record = json.loads(line)
                if "eval" in record and record.get("iter") == iteration:
                    return True
        return False

    def reset(self) -> None:
        if self.path is not None and self.path.is_file():
            self.path.unlink()


def finite_json(value):
    """``value`` with every non-finite float replaced by None (JSON has no NaN / Infinity)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_json(v) for v in value]
    return value


def show_progress(info: DistInfo) -> bool:
    """tqdm bars only on rank 0, on a terminal, and not under CI (:func:`~dsic.engine.reporting.on_terminal`)."""
    return info.is_main and on_terminal()


class _Run:
    """One training run's state and the pieces that read / write it."""

    def __init__(self, cfg: dict, info: DistInfo, model_factory, guard: SignalGuard):
        self.cfg, self.info, self.guard = cfg, info, guard
        self.tcfg = cfg["train"]
        self.out = Path(cfg["output_dir"])
        seed_everything(self.tcfg["seed"])  # the same initial weights on every rank
        model = model_factory(cfg)
        model.to(info.device)
        self.train_loader = make_train_loader(cfg, info, make_dataset(cfg, "train"))
        val = cfg["data"]["val"]
        self.val_loader = make_eval_loader(cfg, info) if val.get("annotations") and val.get("images") else None
        self.iters_per_epoch = len(self.train_loader)
        if self.iters_per_epoch == 0:
            from ..data.errors import DatasetError

            raise DatasetError(f"{cfg['data']['train']['annotations']}: no training image has a usable annotation")
        self.lr = scaled_lr(self.tcfg["base_lr"], self.tcfg["batch_size"], info.world_size,
                            self.tcfg["base_batch_size"])
        self.optimizer = torch.optim.SGD(
            parameter_groups(model, self.tcfg["weight_decay"], self.tcfg["norm_bias_decay"], self.tcfg["gate_lr_mult"],
                             self.tcfg["lr_mults"]),
            lr=self.lr, momentum=self.tcfg["momentum"])
        self._check_lr()
        self.scheduler = build_scheduler(self.optimizer, self.tcfg["steps"], self.iters_per_epoch,
                                         self.tcfg["gamma"], self.tcfg["warmup_iters"], self.tcfg["warmup_factor"])
        self.precision = amp_precision(self.tcfg["amp"], info.device)  # train.amp: false|true|bf16|fp16
        self.scaler = torch.amp.GradScaler("cuda", enabled=needs_grad_scaler(self.precision, info.device))
        self.bare = model
        self.ema = ModelEMA(model, self.tcfg["ema_decay"], self.tcfg["ema_tau"]) if self.tcfg["ema"] else None
        self.model = model
        # position: completed epochs, iterations into the current epoch, iterations in total
        self.epoch, self.epoch_iter, self.iteration = 0, 0, 0
        self.rng_snapshot = rng_state()
        self.resume_rng: dict | None = None
        self.resumed = False
        self.saved_at = time.monotonic()  # when last.pth was last written (or training started)

    def _check_lr(self) -> None:
        """The largest lr a group gets (scaled by the batch, times its lr factor) must fit float32."""
        tcfg = self.tcfg
        factor = max(group.get("lr_mult", 1.0) for group in self.optimizer.param_groups)
        if self.lr * factor <= FLOAT32_MAX:
            return
        times = f" x the lr factor {factor:g}" if factor != 1.0 else ""
        raise ConfigError(f"train.base_lr = {tcfg['base_lr']:g} gives an lr of {self.lr * factor:.4g} (x batch_size "
                          f"{tcfg['batch_size']} x {self.info.world_size} process(es) / base_batch_size "
                          f"{tcfg['base_batch_size']}{times}): beyond float32's largest number {FLOAT32_MAX:.4g}, "
                          f"the precision it is used in")

    # --- checkpoints -------------------------------------------------------------------------------
    def state(self, rng_per_rank: list | None, reason: str) -> dict:
        return {"model": self.bare.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
                "epoch": self.epoch, "epoch_iter": self.epoch_iter, "iteration": self.iteration,
                "iters_per_epoch": self.iters_per_epoch, "world_size": self.info.world_size,
                "rng": self.rng_snapshot, "rng_per_rank": rng_per_rank, "config": self.cfg, "reason": reason,
                "run": run_fingerprint(self.cfg), "ema": self.ema.state_dict() if self.ema is not None else None}

    def eval_model(self) -> torch.nn.Module:
        """The weights that are evaluated and saved as ``final.pth``: the EMA when ``train.ema``."""
        return self.ema.module if self.ema is not None else self.bare

    def save_last(self, reason: str) -> None:
        per_rank = all_gather_objects(self.rng_snapshot, self.info)  # a collective: every rank is here
        if self.info.is_main:
            with self.guard.critical():
                save_atomic(self.state(per_rank, reason), self.out / "last.pth")
        self.saved_at = time.monotonic()

    def save_interrupted(self, reason: str, hint: str = "--resume continues from it") -> Path | None:
        """Write ``interrupted.pth`` (the state after the last completed update) and say so, with
        ``hint`` on what resuming from it does."""
        if not self.info.is_main:
            return None
        bad = non_finite_names(self.bare.state_dict().items())
        if bad:  # never let a broken state stand next to (and be mistaken for) the last finite one
            print(f"[dsic] training stopped at iteration {self.iteration} ({reason}); interrupted.pth not "
                  f"written: {len(bad)} weight tensor(s) are not finite", file=sys.stderr, flush=True)
            return None
        with self.guard.critical():  # a second Ctrl-C waits for the file
            path = save_atomic(self.state([self.rng_snapshot], reason), self.out / "interrupted.pth")
        print(f"[dsic] training stopped at iteration {self.iteration} ({reason}); state saved to {path} ({hint})",
              file=sys.stderr, flush=True)
        return path

    def load(self, path: Path, state: dict | None = None) -> None:
        state = state if state is not None else load_checkpoint(path)
        self.resumed = True
        self.bare.load_state_dict(model_state(state))
        mults = [group.get("lr_mult") for group in self.optimizer.param_groups]
        self.optimizer.load_state_dict(state["optimizer"])
        for group, mult in zip(self.optimizer.param_groups, mults):  # the lr follows the current config
            group["initial_lr"] = self.lr
            if mult is None:
                group.pop("lr_mult", None)
            else:
                group["lr_mult"] = mult
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        if self.ema is not None:
            if state.get("ema"):
                self.ema.load_state_dict(state["ema"])
            else:
                self._note(f"{path} holds no EMA weights; the EMA restarts from the loaded model")
                self.ema = ModelEMA(self.bare, self.tcfg["ema_decay"], self.tcfg["ema_tau"])
        self.iteration = int(state["iteration"])
        self.epoch = int(state["epoch"])
        self.epoch_iter = int(state.get("epoch_iter", 0))
        if self.epoch_iter and state.get("iters_per_epoch") != self.iters_per_epoch:
            self._note(f"{path}: {state.get('iters_per_epoch')} iterations per epoch then, "
                       f"{self.iters_per_epoch} now; restarting epoch {self.epoch + 1}")
            self.epoch_iter = 0
        per_rank = state.get("rng_per_rank") or []
        if self.epoch_iter:
            if len(per_rank) == self.info.world_size:
                self.resume_rng = per_rank[self.info.rank]
            elif self.info.rank == 0 and state.get("rng") is not None:
                self.resume_rng = state["rng"]
            # else: reseeded from (seed, rank, epoch, iteration) at the start of the epoch
        self._note(f"resuming from {path}: epoch {self.epoch + 1}, iteration {self.iteration}")

    def _note(self, text: str) -> None:
        if self.info.is_main:
            print(f"[dsic] {text}", file=sys.stderr, flush=True)


def train(cfg: dict, model_factory=None, resume: bool | str | Path = False) -> dict:
    """Train as ``cfg`` (from :func:`dsic.config.load_config`) says; single process or under torchrun.

    ``model_factory(cfg) -> nn.Module`` builds the detector (default: :func:`dsic.models.build_detector`
    with ``cfg["model"]``). ``resume``: True continues from ``output_dir`` (see the module doc), a path
    from that checkpoint. Returns ``{"output_dir", "metrics" (the last evaluation or None),
    "epoch", "iteration", "checkpoint" (last.pth), "final" (final.pth)}``.
    """
    if cfg["train"]["epochs"] is None:
        cfg = finalize(cfg)
    cfg = check_classes(cfg)
    info = init_distributed(cfg["device"])
    try:
        with SignalGuard() as guard:
            return _train(cfg, info, model_factory or build_model, resume, guard)
    finally:
        cleanup(info)


def _train(cfg: dict, info: DistInfo, model_factory, resume, guard: SignalGuard) -> dict:
    run = _Run(cfg, info, model_factory, guard)
    tcfg, out = run.tcfg, run.out
    total = tcfg["epochs"] * run.iters_per_epoch
    end = min(total, tcfg["max_iters"] or total)  # the iteration training stops at
    if tcfg["max_iters"] and tcfg["max_iters"] > total:  # the epochs end training first
        epochs = f"{tcfg['epochs']} epoch{'s' if tcfg['epochs'] > 1 else ''}"
        run._note(f"train.max_iters = {tcfg['max_iters']} is past the end of the schedule ({epochs} x "
                  f"{run.iters_per_epoch} iterations = {total}); training stops at iteration {total}")
    late = late_steps(tcfg["steps"], run.iters_per_epoch, end)
    if late:  # as detectron2 does for SOLVER.STEPS past MAX_ITER
        run._note(f"train.steps = {tcfg['steps']} (in epochs): {late} at or past the end of training (iteration "
                  f"{end}); the lr is not lowered there")
    source, state = _resume_source(run, resume)  # may move an earlier run's outputs aside first
    resumed_from = f"{source} (iteration {int(state['iteration'])})" if source is not None else None
    log = RunReport(JsonLog(out / "log.jsonl" if info.is_main else None), cfg, run.iters_per_epoch,
                    str(info.device), info.world_size, resumed_from=resumed_from)
    if source is not None:
        run.load(source, state)
        log.truncate_after(run.iteration)
    else:
        log.reset()
    started_at = run.iteration
    if info.is_main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.yaml").write_text(dump_config(cfg))
    run.model = wrap_model(run.bare, info, tcfg["find_unused_parameters"], tcfg["sync_bn"])
    if run.model is not run.bare:
        run.bare = unwrap(run.model)  # SyncBN conversion may have rebuilt the module
    metrics: dict | None = None
    try:
        metrics = _loop(run, log, guard)
    except BaseException as err:
        reason = f"{type(err).__name__}: {err}".strip().rstrip(":")
        if isinstance(err, KeyboardInterrupt):  # Ctrl-C, SIGTERM: resuming continues where it stopped
            _save_after_failure(run, reason, "--resume continues from it")
        elif isinstance(err, NonFiniteLossError):
            pass  # saved (or not) where it was found
        elif run.iteration == started_at:  # before any update: resuming would only meet the error again
            run._note(f"training stopped at iteration {run.iteration} ({reason}) before any update; nothing new "
                      "to save (interrupted.pth not written)")
        else:  # the error may come again: say what resuming needs
            _save_after_failure(run, reason, "--resume continues from it once the cause of the error is removed")
        raise
    final = out / "final.pth"
    if info.is_main:
        with guard.critical():
            save_atomic({"model": run.eval_model().state_dict(), "config": cfg, "epoch": run.epoch,
                         "iteration": run.iteration, "ema": run.ema is not None}, final)
    barrier(info)
    result = {"output_dir": str(out), "metrics": metrics, "epoch": run.epoch, "iteration": run.iteration,
              "checkpoint": str(out / "last.pth"), "final": str(final)}
    log.finish(result)
    return result


def _save_after_failure(run: _Run, reason: str, hint: str) -> None:
    try:
        run.save_interrupted(reason, hint)
    except Exception as save_err:  # noqa: BLE001 - keep the original error; say why nothing was saved
        print(f"[dsic] could not save interrupted.pth: {save_err}", file=sys.stderr, flush=True)


def _resume_source(run: _Run, resume) -> tuple[Path | None, dict | None]:
    """The checkpoint (path, state) to resume from, or (None, None) for a fresh start. Removes the
    temporary files of a killed save; a fresh start moves an earlier run's outputs aside (said)."""
    out, info = run.out, run.info
    if info.is_main:
        stale = remove_stale_temporaries(out)
        if stale:
            run._note(f"removed {len(stale)} temporary file(s) of an interrupted save: "
                      f"{', '.join(p.name for p in stale)}")
    found = None
    if isinstance(resume, (str, Path)) and not isinstance(resume, bool):
        found = Path(resume), check_resume_state(resume, run.cfg)
    elif resume:
        found = select_resume_state(out, run.cfg, run._note)
        if found is None:
            run._note(f"nothing to resume in {out}; training from the start")
    if found is not None:
        return found
    if info.is_main:
        moved = move_earlier_run(out)
        if moved is not None:
            run._note(f"{out} held the outputs of an earlier run (not resumed); moved them to {moved}")
    barrier(info)
    return None, None


def _stop_non_finite(run: _Run, what: str, epoch: int, losses: dict, values: list, tensors=()) -> None:
    """Raise :class:`NonFiniteLossError` for a non-finite ``what`` (loss, gradient, weights) in the
    coming iteration; before an update, ``interrupted.pth`` gets the (finite) state before it."""
    it = run.iteration + 1
    detail = ", ".join(f"{k}={v:.4g}" for k, v in zip(losses, values))
    message = f"non-finite {what} at iteration {it} (epoch {epoch + 1}): {detail}"
    if tensors:
        message += f"; in {len(tensors)} tensor(s): {', '.join(tensors[:5])}{', ...' if len(tensors) > 5 else ''}"
    repeat = "--resume with the same settings meets it again: lower train.base_lr or set train.grad_clip first"
    path = run.save_interrupted(f"non-finite {what} at iteration {it}", repeat) if what != "weights" else None
    if path is not None:
        message += f"; the state before it is saved in {path}"
    elif (run.out / "last.pth").is_file():
        message += f"; the last finite state is {run.out / 'last.pth'} (the last checkpoint)"
    else:
        message += "; no finite state was saved yet"
    raise NonFiniteLossError(message)


def _check_gradients(run: _Run, epoch: int, losses: dict, values: list) -> None:
    """Stop before the update when a gradient holds a NaN or inf (the weights never see it)."""
    bad = non_finite_names((n, p.grad) for n, p in run.bare.named_parameters() if p.grad is not None)
    if bad:
        _stop_non_finite(run, "gradient", epoch, losses, values, bad)


def _check_weights(run: _Run, epoch: int, losses: dict, values: list) -> None:
    """After an update: finite gradients can still overflow the weights (a huge lr)."""
    bad = non_finite_names(run.bare.named_parameters())
    if bad:
        _stop_non_finite(run, "weights", epoch, losses, values, bad)


def _checkpoint_due(run: _Run) -> bool:
    """A mid-epoch ``last.pth`` is due: every ``checkpoint_every_iters`` iterations or after
    ``checkpoint_minutes`` since the last one (rank 0's clock decides for every rank)."""
    tcfg = run.tcfg
    if run.epoch_iter >= run.iters_per_epoch or (tcfg["max_iters"] and run.iteration >= tcfg["max_iters"]):
        return False  # the end of the epoch / of training decides
    every, minutes = tcfg.get("checkpoint_every_iters"), tcfg.get("checkpoint_minutes")
    if every and run.iteration % every == 0:
        return True
    if not minutes:
        return False
    return bool(broadcast_object(time.monotonic() - run.saved_at >= minutes * 60, run.info))


def _evaluate(run: _Run, log: JsonLog, epoch: int, progress: bool) -> dict:
    """Evaluate the current weights as the end of epoch ``epoch`` (1-based); files and a log record."""
    cfg, info = run.cfg, run.info
    metrics = evaluate(run.eval_model(), run.val_loader, cfg["eval"]["evaluator"], cfg["eval"]["iou_types"],
                       cfg["eval"]["max_dets"], info,
                       run.out / f"results_epoch{epoch}.json" if info.is_main else None, progress)
    if info.is_main:
        (run.out / f"eval_epoch{epoch}.json").write_text(json.dumps(finite_json(metrics), indent=2))
        log.write({"epoch": epoch, "iter": run.iteration, "eval": metrics})
    return metrics


def _evaluation_pending(run: _Run, log: JsonLog) -> bool:
    """A resumed run stands where an evaluation was due (the end of training, or an ``eval_every``
    epoch end) and the log has no evaluation at this iteration: it was interrupted, run it."""
    tcfg = run.tcfg
    if not run.resumed or run.val_loader is None or not tcfg["eval_every"]:
        return False
    finished = bool(tcfg["max_iters"] and run.iteration >= tcfg["max_iters"]) or run.epoch >= tcfg["epochs"]
    boundary = run.epoch_iter == 0 and run.epoch > 0 and run.epoch % tcfg["eval_every"] == 0
    if not (finished or boundary):
        return False
    return bool(broadcast_object(not log.has_eval_at(run.iteration), run.info))


def _loop(run: _Run, log: JsonLog, guard: SignalGuard) -> dict | None:
    info, tcfg = run.info, run.tcfg
    ipe, max_iters = run.iters_per_epoch, tcfg["max_iters"]
    progress = show_progress(info)
    metrics = None
    device = info.device
    if _evaluation_pending(run, log):
        metrics = _evaluate(run, log, run.epoch + (1 if run.epoch_iter else 0), progress)
    if max_iters and run.iteration >= max_iters:
        return metrics
    for epoch in range(run.epoch, tcfg["epochs"]):
        skip = run.epoch_iter
        run.train_loader.sampler.set_epoch(epoch, skip * tcfg["batch_size"])
        run.train_loader.dataset.set_epoch(epoch)
        if skip and run.resume_rng is not None:
            set_rng_state(run.resume_rng)
        elif skip:
            seed_everything(_mix(tcfg["seed"], info.rank, epoch, run.iteration))
        else:
            seed_everything(_mix(tcfg["seed"], info.rank, epoch))
        run.resume_rng = None
        run.rng_snapshot = rng_state()
        run.model.train()
        bar = tqdm(total=ipe, initial=skip, desc=f"epoch {epoch + 1}/{tcfg['epochs']}", disable=not progress,
                   leave=False, dynamic_ncols=True)
        window = {"n": 0, "time": 0.0, "data": 0.0}
        stopped = False
        tick = time.perf_counter()
        for images, targets in run.train_loader:
            data_time = time.perf_counter() - tick
            lr = run.scheduler.set(run.iteration)
            images = [im.to(device, non_blocking=True) for im in images]
            targets = [{k: (v.to(device, non_blocking=True) if torch.is_tensor(v) else v) for k, v in t.items()}
                       for t in targets]
            with autocast(device, run.precision, warn=False, model=run.model):  # coordinates, scores in fp32
                losses = run.model(images, targets)
            loss = sum(losses.values())
            values = all_reduce_mean(torch.stack([v.detach().float() for v in losses.values()]), info).tolist()
            if not all(math.isfinite(v) for v in values):
                _stop_non_finite(run, "loss", epoch, losses, values)
            run.optimizer.zero_grad(set_to_none=True)
            run.scaler.scale(loss).backward()
            grad_norm = None
            with guard.critical(until_release=True):  # signals wait for the update and its log line
                if not run.scaler.is_enabled():  # with fp16 AMP, GradScaler skips non-finite gradients
                    _check_gradients(run, epoch, losses, values)
                if tcfg["grad_clip"]:
                    run.scaler.unscale_(run.optimizer)
                    grad_norm = float(torch.nn.utils.clip_grad_norm_(run.model.parameters(), tcfg["grad_clip"]))
                run.scaler.step(run.optimizer)
                run.scaler.update()
                _check_weights(run, epoch, losses, values)
                if run.ema is not None:
                    run.ema.update(run.bare)
                run.iteration += 1
                run.epoch_iter += 1
                run.rng_snapshot = rng_state()
            bar.update(1)
            now = time.perf_counter()
            window["n"] += 1
            window["time"] += now - tick
            window["data"] += data_time
            if run.iteration % tcfg["log_every"] == 0 or run.iteration == 1:
                rec = {"iter": run.iteration, "epoch": epoch + 1, "lr": lr, "loss": sum(values),
                       **dict(zip(losses, values)), "time": round(window["time"] / window["n"], 4),
                       "data_time": round(window["data"] / window["n"], 4)}
                if grad_norm is not None:
                    rec["grad_norm"] = grad_norm
                if device.type == "cuda":
                    rec["mem_mb"] = round(torch.cuda.max_memory_allocated(device) / 2**20)
                log.write(rec)
                bar.set_postfix(loss=f"{rec['loss']:.3f}", lr=f"{lr:.2e}")
                window = {"n": 0, "time": 0.0, "data": 0.0}
            if _checkpoint_due(run):
                run.save_last(f"iteration {run.iteration}")
            guard.release()
            tick = time.perf_counter()
            if max_iters and run.iteration >= max_iters:
                stopped = True
                break
        bar.close()
        completed = run.epoch_iter >= ipe
        if completed:
            run.epoch, run.epoch_iter = epoch + 1, 0
        last = stopped or epoch + 1 == tcfg["epochs"]
        every = tcfg["checkpoint_every"]
        if last or (completed and every and (epoch + 1) % every == 0):
            run.save_last("end of training" if last else f"end of epoch {epoch + 1}")
        every = tcfg["eval_every"]
        if run.val_loader is not None and every and (last or (completed and (epoch + 1) % every == 0)):
            metrics = _evaluate(run, log, epoch + 1, progress)
        if last:
            break
    return metrics


def main_train(config_path, overrides=None, resume: bool = False) -> dict:
    """``dsic train``: load the config (with overrides) and train; works under torchrun."""
    return train(load_config(config_path, overrides), resume=resume)
