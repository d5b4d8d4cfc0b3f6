"""The evaluation attacks by name (SPEC §5): one registry entry each, no switch on a kind.

An attack is a plain callable `(model, x, y, eps, generator, **params) -> x_adv` with its
parameters in `defaults`; `describe(eps, params, num_classes)` gives the concrete parameters the
report prints (what runs, e.g. a PGD step size of ε/4 as a number). A protocol overrides `params`
per attack. Adding an attack is one function plus one line in `ATTACKS`.

PGD step sizes are `rel_step`·ε unless an absolute `step_size` is set (e.g. by a protocol).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import torch
from torch import Tensor, nn

from . import autoattack as _aa  # the module, read at call time: tests may replace its `autoattack`
from .pgd import pgd

AttackFn = Callable[..., Tensor]  # (model, x, y, eps, generator, **params) -> x_adv
DescribeFn = Callable[..., dict[str, Any]]  # (eps, params, num_classes) -> what the report prints


def plain_params(eps: float, params: Mapping[str, Any], num_classes: int | None = None) -> dict[str, Any]:
    """The default description: ε and the attack's parameters as given."""
    return {"eps": float(eps), **params}


@dataclass(frozen=True)
class AttackSpec:
    """One evaluation attack: its function, its parameters, and how the evaluation schedules it.

    expensive: in a cascade it runs only on the examples no earlier attack broke.
    family: attacks of one family differ only in their number of steps, so more steps must not be
    weaker (a sanity check). takes: options of the evaluation itself that the attack receives as
    keywords too (`seed`, `verbose`, `num_classes`, `warnings_out`).
    """

    name: str
    attack: AttackFn
    defaults: Mapping[str, Any] = field(default_factory=dict)
    describe: DescribeFn = plain_params
    expensive: bool = False
    family: str | None = None
    takes: tuple[str, ...] = ()
    doc: str = ""

    @property
    def reports_checks(self) -> bool:
        """Whether the attack reports its package's own sanity checks (`warnings_out`)."""
        return "warnings_out" in self.takes

    def params(self, eps: float, overrides: Mapping[str, Any] | None = None,
               num_classes: int | None = None) -> dict[str, Any]:
        """The concrete parameters at radius ε with a protocol's `overrides` (what the report prints)."""
        return self.describe(eps, {**self.defaults, **(overrides or {})}, num_classes)

    def run(self, model: nn.Module, x: Tensor, y: Tensor, eps: float, generator: torch.Generator | None = None,
            *, overrides: Mapping[str, Any] | None = None, **options: Any) -> Tensor:
        """Adversarial inputs x̃ for (x, y) at radius ε; `options` holds the evaluation's own
        settings, of which the attack receives those it `takes`."""
        taken = {k: options[k] for k in self.takes if k in options}
        return self.attack(model, x, y, eps, generator, **{**self.defaults, **(overrides or {})}, **taken)


# ---------------------------------------------------------------------------------------------
# natural accuracy


def natural(model: nn.Module, x: Tensor, y: Tensor, eps: float, generator: torch.Generator | None) -> Tensor:
    """The clean inputs."""
    return x


def no_params(eps: float, params: Mapping[str, Any], num_classes: int | None = None) -> dict[str, Any]:
    return {}


# ---------------------------------------------------------------------------------------------
# PGD, FGSM, CW∞


def _step_size(eps: float, rel_step: float, step_size: float | None) -> float:
    return float(step_size) if step_size is not None else float(rel_step) * float(eps)


def pgd_attack(model: nn.Module, x: Tensor, y: Tensor, eps: float, generator: torch.Generator | None, *,
               steps: int, rel_step: float, step_size: float | None, loss: str, start: str,
               kappa: float) -> Tensor:
    """L∞ PGD (`attacks.pgd`) with step α = `step_size`, else `rel_step`·ε; the uniform start is
    drawn from `generator`."""
    noise = None
    if start == "uniform" and generator is not None:
        noise = torch.rand(x.shape, generator=generator, device=x.device).mul_(2).sub_(1)
    return pgd(model, x, y, eps, int(steps), _step_size(eps, rel_step, step_size), loss=loss, start=start,
               noise=noise, cw_kappa=float(kappa)).x_adv


def pgd_params(eps: float, p: Mapping[str, Any], num_classes: int | None = None) -> dict[str, Any]:
    absolute = p.get("step_size") is not None
    out = {"eps": float(eps), "norm": "Linf", "steps": int(p["steps"]),
           "step_size": _step_size(eps, p["rel_step"], p.get("step_size")),
           "step_rule": "absolute" if absolute else _relative_rule(float(p["rel_step"])),
           "loss": p["loss"], "random_start": p["start"]}
    if p["loss"] == "cw":
        out["kappa"] = float(p["kappa"])
    return out


def _relative_rule(rel: float) -> str:
    """0.25 -> "eps/4", 1 -> "eps", 0.3 -> "0.3*eps"."""
    if rel == 1.0:
        return "eps"
    inv = 1.0 / rel if rel > 0 else 0.0
    return f"eps/{int(round(inv))}" if rel > 0 and abs(inv - round(inv)) < 1e-9 else f"{rel:g}*eps"


def _pgd(name: str, steps: int, doc: str, loss: str = "ce", rel_step: float = 0.25, start: str = "uniform",
         family: str | None = None) -> AttackSpec:
    return AttackSpec(name, pgd_attack, {"steps": steps, "rel_step": rel_step, "step_size": None, "loss": loss,
                                         "start": start, "kappa": 50.0}, pgd_params, family=family, doc=doc)


# ---------------------------------------------------------------------------------------------
# the official AutoAttack (pyautoattack)


def autoattack_attack(model: nn.Module, x: Tensor, y: Tensor, eps: float, generator: torch.Generator | None, *,
                      norm: str, version: str, attacks: list[str] | None = None, n_iter: int | None = None,
                      n_restarts: int | None = None, seed: int = 0, verbose: bool = False,
                      num_classes: int | None = None, warnings_out: list[str] | None = None) -> Tensor:
    """The official AutoAttack on the batch, seeded with the evaluation's seed (not `generator`);
    the package's own warnings go to `warnings_out`."""
    return _aa.autoattack(model, x, y, float(eps), version=version, attacks=attacks, n_iter=n_iter,
                          n_restarts=n_restarts, norm=norm, seed=seed, batch_size=max(int(x.shape[0]), 1),
                          verbose=verbose, num_classes=num_classes, warnings_out=warnings_out)


def autoattack_params(eps: float, p: Mapping[str, Any], num_classes: int | None = None) -> dict[str, Any]:
    """Read back from the package's attack objects as configured, so the report shows what runs
    (iterations, restarts, target classes, Square queries)."""
    aa = _aa.build_autoattack(nn.Identity(), eps=float(eps), norm=p["norm"], version=p["version"],
                              attacks=p.get("attacks"), n_iter=p.get("n_iter"), n_restarts=p.get("n_restarts"),
                              num_classes=num_classes)
    out = _aa.autoattack_settings(aa)
    if p.get("n_iter") is not None:
        out["n_iter"] = int(p["n_iter"])
    if p.get("n_restarts") is not None:
        out["n_restarts"] = int(p["n_restarts"])
    out["implementation"] = "pyautoattack (official AutoAttack code)"
    return out


def _autoattack(name: str, defaults: Mapping[str, Any], doc: str) -> AttackSpec:
    return AttackSpec(name, autoattack_attack, {"norm": "Linf", **defaults}, autoattack_params, expensive=True,
                      takes=("seed", "verbose", "num_classes", "warnings_out"), doc=doc)


# ---------------------------------------------------------------------------------------------
# the registry


ATTACKS: dict[str, AttackSpec] = {
    "nat": AttackSpec("nat", natural, describe=no_params, doc="natural (clean) accuracy"),
    "fgsm": _pgd("fgsm", 1, "FGSM: one step of size ε, no random start", rel_step=1.0, start="none",
                 family="pgd-ce"),
    "pgd20": _pgd("pgd20", 20, "PGD-20 on CE, α = ε/4, uniform random start", family="pgd-ce"),
    "pgd100": _pgd("pgd100", 100, "PGD-100 on CE, α = ε/4, uniform random start", family="pgd-ce"),
    "cw": _pgd("cw", 30, "CW∞: PGD-30 on the CW margin loss max(z_y − max_{j≠y} z_j, −κ), κ = 50, α = ε/4",
               loss="cw"),
    "apgd-ce": _autoattack("apgd-ce", {"version": "custom", "attacks": ["apgd-ce"], "n_iter": 100, "n_restarts": 1},
                           "official APGD-CE (pyautoattack), 100 iterations, 1 restart"),
    "aa": _autoattack("aa", {"version": "standard"},
                      "official AutoAttack, version 'standard' (APGD-CE, APGD-T, FAB-T, Square)"),
}

__all__ = ["ATTACKS", "AttackFn", "AttackSpec", "autoattack_attack", "autoattack_params", "natural", "no_params",
           "pgd_attack", "pgd_params", "plain_params"]
