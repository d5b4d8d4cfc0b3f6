"""Adapter to the official AutoAttack code (PyPI `pyautoattack`, import name `pyautoattack`).

Every setting that decides the number is passed explicitly (ε, norm, version, seed, device,
iterations, restarts), never the package's defaults: its default ε is 0.3, and its "custom"
version keeps APGD at 5 restarts. SPEC §5:

- `apgd-ce`: version="custom", attacks=["apgd-ce"], 100 iterations, 1 restart;
- `aa`: version="standard" (APGD-CE, APGD-T, FAB-T, Square) with the package's standard settings.

The package logs through the `auto-attack` logger and APGD prints when verbose; both are silenced
unless `verbose=True`.
"""
from __future__ import annotations

import contextlib
import io
import logging
import sys
from typing import Any, Iterator

import torch
from torch import Tensor, nn

from .pgd import eval_mode
from ..errors import IratError

NORMS = ("Linf", "L2", "L1")
VERSIONS = ("standard", "custom", "plus", "rand")
AA_ATTACKS = ("apgd-ce", "apgd-dlr", "apgd-t", "fab", "fab-t", "square")
STANDARD_ATTACKS = ("apgd-ce", "apgd-t", "fab-t", "square")  # version="standard"
DLR_MIN_CLASSES = {"apgd-dlr": 3, "apgd-t": 4}  # the DLR loss reads the 3 / 4 largest logits
LOGGER = "auto-attack"


def _autoattack_class():
    try:
        from pyautoattack import AutoAttack
    except ImportError as e:  # pragma: no cover - a dependency of the package
        raise IratError("--attacks: apgd-ce/aa need the official AutoAttack code (pip install pyautoattack)") from e
    return AutoAttack


class _Collect(logging.Handler):
    def __init__(self, out: list[str]):
        super().__init__(logging.WARNING)
        self.out = out

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.getMessage()
        if msg not in self.out:
            self.out.append(msg)


@contextlib.contextmanager
def _logging(verbose: bool, warnings_out: list[str] | None) -> Iterator[None]:
    """The package's warnings go to `warnings_out`; its log and prints are shown only when verbose."""
    logger = logging.getLogger(LOGGER)
    old = (logger.level, logger.propagate)
    handlers: list[logging.Handler] = []
    if warnings_out is not None:
        handlers.append(_Collect(warnings_out))
    if verbose:
        shown = logging.StreamHandler(sys.stderr)
        shown.setFormatter(logging.Formatter("[autoattack] %(message)s"))
        handlers.append(shown)
    for h in handlers:
        logger.addHandler(h)
    logger.setLevel(logging.DEBUG if verbose else logging.WARNING)
    logger.propagate = False
    try:
        with contextlib.redirect_stdout(sys.stdout if verbose else io.StringIO()):
            yield
    finally:
        for h in handlers:
            logger.removeHandler(h)
        logger.setLevel(old[0])
        logger.propagate = old[1]


def build_autoattack(model: nn.Module, *, eps: float, norm: str = "Linf", version: str = "standard",
                     attacks: list[str] | None = None, n_iter: int | None = None, n_restarts: int | None = None,
                     seed: int = 0, device: torch.device | str = "cpu", num_classes: int | None = None):
    """An `AutoAttack` object with every setting explicit.

    version="standard" takes the package's standard attack list and settings (n_iter / n_restarts
    must be None); version="custom" needs `attacks`, and n_iter / n_restarts set APGD's iterations
    and restarts. With fewer than 10 classes the targeted attacks use K − 1 target classes.
    """
    if norm not in NORMS:
        raise ValueError(f"norm: must be one of {', '.join(NORMS)} (got {norm!r})")
    if version not in VERSIONS:
        raise ValueError(f"version: must be one of {', '.join(VERSIONS)} (got {version!r})")
    if not (eps >= 0 and eps == eps):
        raise ValueError(f"eps: must be a number >= 0 (got {eps!r})")
    AutoAttack = _autoattack_class()
    kwargs: dict[str, Any] = dict(norm=norm, eps=float(eps), version=version, device=device, seed=int(seed))
    if version == "custom":
        if not attacks:
            raise ValueError("attacks: version='custom' needs a list of AutoAttack attacks")
        bad = [a for a in attacks if a not in AA_ATTACKS]
        if bad:
            raise ValueError(f"attacks: must be among {', '.join(AA_ATTACKS)} (got {bad})")
        kwargs["attacks"] = list(attacks)
    elif attacks is not None or n_iter is not None or n_restarts is not None:
        raise ValueError(f"attacks, n_iter, n_restarts: only with version='custom' (got version={version!r})")
    if num_classes is not None:
        # DLR reads the 3 (untargeted) or 4 (targeted) largest logits: the package fails on fewer classes
        run = kwargs.get("attacks") or (STANDARD_ATTACKS if version == "standard" else ())
        need = max([DLR_MIN_CLASSES.get(a, 2) for a in run] or [2])
        if num_classes < need:
            raise IratError(f"--attacks: AutoAttack's {', '.join(a for a in run if a in DLR_MIN_CLASSES)} need at "
                            f"least {need} classes (the DLR loss reads the largest logits); the model has "
                            f"{num_classes}: use apgd-ce, pgd20, pgd100 or cw")
    aa = AutoAttack(model, **kwargs)
    aa.verbose = False
    if version == "custom":
        if n_iter is not None:
            for a in (aa.apgd, aa.apgd_targeted):
                _set_iterations(a, int(n_iter))
        if n_restarts is not None:
            aa.apgd.n_restarts = int(n_restarts)
    if num_classes is not None and num_classes < 10:
        aa.apgd_targeted.n_target_classes = max(num_classes - 1, 1)
        aa.fab.n_target_classes = max(num_classes - 1, 1)
    return aa


def _set_iterations(attack: Any, n_iter: int) -> None:
    """APGD derives its checkpoint schedule from n_iter in __init__; recompute it with the new value."""
    attack.n_iter = n_iter
    attack.n_iter_orig = n_iter
    attack.n_iter_2 = max(int(0.22 * n_iter), 1)
    attack.n_iter_min = max(int(0.06 * n_iter), 1)
    attack.size_decr = max(int(0.03 * n_iter), 1)


def autoattack_settings(aa: Any) -> dict[str, Any]:
    """The settings the AutoAttack object will actually run with (for the report)."""
    run = list(aa.attacks_to_run or [])
    out: dict[str, Any] = {"eps": float(aa.epsilon), "norm": aa.norm, "version": aa.version, "attacks": run}
    if any(a in run for a in ("apgd-ce", "apgd-dlr")):
        out["apgd"] = {"n_iter": int(aa.apgd.n_iter), "n_restarts": int(aa.apgd.n_restarts), "rho": aa.apgd.thr_decr}
    if "apgd-t" in run:
        out["apgd_t"] = {"n_iter": int(aa.apgd_targeted.n_iter), "n_restarts": int(aa.apgd_targeted.n_restarts),
                         "n_target_classes": int(aa.apgd_targeted.n_target_classes)}
    if any(a in run for a in ("fab", "fab-t")):
        out["fab"] = {"n_iter": int(aa.fab.n_iter), "n_restarts": int(aa.fab.n_restarts),
                      "n_target_classes": int(aa.fab.n_target_classes)}
    if "square" in run:
        out["square"] = {"n_queries": int(aa.square.n_queries), "p_init": aa.square.p_init}
    return out


def autoattack(model: nn.Module, x: Tensor, labels: Tensor, eps: float, *, version: str = "standard",
               attacks: list[str] | None = None, n_iter: int | None = None, n_restarts: int | None = None,
               norm: str = "Linf", seed: int = 0, batch_size: int = 256, verbose: bool = False,
               num_classes: int | None = None, warnings_out: list[str] | None = None) -> Tensor:
    """Adversarial inputs from the official AutoAttack: x̃ for examples it broke, x for the rest.

    Runs in batches of `batch_size`, with the model in eval mode (restored afterwards). The package's
    own warnings (randomized or dynamic defense, zero gradients, Square stronger than the gradient
    attacks) are appended to `warnings_out`.
    """
    if x.shape[0] == 0:
        return x.clone()
    # the package reseeds the global RNG (APGD) and clears sys.settrace (its dynamic-defense check):
    # both are restored, so evaluating does not change the caller's random stream or tracer
    rng_devices = [x.device.index or 0] if x.device.type == "cuda" else []
    tracer = sys.gettrace()
    try:
        with eval_mode(model), _logging(verbose, warnings_out), torch.random.fork_rng(devices=rng_devices):
            aa = build_autoattack(model, eps=eps, norm=norm, version=version, attacks=attacks, n_iter=n_iter,
                                  n_restarts=n_restarts, seed=seed, device=x.device, num_classes=num_classes)
            aa.verbose = verbose
            x_adv, _ = aa.run_standard_evaluation(x.detach(), labels.detach(), batch_size=int(batch_size))
    finally:
        sys.settrace(tracer)
    return x_adv.detach()


def autoattack_robust(model: nn.Module, x: Tensor, labels: Tensor, eps: float, **kwargs: Any) -> Tensor:
    """Per-example bool: still correctly classified after `autoattack(...)`."""
    x_adv = autoattack(model, x, labels, eps, **kwargs)
    with torch.no_grad(), eval_mode(model):
        return model(x_adv).argmax(dim=1) == labels


__all__ = ["AA_ATTACKS", "NORMS", "VERSIONS", "autoattack", "autoattack_robust", "autoattack_settings",
           "build_autoattack"]
