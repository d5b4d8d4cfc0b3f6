"""What an evaluation is asked to do: the attacks by name, the protocol, and the checks of each value.

A protocol (`PROTOCOLS`) is only an ε and per-attack parameter overrides on top of `ATTACKS`, so
`default` and `mail-paper` share one code path. The `check_*` functions raise `ConfigError` naming
the field they are given: the CLI passes its flag (`--eps`), the library its argument (`eps`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Mapping, Sequence

from ..attacks.registry import ATTACKS
from ..errors import ConfigError

DEFAULT_ATTACKS = ("nat", "fgsm", "pgd20", "cw")


@dataclass(frozen=True)
class Protocol:
    """An evaluation protocol: a radius and parameter overrides on top of `ATTACKS`.

    eps None: the checkpoint's training ε. `limits[name] = N`: that attack runs on the first N examples.
    """

    name: str
    eps: float | None = None
    overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    limits: Mapping[str, int] = field(default_factory=dict)
    doc: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "eps": self.eps, "overrides": {k: dict(v) for k, v in self.overrides.items()},
                "limits": dict(self.limits), "doc": self.doc}


PROTOCOLS: dict[str, Protocol] = {
    "default": Protocol("default",
                        doc="SPEC §5: the training ε, α = ε/4, CW 30 steps, every attack on every example"),
    "mail-paper": Protocol(
        "mail-paper", eps=0.031,
        overrides={"pgd20": {"step_size": 0.003}, "pgd100": {"step_size": 0.003},
                   "cw": {"steps": 20, "step_size": 0.003}},
        limits={"aa": 1000},
        doc="the MAIL paper's own evaluation (its reference code): ε = 0.031, PGD/CW step 0.003, CW 20 steps, "
            "AutoAttack on the first 1,000 test images"),
}


# ---------------------------------------------------------------------------------------------
# values


def check_eps(eps: Any, field_name: str = "eps") -> float:
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not math.isfinite(eps) or eps < 0:
        raise ConfigError(field_name, "a finite number >= 0 (the L∞ radius in [0, 1] pixel units)", eps)
    return float(eps)


def check_positive_int(v: Any, field_name: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ConfigError(field_name, "an integer >= 1", v)
    return int(v)


def check_threshold(v: Any, field_name: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
        raise ConfigError(field_name, "a finite number >= 0 (percentage points)", v)
    return float(v)


# ---------------------------------------------------------------------------------------------
# names


def resolve_protocol(protocol: str | Protocol, limits: Mapping[str, int] | None = None,
                     field_name: str = "limits") -> Protocol:
    """The protocol by name, with per-attack example `limits` ({attack: N}) laid over its own."""
    if not isinstance(protocol, Protocol):
        if protocol not in PROTOCOLS:
            raise ConfigError("protocol", f"one of: {', '.join(PROTOCOLS)}", protocol)
        protocol = PROTOCOLS[protocol]
    if not limits:
        return protocol
    checked = {}
    for a, k in limits.items():
        if a not in ATTACKS or a == "nat":
            raise ConfigError(field_name, f"attack names from: {', '.join(x for x in ATTACKS if x != 'nat')}", a)
        checked[a] = check_positive_int(k, f"{field_name} ({a})")
    return replace(protocol, limits={**protocol.limits, **checked})


def parse_limits(items: Iterable[str] | None, field_name: str = "--limit") -> dict[str, int]:
    """`["aa=2000", "apgd-ce=5000"]` -> {"aa": 2000, "apgd-ce": 5000}: each attack on the first N examples."""
    out: dict[str, int] = {}
    for item in items or []:
        name, sep, raw = str(item).partition("=")
        name = name.strip()
        try:
            k = int(raw)
        except ValueError:
            k = 0
        if not sep or k < 1:
            raise ConfigError(field_name, "ATTACK=N with N an integer >= 1, e.g. aa=2000", item)
        if name in out:
            raise ConfigError(field_name, "each attack once", name)
        out[name] = k
    resolve_protocol("default", out, field_name)  # the attack names
    return out


def parse_attacks(attacks: str | Iterable[str] | None, field_name: str = "attacks") -> list[str]:
    """Attack names from a comma list or a sequence; `all` = every attack. Raises naming `field_name`."""
    if attacks is None:
        return list(DEFAULT_ATTACKS)
    items = [a.strip() for a in attacks.split(",")] if isinstance(attacks, str) else [str(a).strip() for a in attacks]
    items = [a for a in items if a]
    if not items:
        raise ConfigError(field_name, f"a comma list of: all, {', '.join(ATTACKS)}", ",".join(items))
    out: list[str] = []
    for a in items:
        names = list(ATTACKS) if a == "all" else [a]
        if a != "all" and a not in ATTACKS:
            raise ConfigError(field_name, f"a comma list of: all, {', '.join(ATTACKS)}", a)
        out += [n for n in names if n not in out]
    return out


# ---------------------------------------------------------------------------------------------
# the settings of one evaluation, checked once


@dataclass(frozen=True)
class EvalSettings:
    """What one evaluation runs: checked by `check_settings` at the library's entry, then passed as is.

    eps None: neither given nor the protocol's (`evaluate_checkpoint` takes the training ε)."""

    attacks: tuple[str, ...]
    protocol: Protocol
    eps: float | None
    n_examples: int | None
    batch_size: int
    seed: int
    cascade: bool
    masking_threshold: float
    zero_grad_threshold: float
    sanity_examples: int
    verbose: bool
    channels_last: bool


def check_settings(attacks: str | Sequence[str] | None, protocol: str | Protocol, limits: Mapping[str, int] | None,
                   eps: float | None, n_examples: int | None, batch_size: int, seed: int, cascade: bool,
                   masking_threshold: float, zero_grad_threshold: float, sanity_examples: int, verbose: bool,
                   channels_last: bool) -> EvalSettings:
    """The arguments of `evaluate` / `evaluate_checkpoint`, each checked (ConfigError naming it).

    eps: the given one, else the protocol's, else None."""
    names = parse_attacks(attacks)
    proto = resolve_protocol(protocol, limits)
    eps = eps if eps is not None else proto.eps
    return EvalSettings(
        attacks=tuple(names), protocol=proto, eps=None if eps is None else check_eps(eps),
        batch_size=check_positive_int(batch_size, "batch_size"),
        n_examples=None if n_examples is None else check_positive_int(n_examples, "n_examples"),
        sanity_examples=check_positive_int(sanity_examples, "sanity_examples"),
        masking_threshold=check_threshold(masking_threshold, "masking_threshold"),
        zero_grad_threshold=check_threshold(zero_grad_threshold, "zero_grad_threshold"),
        seed=seed, cascade=bool(cascade), verbose=bool(verbose), channels_last=bool(channels_last))


__all__ = ["DEFAULT_ATTACKS", "EvalSettings", "PROTOCOLS", "Protocol", "check_eps", "check_positive_int",
           "check_settings", "check_threshold", "parse_attacks", "parse_limits", "resolve_protocol"]
