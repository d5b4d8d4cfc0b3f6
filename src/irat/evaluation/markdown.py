"""The report of an evaluation as Markdown: the table, its provenance and the sanity checks."""
from __future__ import annotations

from typing import Any, Mapping


def format_eps(eps: float) -> str:
    """8/255 for multiples of 1/255, else the number (0.1, 0.031)."""
    k = eps * 255.0
    if eps > 0 and abs(k - round(k)) < 1e-6:
        return f"{int(round(k))}/255"
    return f"{eps:g}"


def describe_params(name: str, p: Mapping[str, Any]) -> str:
    """An attack's parameters in one line: PGD-like (steps), AutoAttack (version), else `key=value`."""
    if not p:
        return "clean inputs"
    if "steps" in p:
        rule = "" if p["step_rule"] == "absolute" else f" = {p['step_rule'].replace('*eps', 'ε').replace('eps', 'ε')}"
        steps = f"{p['steps']} step{'s' if p['steps'] != 1 else ''}"
        s = f"ε={format_eps(p['eps'])}, {steps}, α={p['step_size']:.4g}{rule}, {p['loss'].upper()} loss"
        if "kappa" in p:
            s += f" (κ={p['kappa']:g})"
        return s + f", start: {p['random_start']}"
    if "version" not in p:  # any other attack: its parameters as given
        items = [f"ε={format_eps(p['eps'])}"] if "eps" in p else []
        items += [f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in p.items() if k != "eps"]
        return ", ".join(items)
    s = f"ε={format_eps(p['eps'])}, {p['norm']}, version={p['version']}: {' + '.join(p.get('attacks', []))}"
    parts = []
    if "apgd" in p:
        parts.append(f"APGD {p['apgd']['n_iter']} it × {p['apgd']['n_restarts']} restart")
    if "apgd_t" in p:
        parts.append(f"APGD-T {p['apgd_t']['n_iter']} it × {p['apgd_t']['n_target_classes']} targets")
    if "fab" in p:
        parts.append(f"FAB {p['fab']['n_iter']} it × {p['fab']['n_target_classes']} targets")
    if "square" in p:
        parts.append(f"Square {p['square']['n_queries']} queries")
    return s + (f" ({'; '.join(parts)})" if parts else "")


def flag_lines(flags: Mapping[str, Any]) -> list[str]:
    """One line per sanity flag that fired (the report's warnings)."""
    out = []
    f = flags
    if f["input_range"]["flag"]:
        out.append(f"inputs outside [0, 1]: min {f['input_range']['min']:.4g}, max {f['input_range']['max']:.4g}")
    if f["eps_zero"]["flag"]:
        out.append(f"PGD with ε = 0 gives {f['eps_zero']['pgd_eps0_accuracy']:.2f}% but natural accuracy is "
                   f"{f['eps_zero']['nat_accuracy']:.2f}% (first {f['eps_zero']['n_examples']} examples)")
    for p in f["more_steps_stronger"]["pairs"]:
        if p["flag"]:
            out.append(f"more steps, higher accuracy: {p['more']} {p['accuracy_more']:.2f}% > {p['fewer']} "
                       f"{p['accuracy_fewer']:.2f}% + noise {p['noise_margin']:.2f}")
    gm = f["gradient_masking"]
    if gm["flag"]:
        out.append(f"possible gradient masking: {gm['pgd']} {gm['pgd_accuracy']:.2f}% vs worst case "
                   f"{gm['worst']:.2f}% (gap {gm['gap']:.2f} > {max(gm['threshold'], gm['noise_margin']):.2f} "
                   "points: threshold and noise margin)")
    zg = f["zero_gradients"]
    if zg["flag"]:
        out.append(f"zero input gradients on {zg['share']:.1f}% of inputs (> {zg['threshold']:g}%): "
                   "gradient-based attacks are blind there")
    for a, msgs in f.get("autoattack_checks", {}).get("warnings", {}).items():
        out += [f"{a} (AutoAttack's own check): {m}" for m in msgs]
    if f["perturbation_bound"]["flag"]:
        out.append(f"adversarial inputs leave the ε-ball or [0, 1]: max L∞ {f['perturbation_bound']['max_linf']}")
    return out


def format_markdown(report: Mapping[str, Any]) -> str:
    """The report as a Markdown table plus its provenance and sanity checks."""
    lines = []
    ck = report.get("checkpoint")
    title = f"# Robustness evaluation: {ck['path']}" if ck else "# Robustness evaluation"
    lines += [title, ""]
    if ck:
        lines.append(f"- checkpoint: epoch {ck.get('epoch')}, sha256 `{ck.get('sha256', '')[:16]}…`"
                     + (f", method {report['method']}" if report.get("method") else ""))
    d = report["data"]
    lines.append(f"- data: {d['name']} ({d['split']}), {d['selection']} of {d['n_available']}")
    pr = report["protocol"]
    lines.append(f"- protocol: {pr['name']} — {pr['doc']}")
    source = f" (from {report['eps_source']})" if report.get("eps_source") else ""
    lines.append(f"- threat model: L∞, ε = {format_eps(report['eps'])}{source}; seed {report['seed']}")
    lines += ["", "| attack | accuracy (%) | examples | mode | parameters |", "|---|---:|---:|---|---|"]
    for a in report["order"]:
        m = report["attacks"][a]
        ex = f"{m['n_attacked']}/{m['n_examples']}" if a != "nat" else f"{m['n_examples']}"
        params = {k: v for k, v in m.items() if k not in ("mode", "n_examples", "n_attacked", "robust", "accuracy",
                                                            "seconds", "doc", "implementation")}
        lines.append(f"| {a} | {m['accuracy']:.2f} | {ex} | {m['mode']} | {describe_params(a, params)} |")
    w = report["worst"]
    lines.append(f"| **worst** | **{w['accuracy']:.2f}** | {w['n_examples']} | per-example | "
                 f"robust only if every attack failed ({', '.join(w['over'])}) |")
    if "common_subset" in w:
        cs = w["common_subset"]
        lines.append(f"| worst (first {cs['n_examples']}) | {cs['accuracy']:.2f} | {cs['n_examples']} | per-example | "
                     "every attack ran on these |")
    lines += ["", "Examples: attacked / counted; natural errors are not attacked and count as broken."]
    if report["cascade"]["attacks"]:
        lines.append("Cascaded attacks ran only on examples that no earlier attack broke, so their accuracy "
                     "includes every attack before them (a lower bound of the standalone number).")
    if "aa" not in report["order"]:
        lines.append("AutoAttack was not run; `--attacks all` runs the full suite.")
    warn = flag_lines(report["flags"])
    lines += ["", "## Sanity checks", ""]
    lines += [f"- **WARNING** {w_}" for w_ in warn] if warn else ["- all passed (eval mode, input range, ε = 0, "
                                                                   "steps, gradient masking, zero gradients, ε-ball)"]
    return "\n".join(lines) + "\n"


__all__ = ["describe_params", "flag_lines", "format_eps", "format_markdown"]
