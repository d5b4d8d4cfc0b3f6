"""Configuration as data: dataclasses, YAML presets, dotted `--set` overrides, validated once at the edge.

Resolution order (later wins): dataclass defaults < the method's defaults < the preset / config file
< explicit `--set key=value`. Presets never set method-owned keys, so `--set method=NAME` on any
preset brings in that method's defaults, and an explicit `--set` still wins.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

import yaml

from .attacks.pgd import ATTACK_LOSSES, STARTS
from .data.loader import check_data_name
from .errors import ConfigError
from .margins import MARGINS
from .methods import METHODS, method_defaults
from .models import MODELS, architecture_keys
from .objectives import OBJECTIVES
from .presets import preset_dict, read_yaml, yaml_load
from .weighting import EXCLUDE, GAIR_KINDS, NORMS, WEIGHTINGS


@dataclass
class DataConfig:
    name: str = "fashion-mnist"
    root: str = "data"
    train_subset: int | None = None  # seeded subset of the training set
    val_size: int = 0  # held out of the training set, for validation and best-checkpoint choice
    augment: bool | None = None  # None: crop+flip for CIFAR-like 32x32 RGB sets, none otherwise
    on_device: bool = True  # keep the whole uint8 data set on the training device
    extra: str | None = None  # .npz of extra training images (`images` uint8 NHWC or NCHW, `labels`)
    extra_fraction: float = 0.0  # the share of every training batch drawn from data.extra


@dataclass
class ModelConfig:
    name: str = "smallcnn"
    normalize: bool = False  # mean/std normalization inside the model (inputs stay in [0, 1])
    mean: list[float] | None = None
    std: list[float] | None = None
    depth: int | None = None  # WRN depth (default from the name)
    width: int | None = None  # WRN widen factor (10); ResNet/PreAct base width (64); smallcnn first stage (32)
    dropout: float = 0.0  # small CNN classifier dropout (TRADES used 0.5); other architectures refuse it


@dataclass
class AttackConfig:
    """The training attack (SPEC §4). loss/start None: the objective's default."""

    eps: float = 8 / 255
    steps: int = 10
    step_size: float = 2 / 255
    start: str | None = None  # "uniform" | "normal" (x + 0.001 N(0, I)) | "none"
    loss: str | None = None  # "ce" | "kl" | "cw"
    eps_warmup: int = 0  # ε and the step size rise linearly over the first N epochs (ε·e/N in epoch e)


SCHEDULES = ("step", "cosine", "onecycle")


@dataclass
class OptimConfig:
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 3.5e-3
    nesterov: bool = False
    milestones: list[int] = field(default_factory=lambda: [75, 90])  # step: LR ÷ (1/lr_gamma) after each
    lr_gamma: float = 0.1
    schedule: str = "step"  # step (milestones) | cosine | onecycle (linear up to the peak, then down)
    onecycle_peak: float = 0.4  # onecycle: the fraction of the epochs at which the LR peaks


@dataclass
class ReweightConfig:
    margin: str = "none"  # pm_adv | pm_nat | pm_dif | cl_pm | lps | none
    weighting: str = "none"  # sigmoid | gair | none
    gamma: float = 10.0  # sigmoid slope γ
    beta: float = -0.5  # sigmoid bias β
    norm: str = "batch"  # batch | constant
    c: float = 3.0  # constant for norm=constant
    from_epoch: int | None = None  # burn-in ends here (1-indexed); None: epoch after first LR decay
    lam: float = -1.0  # GAIRAT λ
    gair_kind: str = "tanh"  # tanh | sigmoid | discrete
    lps_mode: str = "count"  # count (reference code) | first (GAIRAT paper)
    margin_source: str = "train"  # train: the training forward's probabilities; eval: recompute
    exclude: str = "none"  # after the burn-in, drop from the loss the misclassified adversarial examples with
    # a single confused label (S^sig: "single") or several (S^mul: "multiple"): CLIRAT's Fig. 1B ablation


@dataclass
class AWPConfig:
    enabled: bool = False
    gamma: float = 0.01
    warmup: int = 0  # the first N epochs train without weight perturbation (AWP from epoch N + 1)
    proxy_lr: float = 0.01  # the proxy's SGD step; it cancels in the per-layer normalization


@dataclass
class FATConfig:
    enabled: bool = False
    tau_max: int = 2
    tau_epochs: list[int] | None = None  # epochs at which τ grows by one; None: the reference's 51 and 91 of 120, scaled


@dataclass
class EMAConfig:
    """Weight averaging (training/ema.py): validated, checkpointed, and what eval and export use."""

    enabled: bool = False
    decay: float = 0.999
    warmup: int = 0  # updates over which the decay ramps up linearly from 0


@dataclass
class FastConfig:
    amp: bool | None = None  # bf16 autocast for the attacks; None: on for CUDA only (slower on most CPUs)
    amp_train: bool = False  # bf16 also for the training forward/backward (margins then move with precision)
    channels_last: bool | None = None  # None: on
    compile: bool = False
    cudnn_benchmark: bool = True


@dataclass
class LogConfig:
    tensorboard: bool = True  # RUN/tensorboard/: metrics.jsonl's scalars and histograms as TensorBoard events


@dataclass(frozen=True)
class TrainingAttack:
    loss: str
    start: str


@dataclass
class Config:
    method: str = "at"
    objective: str = "at"  # at | trades | mart
    tradeoff: float = 6.0  # TRADES β_t / MART λ_m
    epochs: int = 120
    batch_size: int = 128
    seed: int = 0
    device: str = "auto"
    eval_every: int = 1  # validation every N epochs (needs data.val_size > 0)
    checkpoint_every_steps: int = 0  # 0: only at epoch ends
    keep_epochs: list[int] = field(default_factory=list)  # also keep checkpoints/epoch-NNN.pt of these epochs
    keep_every: int = 0  # … and of every N-th epoch (0: none); `irat eval RUN` evaluates the kept ones
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    attack: AttackConfig = field(default_factory=AttackConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    reweight: ReweightConfig = field(default_factory=ReweightConfig)
    awp: AWPConfig = field(default_factory=AWPConfig)
    fat: FATConfig = field(default_factory=FATConfig)
    ema: EMAConfig = field(default_factory=EMAConfig)
    fast: FastConfig = field(default_factory=FastConfig)
    log: LogConfig = field(default_factory=LogConfig)

    # ---- derived values -------------------------------------------------------------------
    @property
    def training_attack(self) -> "TrainingAttack":
        """The training attack's loss and random start: attack.loss / attack.start, or the objective's
        defaults (CE and uniform for AT and MART, KL and x + 0.001·N(0, I) for TRADES)."""
        obj = OBJECTIVES[self.objective]
        return TrainingAttack(self.attack.loss or obj.attack_loss, self.attack.start or obj.attack_start)

    @property
    def burn_in_end(self) -> int:
        """First epoch (1-indexed) with reweighting: reweight.from_epoch, else SPEC §2's epoch after the
        first LR decay (the first of optim.milestones, which marks the burn-in for every schedule)."""
        if self.reweight.from_epoch is not None:
            return self.reweight.from_epoch
        return (min(self.optim.milestones) + 1) if self.optim.milestones else 1

    @property
    def extra_per_batch(self) -> int:
        """Images of every training batch drawn from data.extra (the rest from the training set)."""
        return round(self.data.extra_fraction * self.batch_size) if self.data.extra else 0

    def keeps(self, epoch: int) -> bool:
        """Whether checkpoints/epoch-NNN.pt of `epoch` is kept (keep_epochs, every keep_every-th epoch)."""
        return epoch in self.keep_epochs or (self.keep_every > 0 and epoch % self.keep_every == 0)

    def lr_factor(self, epoch: int) -> float:
        """The LR of epoch `epoch` (1-indexed) over optim.lr, for cosine and onecycle (E epochs, P the peak):
        cosine ½(1 + cos(π (e − 1) / E)); onecycle e / P up to P, then (E − e + 1) / (E − P + 1)."""
        o, e, n = self.optim, epoch, self.epochs
        if o.schedule == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * (e - 1) / n))
        if o.schedule == "onecycle":
            peak = max(1, round(o.onecycle_peak * n))
            return e / peak if e <= peak else (n - e + 1) / (n - peak + 1)
        raise ValueError(f"optim.schedule: lr_factor is for cosine and onecycle (step uses milestones), got {o.schedule}")

    def attack_radius(self, epoch: int) -> tuple[float, float]:
        """The training attack's (ε, step size) in `epoch`: scaled by e / attack.eps_warmup during the warm-up."""
        a = self.attack
        scale = min(1.0, epoch / a.eps_warmup) if a.eps_warmup > 0 else 1.0
        return a.eps * scale, a.step_size * scale

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ---------------------------------------------------------------------------------------------
# dict <-> dataclass


def _field_types(cls: type) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in fields(cls)}


def _merge_into(obj: Any, updates: dict[str, Any], prefix: str = "") -> None:
    """Set dataclass fields from a nested dict, naming any unknown key."""
    known = _field_types(type(obj))
    for key, value in updates.items():
        dotted = f"{prefix}{key}"
        if key not in known:
            allowed = ", ".join(f"{prefix}{k}" for k in known)
            raise ConfigError(dotted, f"a known key ({allowed})", None)
        current = getattr(obj, key)
        if is_dataclass(current):
            if not isinstance(value, dict):
                raise ConfigError(dotted, "a mapping of sub-keys", value)
            _merge_into(current, value, prefix=f"{dotted}.")
        else:
            setattr(obj, key, value)


def _nest(dotted: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in dotted.items():
        parts = key.split(".")
        d = out
        for p in parts[:-1]:
            d = d.setdefault(p, {})
            if not isinstance(d, dict):
                raise ConfigError(key, "a key below a section, not below a value", None)
        d[parts[-1]] = value
    return out


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """`["attack.eps=0.1", "method=mail-at"]` -> nested dict; values parsed as YAML scalars."""
    flat: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise ConfigError("--set", "key=value", pair)
        key, raw = pair.split("=", 1)
        key = key.strip()
        if not key:
            raise ConfigError("--set", "key=value with a non-empty key", pair)
        try:
            flat[key] = yaml_load(raw) if raw.strip() != "" else None
        except yaml.YAMLError:
            flat[key] = raw
        if isinstance(flat[key], str) and flat[key].lower() in {"nan", "inf", "-inf", "+inf", ".nan"}:
            flat[key] = float(flat[key].lstrip("."))
    return _nest(flat)


def _deep_update(base: dict[str, Any], upd: dict[str, Any]) -> dict[str, Any]:
    for k, v in upd.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            _deep_update(base[k], v)
        else:
            base[k] = v
    return base


def build_config(
    preset: str | None = None,
    config_file: str | Path | None = None,
    overrides: list[str] | dict[str, Any] | None = None,
) -> Config:
    """Resolve defaults < method defaults < preset/file < overrides into a validated Config."""
    base: dict[str, Any] = {}
    if preset is not None:
        _deep_update(base, preset_dict(preset))
    if config_file is not None:
        file_data = read_yaml(Path(config_file), "--config")
        file_data.pop("description", None)
        _deep_update(base, file_data)
    if isinstance(overrides, dict):
        over = overrides
    else:
        over = parse_overrides(list(overrides or []))
    method = over.get("method", base.get("method", Config.method))
    if not isinstance(method, str):
        raise ConfigError("method", "a method name (see `irat methods`)", method)
    layered: dict[str, Any] = {}
    _deep_update(layered, method_defaults(method))
    if over.get("method") not in (None, base.get("method")):
        # a new method replaces every method-owned key the file may have set for its own method
        owned = method_defaults(base.get("method", Config.method))
        base = _strip_owned(base, owned)
    _deep_update(layered, base)
    _deep_update(layered, over)
    layered["method"] = method
    rw = layered.get("reweight") if isinstance(layered.get("reweight"), dict) else {}
    if "margin" in rw and "weighting" not in rw and rw["margin"] in MARGINS:
        rw["weighting"] = MARGINS[rw["margin"]].weighting  # e.g. a sweep over margins: lps takes gair
    objective = layered.get("objective", Config.objective)
    if rw.get("weighting") == "sigmoid" and objective in OBJECTIVES:
        # e.g. a sweep over objectives × margins (MAIL Table 1): each objective brings MAIL's γ, β
        for key, value in zip(("gamma", "beta"), OBJECTIVES[objective].sigmoid):
            rw.setdefault(key, value)
    if "tradeoff" not in layered and objective in OBJECTIVES:  # a custom method: the objective's own default
        layered["tradeoff"] = OBJECTIVES[objective].tradeoff
    cfg = Config()
    _merge_into(cfg, layered)
    validate(cfg)
    return cfg


def _strip_owned(d: dict[str, Any], owned: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        if k in owned and isinstance(v, dict) and isinstance(owned[k], dict):
            out[k] = _strip_owned(v, owned[k])
        elif k not in owned:
            out[k] = v
    return out


def config_from_dict(d: dict[str, Any]) -> Config:
    """Rebuild a Config saved with `to_dict()` (e.g. from a checkpoint); validated."""
    cfg = Config()
    _merge_into(cfg, d)
    validate(cfg)
    return cfg


def dump_yaml(cfg: Config) -> str:
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)


# ---------------------------------------------------------------------------------------------
# validation: every field once, with its allowed range


def _num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _check(cond: bool, field_name: str, allowed: str, got: Any) -> None:
    if not cond:
        raise ConfigError(field_name, allowed, got)


def _finite(v: Any) -> bool:
    return _num(v) and math.isfinite(float(v))


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def validate(cfg: Config) -> None:
    _check(cfg.method in METHODS or cfg.method == "custom", "method",
           f"one of: {', '.join(sorted(METHODS))}", cfg.method)
    _check(cfg.objective in OBJECTIVES, "objective", f"one of: {', '.join(OBJECTIVES)}", cfg.objective)
    _check(_finite(cfg.tradeoff) and cfg.tradeoff >= 0, "tradeoff", "a finite number >= 0", cfg.tradeoff)
    _check(_int(cfg.epochs) and cfg.epochs >= 1, "epochs", "an integer >= 1", cfg.epochs)
    _check(_int(cfg.batch_size) and cfg.batch_size >= 1, "batch_size", "an integer >= 1", cfg.batch_size)
    _check(_int(cfg.seed) and cfg.seed >= 0, "seed", "an integer >= 0", cfg.seed)
    _check(isinstance(cfg.device, str) and (cfg.device in ("auto", "cpu", "cuda") or cfg.device.startswith("cuda:")),
           "device", "auto, cpu, cuda or cuda:N", cfg.device)
    _check(_int(cfg.eval_every) and cfg.eval_every >= 0, "eval_every", "an integer >= 0", cfg.eval_every)
    _check(_int(cfg.checkpoint_every_steps) and cfg.checkpoint_every_steps >= 0, "checkpoint_every_steps",
           "an integer >= 0", cfg.checkpoint_every_steps)
    _check(isinstance(cfg.keep_epochs, list) and all(_int(e) and 1 <= e <= cfg.epochs for e in cfg.keep_epochs),
           "keep_epochs", f"a list of epochs in [1, epochs = {cfg.epochs}]", cfg.keep_epochs)
    _check(_int(cfg.keep_every) and cfg.keep_every >= 0, "keep_every", "an integer >= 0", cfg.keep_every)

    d = cfg.data
    _check(isinstance(d.name, str), "data.name", "a data set name", d.name)
    check_data_name(d.name)
    _check(isinstance(d.root, str) and d.root != "", "data.root", "a directory path", d.root)
    _check(d.train_subset is None or (_int(d.train_subset) and d.train_subset >= 1), "data.train_subset",
           "null or an integer >= 1", d.train_subset)
    _check(_int(d.val_size) and d.val_size >= 0, "data.val_size", "an integer >= 0", d.val_size)
    _check(d.augment is None or isinstance(d.augment, bool), "data.augment", "true, false or null", d.augment)
    _check(isinstance(d.on_device, bool), "data.on_device", "true or false", d.on_device)
    _check(d.extra is None or (isinstance(d.extra, str) and d.extra != ""), "data.extra", "null or an .npz path",
           d.extra)
    _check(_finite(d.extra_fraction) and 0 <= d.extra_fraction < 1, "data.extra_fraction", "a number in [0, 1)",
           d.extra_fraction)
    _check((d.extra is None) == (d.extra_fraction == 0), "data.extra_fraction",
           "> 0 exactly when data.extra names a file", d.extra_fraction)
    _check(d.extra is None or 1 <= round(d.extra_fraction * cfg.batch_size) < cfg.batch_size, "data.extra_fraction",
           f"a share of batch_size = {cfg.batch_size} that rounds to 1 … {cfg.batch_size - 1} images",
           d.extra_fraction)

    m = cfg.model
    _check(m.name in MODELS, "model.name", f"one of: {', '.join(sorted(MODELS))}", m.name)
    _check(isinstance(m.normalize, bool), "model.normalize", "true or false", m.normalize)
    for key in ("mean", "std"):
        v = getattr(m, key)
        _check(v is None or (isinstance(v, list) and all(_finite(x) for x in v)), f"model.{key}",
               "null or a list of numbers, one per channel", v)
    _check(m.std is None or all(x > 0 for x in m.std), "model.std", "positive numbers", m.std)
    _check(m.depth is None or (_int(m.depth) and m.depth >= 10), "model.depth",
           "null or an integer >= 10 (e.g. 28, 32, 34)", m.depth)
    _check(m.width is None or (_int(m.width) and m.width >= 1), "model.width", "null or an integer >= 1", m.width)
    _check(_finite(m.dropout) and 0 <= m.dropout < 1, "model.dropout", "a number in [0, 1)", m.dropout)
    architecture_keys(m.name, depth=m.depth, width=m.width, dropout=m.dropout)

    a = cfg.attack
    _check(_finite(a.eps) and a.eps >= 0, "attack.eps", "a finite number >= 0", a.eps)
    _check(_int(a.steps) and a.steps >= 1, "attack.steps", "an integer >= 1", a.steps)
    _check(_finite(a.step_size) and a.step_size > 0, "attack.step_size", "a finite number > 0", a.step_size)
    _check(a.start is None or a.start in STARTS, "attack.start", f"null or one of: {', '.join(STARTS)}", a.start)
    _check(_int(a.eps_warmup) and 0 <= a.eps_warmup <= cfg.epochs, "attack.eps_warmup",
           f"an integer in [0, epochs = {cfg.epochs}]", a.eps_warmup)
    _check(a.loss is None or a.loss in ATTACK_LOSSES, "attack.loss", f"null or one of: {', '.join(ATTACK_LOSSES)}",
           a.loss)

    o = cfg.optim
    _check(_finite(o.lr) and o.lr > 0, "optim.lr", "a finite number > 0", o.lr)
    _check(_finite(o.momentum) and 0 <= o.momentum < 1, "optim.momentum", "a number in [0, 1)", o.momentum)
    _check(_finite(o.weight_decay) and o.weight_decay >= 0, "optim.weight_decay", "a finite number >= 0",
           o.weight_decay)
    _check(isinstance(o.nesterov, bool), "optim.nesterov", "true or false", o.nesterov)
    _check(isinstance(o.milestones, list) and all(_int(x) and x >= 1 for x in o.milestones)
           and o.milestones == sorted(o.milestones), "optim.milestones",
           "an increasing list of epochs >= 1", o.milestones)
    _check(_finite(o.lr_gamma) and 0 < o.lr_gamma <= 1, "optim.lr_gamma", "a number in (0, 1]", o.lr_gamma)
    _check(o.schedule in SCHEDULES, "optim.schedule", f"one of: {', '.join(SCHEDULES)}", o.schedule)
    _check(_finite(o.onecycle_peak) and 0 < o.onecycle_peak <= 1, "optim.onecycle_peak", "a number in (0, 1]",
           o.onecycle_peak)
    _check(o.schedule == "onecycle" or o.onecycle_peak == OptimConfig.onecycle_peak, "optim.onecycle_peak",
           f"unset unless optim.schedule is onecycle (it is {o.schedule})", o.onecycle_peak)
    _check(o.schedule == "step" or o.lr_gamma == OptimConfig.lr_gamma, "optim.lr_gamma",
           f"unset unless optim.schedule is step (it is {o.schedule})", o.lr_gamma)

    r = cfg.reweight
    _check(r.margin in MARGINS, "reweight.margin", f"one of: {', '.join(MARGINS)}", r.margin)
    _check(r.weighting in WEIGHTINGS, "reweight.weighting", f"one of: {', '.join(WEIGHTINGS)}", r.weighting)
    _check((r.margin == "none") == (r.weighting == "none"), "reweight.weighting",
           "none exactly when reweight.margin is none", r.weighting)
    _check(r.weighting != "gair" or r.margin == "lps", "reweight.margin", "lps when reweight.weighting is gair",
           r.margin)
    _check(_finite(r.gamma) and r.gamma >= 0, "reweight.gamma", "a finite number >= 0", r.gamma)
    _check(_finite(r.beta), "reweight.beta", "a finite number", r.beta)
    _check(r.norm in NORMS, "reweight.norm", f"one of: {', '.join(NORMS)}", r.norm)
    _check(_finite(r.c) and r.c > 0, "reweight.c", "a finite number > 0", r.c)
    _check(r.from_epoch is None or (_int(r.from_epoch) and 1 <= r.from_epoch <= cfg.epochs + 1),
           "reweight.from_epoch", f"null or an integer in [1, epochs + 1 = {cfg.epochs + 1}]", r.from_epoch)
    _check(_finite(r.lam), "reweight.lam", "a finite number", r.lam)
    _check(r.gair_kind in GAIR_KINDS, "reweight.gair_kind", f"one of: {', '.join(GAIR_KINDS)}", r.gair_kind)
    _check(r.lps_mode in ("count", "first"), "reweight.lps_mode", "count or first", r.lps_mode)
    _check(r.margin_source in ("train", "eval"), "reweight.margin_source", "train or eval", r.margin_source)
    _check(r.exclude in EXCLUDE, "reweight.exclude", f"one of: {', '.join(EXCLUDE)}", r.exclude)

    w = cfg.awp
    _check(isinstance(w.enabled, bool), "awp.enabled", "true or false", w.enabled)
    _check(_finite(w.gamma) and w.gamma >= 0, "awp.gamma", "a finite number >= 0", w.gamma)
    _check(_int(w.warmup) and w.warmup >= 0, "awp.warmup", "an integer >= 0", w.warmup)
    _check(_finite(w.proxy_lr) and w.proxy_lr > 0, "awp.proxy_lr", "a finite number > 0", w.proxy_lr)
    awp_objectives = [name for name, spec in OBJECTIVES.items() if spec.awp]
    _check(not w.enabled or cfg.objective in awp_objectives, "awp.enabled",
           f"false unless objective is one of: {', '.join(awp_objectives)}", w.enabled)

    f = cfg.fat
    _check(isinstance(f.enabled, bool), "fat.enabled", "true or false", f.enabled)
    _check(_int(f.tau_max) and f.tau_max >= 0, "fat.tau_max", "an integer >= 0", f.tau_max)
    _check(f.tau_epochs is None or (isinstance(f.tau_epochs, list) and all(_int(x) and x >= 1 for x in f.tau_epochs)),
           "fat.tau_epochs", "null or a list of epochs >= 1", f.tau_epochs)

    e = cfg.ema
    _check(isinstance(e.enabled, bool), "ema.enabled", "true or false", e.enabled)
    _check(_finite(e.decay) and 0 <= e.decay < 1, "ema.decay", "a number in [0, 1)", e.decay)
    _check(_int(e.warmup) and e.warmup >= 0, "ema.warmup", "an integer >= 0 (optimizer updates)", e.warmup)

    s = cfg.fast
    for key in ("amp", "channels_last"):
        v = getattr(s, key)
        _check(v is None or isinstance(v, bool), f"fast.{key}", "true, false or null", v)
    _check(isinstance(s.amp_train, bool), "fast.amp_train", "true or false", s.amp_train)
    _check(isinstance(s.compile, bool), "fast.compile", "true or false", s.compile)
    _check(isinstance(s.cudnn_benchmark, bool), "fast.cudnn_benchmark", "true or false", s.cudnn_benchmark)

    _check(isinstance(cfg.log.tensorboard, bool), "log.tensorboard", "true or false", cfg.log.tensorboard)
