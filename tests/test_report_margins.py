"""`irat report` on a sweep over objective × margin (MAIL Table 1): the paper's layout — objectives as column
groups, margins as columns, attacks as rows — with means, standard deviations and per-seed differences
equal to the ones computed here by hand, in Markdown and in LaTeX; reports of other sweeps get none."""
from __future__ import annotations

import json
import math
from pathlib import Path

import yaml

from irat.config import build_config
from irat.report import build_report

OBJECTIVES = ("at", "trades", "mart")
MARGINS = ("lps", "pm_nat", "pm_adv")
SEEDS = (1, 2)


def _acc(oi: int, mi: int, seed: int) -> dict[str, float]:
    """Made-up accuracies; under MART, PM_nat beats PM_adv in AA, elsewhere PM_adv is best."""
    aa = 30.0 + 2 * oi + 3 * mi + 0.75 * seed - (4.0 if (oi, mi) == (2, 2) else 0.0)
    return {"nat": 70.0 + oi - mi + 1.5 * seed, "pgd20": 40.0 + oi + mi + seed * seed, "aa": aa}


def _run(d: Path, objective: str, margin: str, seed: int, acc: dict[str, float], gamma: float = 0.0) -> None:
    """A cell as `irat sweep --methods custom --grid objective=… --grid reweight.margin=…` leaves it."""
    d.mkdir(parents=True)
    cfg = build_config("fmnist-smallcnn-at", overrides=["method=custom", f"objective={objective}",
                                                        f"reweight.margin={margin}", f"seed={seed}"]
                       + ([f"reweight.gamma={gamma}"] if gamma else [])).to_dict()
    (d / "config.yaml").write_text(yaml.safe_dump(cfg))
    attacks = {a: {"eps": 0.1, "n_examples": 1000} for a in acc}
    (d / "eval.json").write_text(json.dumps({"accuracy": acc, "attacks": attacks, "data": {"num_classes": 10},
                                             "checkpoint": {"path": "checkpoints/last.pt", "epoch": 10}}))


def _grid(root: Path) -> None:
    for oi, o in enumerate(OBJECTIVES):
        for mi, m in enumerate(MARGINS):
            for s in SEEDS:
                _run(root / "custom" / f"objective={o}" / f"reweight.margin={m}" / f"seed{s}", o, m, s, _acc(oi, mi, s))


def _pm(a: float, b: float) -> str:
    return f"{(a + b) / 2:.2f} ± {abs(a - b) / math.sqrt(2):.2f}"


def test_table1_layout_equals_hand_computed_means(tmp_path: Path) -> None:
    _grid(tmp_path / "runs")
    res = build_report([tmp_path / "runs"], tmp_path / "out" / "r.md", analysis_examples=0)
    md = res.markdown.read_text()
    assert "### By objective and margin (MAIL Table 1)" in md
    table = md.split("### By objective and margin (MAIL Table 1)")[1].split("\n\n")[2].splitlines()
    # the paper's column order: AT, MART, TRADES; LPS, PM_nat, PM_adv within each
    order = [(o, m) for o in ("at", "mart", "trades") for m in MARGINS]
    names = {"at": "AT", "mart": "MART", "trades": "TRADES", "lps": "LPS", "pm_nat": "PM_nat", "pm_adv": "PM_adv"}
    assert table[0] == "| accuracy (%) | " + " | ".join(f"{names[o]} · {names[m]}" for o, m in order) + " |"
    assert table[2] == "| seeds | " + " | ".join(["2"] * 9) + " |"
    rows = {line.split(" | ")[0].strip("| "): [c.strip(" |") for c in line.split(" | ")[1:]] for line in table[3:]}
    assert list(rows) == ["NAT", "PGD-20", "AA"]
    for a, title in (("nat", "NAT"), ("pgd20", "PGD-20"), ("aa", "AA")):
        for i, (o, m) in enumerate(order):
            oi, mi = OBJECTIVES.index(o), MARGINS.index(m)
            vals = [_acc(oi, mi, s)[a] for s in SEEDS]
            means = [sum(_acc(oi, k, s)[a] for s in SEEDS) for k in range(3)]
            bold = means[mi] == max(means)
            assert rows[title][i] == (f"**{_pm(*vals)}**" if bold else _pm(*vals)), (a, o, m)
    # MART's AA: PM_nat is the best margin there, PM_adv elsewhere
    assert rows["AA"][order.index(("mart", "pm_nat"))].startswith("**")
    assert rows["AA"][order.index(("at", "pm_adv"))].startswith("**")
    # paired by seed: margin − LPS under the same objective
    paired = md.split("### By objective and margin (MAIL Table 1)")[1].split("\n\n")[3].splitlines()
    assert paired[0] == "| objective | margin − LPS | seeds | NAT | PGD-20 | AA |"
    for line in paired[2:]:
        o, m, seeds, *cells = [c.strip() for c in line.strip("|").split("|")]
        oi = [names[x] for x in OBJECTIVES].index(o)
        mi = [names[x] for x in MARGINS].index(m)
        assert seeds == "1,2" and mi > 0
        for a, cell in zip(("nat", "pgd20", "aa"), cells):
            d = [_acc(oi, mi, s)[a] - _acc(oi, 0, s)[a] for s in SEEDS]
            assert cell == f"{(d[0] + d[1]) / 2:+.2f} ± {abs(d[0] - d[1]) / math.sqrt(2):.2f}"
    assert len(paired) == 2 + 6
    # LaTeX: \multicolumn groups over the margins, bold best per objective
    tex = res.margins_latex.read_text()
    assert res.margins_latex.name == "r_margins.tex"
    assert r"\multicolumn{3}{c}{AT} & \multicolumn{3}{c}{MART} & \multicolumn{3}{c}{TRADES}" in tex
    assert r"\cmidrule(lr){2-4} \cmidrule(lr){5-7} \cmidrule(lr){8-10}" in tex
    assert r"LPS & PM$_\mathrm{nat}$ & PM$_\mathrm{adv}$" in tex
    aa = next(line for line in tex.splitlines() if line.startswith("AA &"))
    assert aa.count(r"\mathbf") == 3


def test_no_table1_without_a_margin_sweep_or_with_two_cells_in_one(tmp_path: Path) -> None:
    _grid(tmp_path / "grid")
    for s in SEEDS:  # a second γ for one cell: two groups for (AT, PM_adv), so no single table
        _run(tmp_path / "grid" / "custom" / "gamma" / f"seed{s}", "at", "pm_adv", s, _acc(0, 2, s), gamma=5.0)
    res = build_report([tmp_path / "grid"], tmp_path / "a.md", analysis_examples=0)
    assert res.margin_tables == [] and res.margins_latex is None
    assert "MAIL Table 1" not in res.markdown.read_text()
    only_at = tmp_path / "at"  # one margin per objective: no table either
    for s in SEEDS:
        _run(only_at / "c" / f"seed{s}", "at", "pm_adv", s, _acc(0, 2, s))
        _run(only_at / "d" / f"seed{s}", "trades", "pm_adv", s, _acc(1, 2, s))
    res = build_report([only_at], tmp_path / "b.md", analysis_examples=0)
    assert res.margin_tables == [] and not (tmp_path / "b_margins.tex").exists()


def test_a_seed_stuck_before_reweighting_is_left_out_of_the_paired_differences(tmp_path: Path) -> None:
    """Seed 3 is at the constant classifier when reweighting starts (epoch 11; its last epoch before: training
    accuracy ≈ 10 %, loss ≈ ln 10): its pairs carry a zero difference, not an effect, so the paired table
    and the margin table leave it out and say so; the long table keeps it. A run that was at the constant
    classifier early (flagged at epoch 2) and left it before epoch 11 is not stuck."""
    _grid(tmp_path / "runs")
    for oi, o in enumerate(OBJECTIVES):
        for m in MARGINS:
            d = tmp_path / "runs" / "custom" / f"objective={o}" / f"reweight.margin={m}" / "seed3"
            _run(d, o, m, 3, {"nat": 10.0, "pgd20": 10.0, "aa": 10.0})
            (d / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "train_acc": 10.1, "loss": 2.30}) + "\n"
                                             + json.dumps({"epoch": 2, "train_acc": 9.9, "loss": 2.30, "stuck": True})
                                             + "\n" + json.dumps({"epoch": 10, "train_acc": 11.9, "loss": 2.29}) + "\n")
        d = tmp_path / "runs" / "custom" / f"objective={o}" / "reweight.margin=lps" / "seed1"  # early only: learns
        (d / "metrics.jsonl").write_text(json.dumps({"epoch": 2, "train_acc": 9.9, "loss": 2.30, "stuck": True})
                                         + "\n" + json.dumps({"epoch": 10, "train_acc": 40.0, "loss": 1.5}) + "\n")
    res = build_report([tmp_path / "runs"], tmp_path / "r.md", analysis_examples=0)
    (t,) = res.margin_tables
    seeds, cells, stuck = t.paired["at", "pm_adv"]
    assert (seeds, stuck) == ([1, 2], [3])
    assert cells["aa"][:2] == (6.0, 0.0)  # the two learning seeds' differences only, not (6 + 6 + 0) / 3
    # the margin table compares the runs that trained; the long table keeps every run
    assert t.cells["at", "pm_adv"].n == 2 and t.stuck["at", "pm_adv"] == 1
    assert t.cells["at", "pm_adv"].cells["aa"][0] == (_acc(0, 2, 1)["aa"] + _acc(0, 2, 2)["aa"]) / 2
    long_row = next(r for r in res.rows if r.group.setting("objective") == "at"
                    and r.group.setting("reweight.margin") == "pm_adv")
    assert long_row.n == 3 and long_row.cells["aa"][2] == 3
    md = res.markdown.read_text()
    assert "| AT | PM_adv | 1,2 (3 stuck, left out) | " in md and "| seeds | 2 (+1 stuck) | " in md
