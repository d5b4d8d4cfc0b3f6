"""The training loop: batch → attack → forward → margin → weight → objective → step.

One loop serves every method: the objective, margin and weighting come from their registries, so
there is no per-method branch here. Checkpoints hold everything the future depends on (model,
optimizer, scheduler, AWP proxy, epoch and step, RNG states, metrics so far), so a run resumed
after a crash ends bitwise where the uninterrupted run would have.
"""
from __future__ import annotations

import dataclasses
import json
import random
import shutil
import signal
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch import Tensor, nn

from .. import distributed as dist_utils
from ..attacks.pgd import eval_mode, pgd
from ..checkpoint import (check_data_matches, load_checkpoint, load_state_checked, rng_state, save_checkpoint,
                         set_rng_state)
from ..config import Config, config_from_dict, dump_yaml
from ..presets import read_yaml
from ..data.loader import Batch, Splits, default_augment, epoch_batches, load_splits, steps_per_epoch
from ..errors import IratError, TrainingDiverged
from ..evaluation import quick_accuracy
from .ema import EMA
from .epochs import awp_active, fat_tau, stuck_at_constant
from .stats import EpochStats, epoch_line, format_line
from .tensorboard import TensorBoardLog
from ..files import atomic_write_text, remove_stale_temps
from ..margins import MARGINS, MarginInputs, confused_label_count
from ..models import model_from_config
from ..runs import RunDir
from ..objectives import OBJECTIVES
from ..weighting import reweight, reweighting_active
from ..awp import AWP

NAN_CHECK_EVERY = 25


class Interrupted(Exception):
    """SIGTERM/SIGINT: a checkpoint was written; exit with `code` (143 or 130)."""

    def __init__(self, code: int, checkpoint: Path):
        super().__init__(f"interrupted; checkpoint written to {checkpoint}")
        self.code = code
        self.checkpoint = checkpoint


@dataclass
class RunResult:
    out_dir: Path
    metrics: list[dict[str, Any]]
    checkpoint: Path
    best_checkpoint: Path | None = None


def _local_samples(n: int, batch_size: int, rank: int, world: int) -> int:
    """Samples this rank sees in one epoch (epoch_batches slices each global batch into `world` parts)."""
    total = 0
    for start in range(0, n, batch_size):
        g = min(batch_size, n - start)
        total += (g * (rank + 1)) // world - (g * rank) // world
    return total


def _config_from_yaml(path: Path) -> Config:
    """The config.yaml a run wrote at its start (for --resume of a run killed before its first checkpoint)."""
    return config_from_dict(read_yaml(path, "--resume"))


class Trainer:
    def __init__(self, cfg: Config, out_dir: str | Path, *, resume: bool = False, overwrite: bool = False,
                 progress: bool = True, device: str | None = None):
        if device is not None and device != cfg.device:
            cfg = dataclasses.replace(cfg, device=device)  # the caller's config stays as it was
        self.out_dir = Path(out_dir)
        self.rundir = RunDir(self.out_dir)
        self.progress = progress
        ckpt = None
        restart = False  # --resume of a run killed before its first checkpoint: start it again
        if resume:
            last, saved_yaml = self.rundir.last, self.rundir.config
            if last.exists():
                ckpt = load_checkpoint(last)
                saved = config_from_dict(ckpt["config"])
            elif saved_yaml.is_file():
                saved = _config_from_yaml(saved_yaml)
                restart = True
            else:
                raise IratError(f"--resume: no checkpoint at {last} and no {saved_yaml}; start the run "
                                f"without --resume")
            saved.device = cfg.device
            cfg = saved
        elif self.out_dir.exists() and any(self.out_dir.iterdir()) and not overwrite:
            raise IratError(f"--out: run directory {self.out_dir} already exists and is not empty; "
                            f"use --resume to continue it or --overwrite to replace it")
        self.cfg = cfg
        self.device = dist_utils.local_device(cfg.device)
        dist_utils.init_from_env(self.device)
        self.rank, self.world = dist_utils.rank_world()
        if cfg.batch_size % self.world != 0:
            raise IratError(f"batch_size: must be divisible by the number of processes ({self.world})")
        fast = cfg.fast
        self.amp = fast.amp if fast.amp is not None else self.device.type == "cuda"
        self.channels_last = fast.channels_last if fast.channels_last is not None else True
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = fast.cudnn_benchmark

        # data and model first: bad input fails before anything is written
        self.splits: Splits = load_splits(cfg, self.device)
        self.augment = cfg.data.augment if cfg.data.augment is not None else default_augment(self.splits)
        if ckpt is not None:
            check_data_matches(ckpt, self.splits, self.rundir.last)
        torch.manual_seed(cfg.seed)
        try:
            model = model_from_config(cfg, self.splits.num_classes, self.splits.in_channels, self.splits.image_size)
        except ValueError as e:  # e.g. images too small for the architecture
            raise IratError(f"model.name: {cfg.model.name} cannot take the images of data.name={cfg.data.name} "
                            f"({self.splits.in_channels}x{self.splits.image_size[0]}x{self.splits.image_size[1]}): "
                            f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
        self.model = model.to(self.device)
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=cfg.optim.lr, momentum=cfg.optim.momentum,
                                         weight_decay=cfg.optim.weight_decay, nesterov=cfg.optim.nesterov)
        if cfg.optim.schedule == "step":
            self.scheduler = torch.optim.lr_scheduler.MultiStepLR(self.optimizer, cfg.optim.milestones,
                                                                  cfg.optim.lr_gamma)
        else:  # LambdaLR counts finished epochs from 0: epoch e (1-indexed) runs after e − 1 steps
            self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda done: cfg.lr_factor(done + 1))
        self.awp = None
        self.ema = EMA(self.model, cfg.ema.decay, cfg.ema.warmup) if cfg.ema.enabled else None
        if cfg.awp.enabled:
            self.awp = AWP(self.model, cfg.awp.gamma, cfg.awp.proxy_lr)
        self.train_model: nn.Module = self.model
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.train_model = DDP(self.model, device_ids=ids)
        self.attack_model: nn.Module = self.model
        if fast.compile:
            self.attack_model = torch.compile(self.model)
            self.train_model = torch.compile(self.train_model)

        self.metrics: list[dict[str, Any]] = []
        self.start_epoch, self.start_step = 1, 0
        self.best: dict[str, Any] = {}
        self.epoch_state: dict[str, Tensor] | None = None
        random.seed(cfg.seed)
        np.random.seed(cfg.seed % (2**32))
        torch.manual_seed(cfg.seed + self.rank)
        if (ckpt is not None or restart) and self.rank == 0:  # temp files of writes a kill cut short
            remove_stale_temps(self.out_dir)
            remove_stale_temps(self.ckpt_dir)
        if ckpt is not None:
            self._restore(ckpt)
        elif self.rank == 0:
            if self.out_dir.exists() and overwrite:
                shutil.rmtree(self.out_dir)
            try:
                self.out_dir.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise IratError(f"--out: cannot create the run directory {self.out_dir} ({e.strerror})") from None
            atomic_write_text(self.rundir.config, dump_yaml(cfg))
            if restart:
                self._write_metrics()
        dist_utils.barrier()
        self._stop_signal: int | None = None
        self._first_bad = torch.full((2,), -1, dtype=torch.long, device=self.device)

    # ---- checkpoints ------------------------------------------------------------------------
    @property
    def ckpt_dir(self) -> Path:
        return self.rundir.checkpoints

    def _payload(self, completed_epochs: int, step_in_epoch: int, stats: EpochStats | None) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "awp": self.awp.state_dict() if self.awp is not None else None,
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "epoch": completed_epochs,
            "step_in_epoch": step_in_epoch,
            "epoch_state": stats.state() if stats is not None and step_in_epoch > 0 else None,
            "config": self.cfg.to_dict(),
            "rng": rng_state(),
            "metrics": list(self.metrics),
            "best": dict(self.best),
            "num_classes": self.splits.num_classes,
            "in_channels": self.splits.in_channels,
            "image_size": list(self.splits.image_size),
            "classes": list(self.splits.classes),
        }

    def _save(self, completed_epochs: int, step_in_epoch: int, stats: EpochStats | None) -> Path:
        self.check_finite()
        path = self.rundir.last
        rngs = None
        if self.world > 1:  # collectives: every rank calls _save at the same step
            rngs = self._gather_objects(rng_state())
            if stats is not None and step_in_epoch > 0:
                stats = self._merged_stats(stats)
        if self.rank == 0:
            payload = self._payload(completed_epochs, step_in_epoch, stats)
            if rngs is not None:
                payload["rng_ranks"] = rngs
            save_checkpoint(path, payload)
        dist_utils.barrier()
        return path

    def _gather_objects(self, obj: Any) -> list[Any]:
        parts: list[Any] = [None] * self.world
        torch.distributed.all_gather_object(parts, obj)
        return parts

    def _merged_stats(self, stats: EpochStats) -> EpochStats:
        """All ranks' partial-epoch statistics in one (sums added, samples concatenated), for the
        checkpoint: a resumed run gives it to rank 0 and starts the other ranks empty, so the epoch's
        summary is the same for any number of processes before and after the resume."""
        states = self._gather_objects(stats.state())
        merged = EpochStats(self.device)
        merged.load({"sums": torch.stack([st["sums"] for st in states]).sum(0),
                     "weights": torch.cat([st["weights"] for st in states]),
                     "margins": torch.cat([st["margins"] for st in states])})
        return merged

    def _restore(self, ckpt: dict[str, Any]) -> None:
        path = self.rundir.last
        load_state_checked(self.model, ckpt["model"], path)
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        if self.awp is not None and ckpt.get("awp") is not None:
            self.awp.load_state_dict(ckpt["awp"])
        if self.ema is not None:
            if ckpt.get("ema") is None:
                raise IratError(f"--resume: {path} has no EMA state but the run's config enables ema")
            load_state_checked(self.ema.model, ckpt["ema"]["model"], path)
            self.ema.updates = int(ckpt["ema"]["updates"])
        self.metrics = list(ckpt.get("metrics", []))
        self.best = dict(ckpt.get("best", {}))
        self.start_epoch = int(ckpt["epoch"]) + 1
        self.start_step = int(ckpt.get("step_in_epoch", 0))
        self.epoch_state = ckpt.get("epoch_state") if self.rank == 0 else None  # merged over ranks at save
        rngs = ckpt.get("rng_ranks")
        set_rng_state(rngs[self.rank] if rngs is not None and len(rngs) == self.world else ckpt["rng"])
        if self.rank == 0:  # metrics.jsonl is rewritten from the checkpoint: no lost or repeated epochs
            self._write_metrics()

    def _write_metrics(self) -> None:
        atomic_write_text(self.rundir.metrics, "".join(json.dumps(m) + "\n" for m in self.metrics))

    # ---- numerical faults ---------------------------------------------------------------------
    def note_finite(self, loss: Tensor, epoch: int, step: int) -> None:
        bad = ~torch.isfinite(loss.detach())
        first = (self._first_bad[0] < 0) & bad
        marker = self._first_bad.new_full((2,), epoch)  # built on the device: no host-to-device copy
        marker[1:].fill_(step)
        self._first_bad = torch.where(first, marker, self._first_bad)
        self._pos = (epoch, step)

    def check_finite(self) -> None:
        """Raise before a non-finite loss or weight can reach a checkpoint (one sync, at saves only).

        Steps in the message count from 1 within the epoch, like the checkpoints' `step_in_epoch`."""
        last = self.rundir.last
        kept = (f"the last good checkpoint {last} is kept" if last.exists() else "no checkpoint was written")
        if int(self._first_bad[0]) >= 0:
            e, s = (int(v) for v in self._first_bad.tolist())
            raise TrainingDiverged(f"training diverged: non-finite loss at epoch {e}, step {s + 1}; {kept} "
                                   f"(lower optim.lr or check the data)")
        params = [p.detach() for p in self.model.parameters()]
        if params and not bool(torch.stack([torch.isfinite(p).all() for p in params]).all()):
            e, s = getattr(self, "_pos", (self.start_epoch, self.start_step - 1))
            raise TrainingDiverged(f"training diverged: non-finite weights after epoch {e}, step {s + 1}; {kept} "
                                   f"(lower optim.lr or check the data)")

    # ---- one step -----------------------------------------------------------------------------
    def autocast(self, training: bool = False):
        """bf16 autocast for the attack when fast.amp is on; for the training forward/backward only with
        fast.amp_train as well (the margins and weights read that forward: SPEC §1)."""
        if not self.amp or (training and not self.cfg.fast.amp_train):
            return nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)

    def step(self, x: Tensor, y: Tensor, noise: Tensor | None, global_size: int, epoch: int,
             stats: EpochStats) -> Tensor:
        cfg, r = self.cfg, self.cfg.reweight
        obj = OBJECTIVES[cfg.objective]
        needs = MARGINS[r.margin].needs
        attack = cfg.training_attack
        tau = fat_tau(cfg, epoch)
        eps, step_size = cfg.attack_radius(epoch)
        run_attack = eps > 0 or bool(needs & {"kappa", "probs_at_lps"})
        nat_from_eval = "probs_nat" in needs and (r.margin_source == "eval" or not obj.needs_nat)
        # margin inputs are fp32 (only the attack runs under bf16 autocast, fast.amp) and read in eval
        # mode from the model the attack sees: before AWP perturbs it and before the training forward
        # updates BatchNorm's running statistics (SPEC §1)
        probs_nat_eval = probs_adv_eval = probs_at_lps = None
        with torch.no_grad(), eval_mode(self.attack_model):
            if (run_attack and attack.loss == "kl") or "probs_nat_eval" in needs or nat_from_eval:
                probs_nat_eval = torch.softmax(self.attack_model(x).float(), dim=1)
        if run_attack:
            with self.autocast():
                res = pgd(self.attack_model, x, y, eps, cfg.attack.steps, step_size,
                          loss=attack.loss, start=attack.start,
                          target_probs=probs_nat_eval if attack.loss == "kl" else None, tau=tau,
                          keep_lps_iterate="probs_at_lps" in needs, lps_probs=not self.amp, noise=noise)
            x_adv, probs_at_lps = res.x_adv, res.probs_at_first_wrong
        else:
            res, x_adv = None, x
        with torch.no_grad(), eval_mode(self.attack_model):
            if r.margin_source == "eval":
                probs_adv_eval = torch.softmax(self.attack_model(x_adv).float(), dim=1)
            if self.amp and "probs_at_lps" in needs:  # the attack's own would be bf16: read p(x + δ^(t_i)) in fp32
                probs_at_lps = torch.softmax(self.attack_model(res.x_at_first_wrong).float(), dim=1)

        with self.autocast(training=True):
            diff = None
            if self.awp is not None and awp_active(cfg, epoch):
                diff = self.awp.compute(lambda proxy: self._proxy_loss(proxy, obj, x, x_adv, y, global_size))
                self.awp.apply(diff, +1.0)

            self.train_model.train()
            logits_nat = self.train_model(x) if obj.needs_nat else None
            logits_adv = self.train_model(x_adv)
            weighted, unweighted = obj.fn(logits_nat, logits_adv, y, cfg.tradeoff)

        with torch.no_grad():
            probs_adv = probs_adv_eval if probs_adv_eval is not None else torch.softmax(logits_adv.detach().float(), 1)
            probs_nat = None
            if "probs_nat" in needs:
                probs_nat = probs_nat_eval if nat_from_eval else torch.softmax(logits_nat.detach().float(), dim=1)
            inputs = MarginInputs(
                labels=y, probs_adv=probs_adv, probs_nat=probs_nat, probs_nat_eval=probs_nat_eval,
                probs_at_lps=probs_at_lps,
                kappa=res.kappa if res is not None else None,
                first_wrong=res.first_wrong if res is not None else None, lps_mode=r.lps_mode)
            omega, margin, ess, drop = reweight(r, inputs, cfg.attack.steps,
                                                reweighting_active(epoch, cfg.burn_in_end), global_size,
                                                dist_utils.all_reduce_sum)

        # Σ_local ω ℓ · W / M: DDP's gradient average then equals the global-batch mean
        per_sample = omega * weighted + unweighted
        loss = per_sample.sum() * (self.world / global_size)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        if diff is not None:
            self.awp.apply(diff, -1.0)
        if self.ema is not None:
            self.ema.update(self.model)

        with torch.no_grad():
            n_cl = confused_label_count(probs_adv, y)
            right = logits_adv.detach().argmax(1) == y
            stats.add(loss_sum=per_sample.detach().double().sum(), correct=right.sum(),
                      w_correct=(omega * right).sum(), w_wrong=(omega * ~right).sum(),
                      count=float(y.shape[0]), ess_sum=ess / max(self.world, 1), batches=1.0 / max(self.world, 1),
                      cl_one=(n_cl == 1).sum(), cl_several=(n_cl >= 2).sum(), misclassified=(n_cl >= 1).sum(),
                      excluded=drop.sum())
            stats.add_samples(omega.detach().float(), margin.detach().float())
        return loss.detach()

    def _proxy_loss(self, proxy: nn.Module, obj: Any, x: Tensor, x_adv: Tensor, y: Tensor,
                    global_size: int) -> Tensor:
        """AWP's proxy loss, unweighted: this rank's sum over the global batch size M, so that the
        all-reduced (summed) proxy gradient is the gradient of the global-batch mean."""
        a, b = obj.fn(proxy(x) if obj.needs_nat else None, proxy(x_adv), y, self.cfg.tradeoff)
        return (a + b).sum() / global_size

    # ---- one epoch ----------------------------------------------------------------------------
    def batches(self, epoch: int, start_step: int = 0) -> Iterator[Batch]:
        """This rank's batches of `epoch` (seeded order, augmentation and attack start noise)."""
        cfg = self.cfg
        return epoch_batches(self.splits.x_train, self.splits.y_train, batch_size=cfg.batch_size, seed=cfg.seed,
                             epoch=epoch, device=self.device, augment=self.augment, start_step=start_step,
                             rank=self.rank, world=self.world, noise_kind=cfg.training_attack.start,
                             channels_last=self.channels_last,
                             extra=(self.splits.x_extra, self.splits.y_extra) if cfg.extra_per_batch else None,
                             extra_per_batch=cfg.extra_per_batch)

    def train_epoch(self, epoch: int, stats: EpochStats, start_step: int = 0,
                    after_step: Callable[[Batch], None] | None = None) -> int:
        """The steps of one epoch (no scheduler step, summary or checkpoint); returns the images seen by
        all ranks. A non-finite loss is noted on the device and raised every NAN_CHECK_EVERY steps."""
        n = 0
        for batch in self.batches(epoch, start_step):
            loss = self.step(batch.x, batch.y, batch.noise, batch.global_size, epoch, stats)
            self.note_finite(loss, epoch, batch.step)
            if (batch.step + 1) % NAN_CHECK_EVERY == 0:
                self.check_finite()
            n += batch.global_size
            if after_step is not None:
                after_step(batch)
        return n

    # ---- epoch summary ------------------------------------------------------------------------
    def _gather(self, t: Tensor) -> Tensor:
        if self.world == 1:
            return t.cpu()
        parts: list[Any] = [None] * self.world
        torch.distributed.all_gather_object(parts, t.cpu())
        return torch.cat(parts)

    def _summary(self, epoch: int, lr: float, stats: EpochStats, seconds: float) -> dict[str, Any]:
        cfg = self.cfg
        sums = dist_utils.all_reduce_sum(stats.sums).cpu().tolist()
        s = dict(zip(EpochStats.KEYS, sums))
        w = self._gather(stats.weights).double()  # float64: the mean does not depend on the gather order
        m = self._gather(stats.margins)
        line = epoch_line(epoch, lr, s, w, m, cfg.reweight.margin, cfg.attack.steps,
                          cfg.reweight.margin != "none" and reweighting_active(epoch, cfg.burn_in_end),
                          cfg.reweight.exclude)
        tau = fat_tau(cfg, epoch)
        if tau is not None:
            line["tau"] = tau
        if self.splits.x_val.shape[0] > 0 and cfg.eval_every > 0 and (
                epoch % cfg.eval_every == 0 or epoch == cfg.epochs):
            validated = self.ema.model if self.ema is not None else self.attack_model  # EMA: what eval uses
            acc = quick_accuracy(validated, self.splits.x_val, self.splits.y_val, cfg.attack.eps,
                                 ["nat", "pgd20"], batch_size=max(cfg.batch_size, 256), seed=cfg.seed + epoch,
                                 device=self.device, channels_last=self.channels_last,
                                 reduce=dist_utils.all_reduce_sum)
            line["val"] = acc
            if self.ema is not None:
                line["val_weights"] = "ema"
        if cfg.attack.eps_warmup:
            line["attack_eps"] = cfg.attack_radius(epoch)[0]
        k = self.splits.num_classes
        if epoch == 2 and self.metrics and all(stuck_at_constant(m["train_acc"], m["loss"], k)
                                               for m in (self.metrics[-1], line)):
            line["stuck"] = True  # both first epochs at the constant classifier
        line["seconds"] = seconds
        line["images_per_s"] = s["count"] / max(seconds, 1e-9)
        return line

    # ---- the loop -----------------------------------------------------------------------------
    def _on_signal(self, signum: int, frame: Any) -> None:
        self._stop_signal = signum

    def _agree_stop(self) -> bool:
        """Under DDP: has any rank been signalled? (one all-reduce; then every rank stops together)."""
        flag = torch.full((1,), int(self._stop_signal or 0), device=self.device)
        flag = dist_utils.all_reduce_sum(flag)
        got = int(flag.item())
        if got and self._stop_signal is None:
            self._stop_signal = int(signal.SIGTERM)
        return got > 0

    def run(self) -> RunResult:
        cfg = self.cfg
        n = self.splits.x_train.shape[0]
        spe = steps_per_epoch(n, cfg.batch_size, cfg.extra_per_batch)
        n = n + spe * cfg.extra_per_batch  # images per epoch, the extra ones included
        tensorboard = TensorBoardLog.open(self.out_dir, cfg, self.metrics, enabled=self.rank == 0)
        old_handlers = {}
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                old_handlers[sig] = signal.signal(sig, self._on_signal)
            except ValueError:  # not the main thread
                pass
        bar = None
        try:
            if self.progress and self.rank == 0:
                from tqdm import tqdm
                total = (cfg.epochs - self.start_epoch + 1) * n - self.start_step * cfg.batch_size
                bar = tqdm(total=max(total, 0), unit="img", unit_scale=True, dynamic_ncols=True, leave=False)
            for epoch in range(self.start_epoch, cfg.epochs + 1):
                stats = EpochStats(self.device, capacity=_local_samples(n, cfg.batch_size, self.rank, self.world))
                start_step = self.start_step if epoch == self.start_epoch else 0
                if start_step and self.epoch_state is not None:
                    stats.load(self.epoch_state)
                lr = self.optimizer.param_groups[0]["lr"]
                t0 = time.perf_counter()

                def after_step(batch: Batch, epoch: int = epoch, stats: EpochStats = stats) -> None:
                    done = batch.step + 1
                    if bar is not None:
                        bar.set_description(f"epoch {epoch}/{cfg.epochs}", refresh=False)
                        bar.update(batch.global_size)
                    stop = self._stop_signal is not None
                    if self.world > 1:  # ranks stop at the same step: agree where they sync anyway
                        stop = done % NAN_CHECK_EVERY == 0 and self._agree_stop()
                    if done < spe and (stop or (cfg.checkpoint_every_steps and
                                                ((epoch - 1) * spe + done) % cfg.checkpoint_every_steps == 0)):
                        path = self._save(epoch - 1, done, stats)
                        if stop:
                            raise Interrupted(128 + int(self._stop_signal), path)

                self.train_epoch(epoch, stats, start_step, after_step)
                self.scheduler.step()
                self.check_finite()
                line = self._summary(epoch, lr, stats, time.perf_counter() - t0)
                self.metrics.append(line)
                improved = "val" in line and line["val"]["pgd20"] > self.best.get("val_pgd20", -1.0)
                if improved:
                    self.best = {"epoch": epoch, "val_pgd20": line["val"]["pgd20"], "val_nat": line["val"]["nat"]}
                # best.pt, then last.pt, then metrics.jsonl: a kill between two writes never leaves
                # last.pt naming a best.pt that is not on disk, nor metrics.jsonl ahead of last.pt
                if improved and self.rank == 0:
                    save_checkpoint(self.rundir.best, self._payload(epoch, 0, None))
                if cfg.keeps(epoch) and self.rank == 0:  # before last.pt: a kill between them redoes this epoch
                    save_checkpoint(self.rundir.kept(epoch), self._payload(epoch, 0, None))
                path = self._save(epoch, 0, None)
                if self.rank == 0:
                    self._write_metrics()
                    tensorboard.add(line)
                    if bar is not None:
                        bar.write(format_line(line))
                    if line.get("stuck"):
                        print(f"irat: warning: epochs 1-2: training accuracy {line['train_acc']:.1f}% and loss "
                              f"{line['loss']:.3f} ≈ ln K: the model has stayed at the constant classifier and may "
                              f"never leave it (try attack.eps_warmup=N or a lower optim.lr)", file=sys.stderr)
                stop = self._agree_stop() if self.world > 1 else self._stop_signal is not None
                if stop and epoch < cfg.epochs:
                    raise Interrupted(128 + int(self._stop_signal), path)
        finally:
            tensorboard.close()
            if bar is not None:
                bar.close()
            for sig, h in old_handlers.items():
                signal.signal(sig, h)
        best = self.rundir.best
        return RunResult(self.out_dir, self.metrics, self.rundir.last, best if best.exists() else None)


def train(cfg: Config, out_dir: str | Path, *, resume: bool = False, overwrite: bool = False,
          progress: bool = True, device: str | None = None) -> RunResult:
    """Train `cfg` into `out_dir` (config.yaml, metrics.jsonl, checkpoints/last.pt[, best.pt])."""
    return Trainer(cfg, out_dir, resume=resume, overwrite=overwrite, progress=progress, device=device).run()
