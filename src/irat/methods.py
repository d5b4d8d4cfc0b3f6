"""The methods registry: a method = objective × margin × weighting × attack settings (SPEC §3).

Each entry lists only the keys it owns; `build_config` layers them under the preset and `--set`.
"""
from __future__ import annotations

from typing import Any

from .errors import ConfigError
from .objectives import OBJECTIVES

_MAIL_AT = {"margin": "pm_adv", "weighting": "sigmoid", "gamma": 10.0, "beta": -0.5}
_MAIL_2_0 = {"margin": "pm_adv", "weighting": "sigmoid", "gamma": 2.0, "beta": 0.0}
_CLIR_AT = {"margin": "cl_pm", "weighting": "sigmoid", "gamma": 10.0, "beta": -0.5}
_CLIR_2_0 = {"margin": "cl_pm", "weighting": "sigmoid", "gamma": 2.0, "beta": 0.0}
_GAIR = {"margin": "lps", "weighting": "gair", "lam": -1.0, "gair_kind": "tanh"}
_NONE = {"margin": "none", "weighting": "none"}


def _m(objective: str, reweight: dict[str, Any], tradeoff: float | None = None, doc: str = "",
       **extra: Any) -> dict[str, Any]:
    d: dict[str, Any] = {"objective": objective, "reweight": dict(reweight),
                         "awp": {"enabled": False}, "fat": {"enabled": False}}
    d["tradeoff"] = tradeoff if tradeoff is not None else OBJECTIVES[objective].tradeoff
    for k, v in extra.items():
        d[k] = {**d.get(k, {}), **v} if isinstance(v, dict) else v
    d["_doc"] = doc
    return d


METHODS: dict[str, dict[str, Any]] = {
    "at": _m("at", _NONE, doc="PGD adversarial training (Madry et al.)"),
    "trades": _m("trades", _NONE, 6.0, doc="TRADES, β_t = 6"),
    "mart": _m("mart", _NONE, 6.0, doc="MART, λ_m = 6"),
    "fat": _m("at", _NONE, fat={"enabled": True}, doc="FAT: early-stopped PGD, τ 0→1→2"),
    "fat-trades": _m("trades", _NONE, 6.0, fat={"enabled": True}, doc="FAT on TRADES"),
    "fat-mart": _m("mart", _NONE, 6.0, fat={"enabled": True}, doc="FAT on MART"),
    "awp-at": _m("at", _NONE, awp={"enabled": True, "gamma": 0.01, "warmup": 0},
                 doc="AWP on AT, γ_awp = 0.01, from epoch 1 (as the reference code)"),
    "awp-trades": _m("trades", _NONE, 6.0, awp={"enabled": True, "gamma": 0.005, "warmup": 9},
                     doc="AWP on TRADES, γ_awp = 0.005, from epoch 10 (the reference code's --awp-warmup 10)"),
    "gairat": _m("at", _GAIR, doc="GAIRAT: AT weighted by κ (tanh, λ = −1)"),
    "gair-trades": _m("trades", _GAIR, 6.0, doc="GAIR-TRADES"),
    "gair-mart": _m("mart", _GAIR, 6.0, doc="GAIR-MART"),
    "mail-at": _m("at", _MAIL_AT, doc="MAIL-AT: PM_adv, sigmoid(γ=10, β=−0.5)"),
    "mail-trades": _m("trades", _MAIL_2_0, 5.0, doc="MAIL-TRADES: PM_adv, sigmoid(2, 0), β_t = 5"),
    "mail-mart": _m("mart", _MAIL_2_0, 6.0, doc="MAIL-MART: PM_adv, sigmoid(2, 0), λ_m = 6"),
    "clirat": _m("at", _CLIR_AT, doc="CLIRAT: CL-PM, sigmoid(10, −0.5)"),
    "clir-trades": _m("trades", _CLIR_2_0, 5.0, doc="CLIR-TRADES: CL-PM, sigmoid(2, 0), β_t = 5"),
    "clir-mart": _m("mart", _CLIR_2_0, 6.0, doc="CLIR-MART: CL-PM, sigmoid(2, 0), λ_m = 6"),
}


def method_defaults(name: str) -> dict[str, Any]:
    """The keys a method owns, as a nested dict ready to layer under the preset and overrides."""
    if name == "custom":
        return {}
    if name not in METHODS:
        raise ConfigError("method", f"one of: {', '.join(sorted(METHODS))}, custom", name)
    return {k: (dict(v) if isinstance(v, dict) else v) for k, v in METHODS[name].items() if not k.startswith("_")}


def describe(name: str) -> str:
    d = METHODS[name]
    r = d["reweight"]
    parts = [f"objective={d['objective']}"]
    if d["objective"] != "at":
        parts.append(f"tradeoff={d['tradeoff']:g}")
    if r["margin"] != "none":
        parts.append(f"margin={r['margin']}")
        if r["weighting"] == "sigmoid":
            parts.append(f"weighting=sigmoid(γ={r['gamma']:g}, β={r['beta']:g})")
        else:
            parts.append(f"weighting={r['weighting']}({r['gair_kind']}, λ={r['lam']:g})")
    if d["fat"].get("enabled"):
        parts.append("attack=early-stopped PGD (τ)")
    if d["awp"].get("enabled"):
        parts.append(f"awp(γ={d['awp']['gamma']:g})")
    return f"{', '.join(parts)}  — {d['_doc']}"
