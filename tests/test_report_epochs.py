"""`irat report` per epoch, on hand-written run directories (no training): robustness over epochs (CLIRAT
Fig. 3 and 5) from the kept checkpoints' evaluations, and the confused-label ablation (CLIRAT Fig. 1B).
Each figure is drawn with labelled axes and lines; the CSV, the table and the plotted lines equal means
and standard deviations computed here by hand; runs without either get neither.
"""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import pytest
import yaml

from irat.report import build_report

EPOCHS = 5
BURN_IN_END = 3  # reweight.from_epoch
KEPT = (3, 4, 5)
METHODS = ("at", "mail-at")
SEEDS = (0, 1)
VARIANTS = ("none", "single", "multiple")


def _write_eval(path: Path, acc: dict[str, float], epoch: int, n_examples: int, checkpoint: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    attacks = {a: {"eps": 0.1, "n_examples": n_examples} for a in acc if a != "worst"}
    ckpt = checkpoint or f"checkpoints/epoch-{epoch:03d}.pt"
    path.write_text(json.dumps({"accuracy": acc, "order": list(attacks), "attacks": attacks,
                                "checkpoint": {"path": ckpt, "epoch": epoch}}))


def _run(d: Path, method: str, seed: int, final: dict[str, float], *, exclude: str | None = None,
         kept: dict[int, dict[str, float]] | None = None, val: dict[int, float] | None = None,
         excluded: dict[int, int] | None = None) -> None:
    """A run directory as `irat train` and `irat eval RUN` leave it (without the checkpoints themselves)."""
    d.mkdir(parents=True)
    reweight: dict[str, Any] = {"margin": "pm_adv", "from_epoch": BURN_IN_END}
    if exclude is not None:
        reweight["exclude"] = exclude
    cfg = {"method": method, "seed": seed, "epochs": EPOCHS, "device": "cpu", "reweight": reweight,
           "optim": {"milestones": [2]}}
    (d / "config.yaml").write_text(yaml.safe_dump(cfg))
    _write_eval(d / "eval.json", final, EPOCHS, 1000, "checkpoints/last.pt")
    lines = []
    for e in range(1, EPOCHS + 1):
        m: dict[str, Any] = {"epoch": e, "lr": 0.1, "loss": 1.0, "train_acc": 50.0,
                             "confused": {"one": 10, "several": 5, "misclassified": 15},
                             "margin": {"name": "pm_adv", "hist": [1, 2, 3, 4], "hist_range": [-1, 1]},
                             "weights": {"hist": [0, 4, 5, 1], "hist_range": [0, 2]}}
        if val:
            m["val"] = {"nat": 70.0, "pgd20": val[e]}
        if excluded is not None:
            m["excluded"] = excluded[e]
        lines.append(m)
    (d / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in lines))
    for e, acc in (kept or {}).items():
        _write_eval(d / "checkpoints" / f"epoch-{e:03d}.eval.json", acc, e, 2000 if "aa" not in acc else 500)


def _mean_std(a: float, b: float) -> tuple[float, float]:
    """Two seeds: the mean and the sample standard deviation (ddof = 1), |a − b| / √2."""
    return (a + b) / 2, abs(a - b) / math.sqrt(2)


def _assert_drawn(fig) -> None:
    """Labelled axes, a title, a legend and at least one line with data on every axes."""
    assert fig.axes
    for ax in fig.axes:
        assert ax.get_xlabel().strip() and ax.get_ylabel().strip() and ax.get_title().strip()
        assert any(len(line.get_xydata()) > 0 for line in ax.get_lines())
    assert any(ax.get_legend() is not None for ax in fig.axes) or fig.legends


def _line(ax, label: str):
    return next(line for line in ax.get_lines() if line.get_label() == label)


# --------------------------------------------------------------------------- robustness over epochs


def _kept_acc(mi: int, seed: int, epoch: int) -> dict[str, float]:
    """Made-up accuracies: nat, PGD-20, CW and the worst case at every kept epoch, AA at the last only."""
    acc = {"nat": 70.0 + 2 * mi + 1.5 * seed + epoch, "pgd20": 40.0 + 3 * mi - 2.0 * seed + 0.5 * epoch,
           "cw": 38.0 + mi + seed * seed * 0.7 - epoch}
    if epoch == EPOCHS:
        acc["aa"] = 35.0 + mi - 1.25 * seed
    acc["worst"] = min(acc[a] for a in acc) - 0.5
    return acc


@pytest.fixture()
def epochs_report(tmp_path: Path):
    for mi, method in enumerate(METHODS):
        for seed in SEEDS:
            d = tmp_path / "runs" / method / f"seed{seed}"
            _run(d, method, seed, {"nat": 80.0, "pgd20": 45.0}, kept={e: _kept_acc(mi, seed, e) for e in KEPT})
    # not a kept checkpoint's evaluation: the file name and the epoch it records disagree
    _write_eval(tmp_path / "runs" / "at" / "seed0" / "checkpoints" / "epoch-002.eval.json", {"nat": 1.0}, 7, 10)
    return build_report([tmp_path / "runs"], tmp_path / "out" / "r.md", analysis_examples=0, keep_figures=True)


def test_kept_checkpoints_csv_equals_hand_computed_means(epochs_report) -> None:
    res = epochs_report
    assert res.epochs_csv == res.markdown.parent / "r_epochs.csv"
    rows = list(csv.DictReader(res.epochs_csv.open()))
    expected = {}
    for mi, method in enumerate(METHODS):
        for e in KEPT:
            a0, a1 = _kept_acc(mi, 0, e), _kept_acc(mi, 1, e)
            for attack in a0:
                expected[(method, e, attack)] = _mean_std(a0[attack], a1[attack])
    assert len(rows) == len(expected) == 2 * (3 * 4 + 1)
    for row in rows:
        mean, std = expected[(row["group"], int(row["epoch"]), row["attack"])]
        assert float(row["mean"]) == pytest.approx(mean) and float(row["std"]) == pytest.approx(std)
        assert int(row["n"]) == 2
    # by group, epoch, then attack in table order (worst last); the stray epoch-002 file is not read
    assert [(r["group"], r["epoch"], r["attack"]) for r in rows[:5]] == [
        ("at", "3", "nat"), ("at", "3", "pgd20"), ("at", "3", "cw"), ("at", "3", "worst"), ("at", "4", "nat")]
    assert {r["epoch"] for r in rows} == {"3", "4", "5"}
    assert [r["attack"] for r in rows if r["epoch"] == "5" and r["group"] == "mail-at"] == [
        "nat", "pgd20", "cw", "aa", "worst"]


def test_accuracy_over_epochs_figure_one_panel_per_attack(epochs_report) -> None:
    res = epochs_report
    fig = res.figure_objects["accuracy_over_epochs"]
    _assert_drawn(fig)
    assert [ax.get_ylabel() for ax in fig.axes] == [f"{n} test accuracy (%)" for n in
                                                    ("NAT", "PGD-20", "CW", "AA", "worst")]
    pgd = fig.axes[1]
    for mi, method in enumerate(METHODS):
        line = _line(pgd, method)
        assert list(line.get_xdata()) == list(KEPT)
        assert list(line.get_ydata()) == pytest.approx(
            [_mean_std(_kept_acc(mi, 0, e)["pgd20"], _kept_acc(mi, 1, e)["pgd20"])[0] for e in KEPT])
        assert pgd.collections  # the ± std bands
    assert list(_line(fig.axes[3], "at").get_xdata()) == [EPOCHS]  # AA only at the last kept epoch
    md = res.markdown.read_text()
    assert "figures/accuracy_over_epochs.png" in md and "(r_epochs.csv)" in md
    assert "12 evaluations of kept checkpoints" in md and "AA 500" in md and "NAT 500 / 2000" in md
    png = res.markdown.parent / "figures" / "accuracy_over_epochs.png"
    assert png.is_file() and png.stat().st_size > 2000
    assert not res.ablations and "Confused-label ablation" not in md


# --------------------------------------------------------------------------- the confused-label ablation


def _val(vi: int, seed: int, e: int) -> float:
    return 30.0 + e - 1.5 * vi * (e >= BURN_IN_END) + 0.75 * seed


def _excluded(vi: int, seed: int, e: int) -> int:
    return 0 if vi == 0 or e < BURN_IN_END else 100 * vi + 10 * e + 7 * seed


def _final(vi: int, seed: int) -> dict[str, float]:
    return {"nat": 80.0 - vi + 0.5 * seed, "pgd20": 50.0 - 2 * vi + seed}


def _ablation_runs(root: Path, kept: bool) -> None:
    for vi, x in enumerate(VARIANTS):
        for seed in SEEDS:
            _run(root / x / f"seed{seed}", "clirat", seed, _final(vi, seed), exclude=x,
                 val={e: _val(vi, seed, e) for e in range(1, EPOCHS + 1)},
                 excluded={e: _excluded(vi, seed, e) for e in range(1, EPOCHS + 1)} if x != "none" else None,
                 kept={e: {"nat": 70.0, "pgd20": _val(vi, seed, e) - 5} for e in KEPT} if kept else None)


@pytest.mark.parametrize("kept", [False, True], ids=["validation", "kept-checkpoints"])
def test_confused_label_ablation_figure_and_table(tmp_path: Path, kept: bool) -> None:
    _ablation_runs(tmp_path / "runs", kept)
    res = build_report([tmp_path / "runs"], tmp_path / "r.md", analysis_examples=0, keep_figures=True)
    (ab,) = res.ablations
    assert ab.source == ("test" if kept else "validation") and list(ab.variants) == list(VARIANTS)
    fig = res.figure_objects["confused_label_ablation_clirat"]
    _assert_drawn(fig)
    ax = fig.axes[0]
    assert ax.get_ylabel() == f"{'test' if kept else 'validation'} PGD-20 accuracy (%)"
    labels = ["all", "without S^sig (single confused label)", "without S^mul (several)"]
    epochs = list(KEPT) if kept else list(range(1, EPOCHS + 1))
    for vi, label in enumerate(labels):
        line = _line(ax, label)
        assert list(line.get_xdata()) == epochs
        assert list(line.get_ydata()) == pytest.approx(
            [_mean_std(_val(vi, 0, e), _val(vi, 1, e))[0] - 5 * kept for e in epochs])
    # the dashed line before epoch 3 where the exclusion starts, when the curves span it (not the kept epochs 3–5)
    assert ("exclusion starts" in [t.get_text() for t in ax.get_legend().get_texts()]) == (not kept)

    md = res.markdown.read_text()
    assert "figures/confused_label_ablation_clirat.png" in md
    assert (res.epochs_csv is not None) == kept and ("accuracy_over_epochs" in res.figure_objects) == kept
    table = md[md.index("### Confused-label ablation (CLIRAT Fig. 1B): clirat"):].split("\n\n")[2].splitlines()
    assert table[0] == ("| variant | seeds | NAT | PGD-20 | paired seeds | Δ NAT vs all | Δ PGD-20 vs all | "
                        "excluded / epoch after burn-in |")
    for vi, label in enumerate(labels):
        nat, pgd = (_mean_std(_final(vi, 0)[k], _final(vi, 1)[k]) for k in ("nat", "pgd20"))
        # per seed: the mean over epochs 3..5, then mean ± std over the two seeds
        ex = _mean_std(*(sum(_excluded(vi, s, e) for e in (3, 4, 5)) / 3 for s in SEEDS))
        deltas = ["–", "–"] if vi == 0 else ["{:+.2f} ± {:.2f}".format(*_mean_std(*(
            _final(vi, s)[k] - _final(0, s)[k] for s in SEEDS))) for k in ("nat", "pgd20")]
        assert table[2 + vi] == (f"| {label} | 2 | {nat[0]:.2f} ± {nat[1]:.2f} | {pgd[0]:.2f} ± {pgd[1]:.2f} | "
                                 f"{'–' if vi == 0 else '0,1'} | {' | '.join(deltas)} | {ex[0]:.1f} ± {ex[1]:.1f} |")
    assert table[3].endswith("| -1.00 ± 0.00 | -2.00 ± 0.00 | 143.5 ± 4.9 |")  # single: 100 + 10·4 + 7·s, by hand


def test_no_per_epoch_parts_without_kept_evaluations_or_exclude_variants(tmp_path: Path) -> None:
    for seed in SEEDS:
        _run(tmp_path / f"s{seed}", "clirat", seed, _final(0, seed), exclude="single",
             val={e: _val(0, seed, e) for e in range(1, EPOCHS + 1)})
    res = build_report([tmp_path], tmp_path / "r.md", analysis_examples=0, keep_figures=True)
    assert res.epochs_csv is None and not res.epochs and not res.ablations
    assert set(res.figure_objects) == {"training_curves", "burn_in_distributions", "confused_labels"}
    assert not (tmp_path / "r_epochs.csv").exists()


def test_ablation_leaves_out_a_seed_at_the_constant_classifier(tmp_path: Path) -> None:
    """Seed 2 is at the constant classifier when the exclusion begins (epoch 3; epoch 2: training accuracy
    10 %, loss ln 10) in every variant: its curves, paired differences and excluded counts are left out,
    so the table equals the two-seed one of the test above; the long table keeps it."""
    _ablation_runs(tmp_path / "runs", kept=False)
    for vi, x in enumerate(VARIANTS):
        d = tmp_path / "runs" / x / "seed2"
        _run(d, "clirat", 2, {"nat": 10.0, "pgd20": 10.0}, exclude=x, val={e: 10.0 for e in range(1, EPOCHS + 1)},
             excluded={e: 9000 for e in range(1, EPOCHS + 1)} if x != "none" else None)
        lines = [json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines()]
        for m in lines:
            m.update(train_acc=10.2, loss=2.301)
        (d / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in lines))
        ev = json.loads((d / "eval.json").read_text())
        (d / "eval.json").write_text(json.dumps({**ev, "data": {"num_classes": 10}}))
    res = build_report([tmp_path / "runs"], tmp_path / "r.md", analysis_examples=0, keep_figures=True)
    (ab,) = res.ablations
    assert [r.seed for r in ab.variants["single"].runs if r.stuck] == [2]
    ax = res.figure_objects["confused_label_ablation_clirat"].axes[0]
    assert list(_line(ax, "all").get_ydata()) == pytest.approx(
        [_mean_std(_val(0, 0, e), _val(0, 1, e))[0] for e in range(1, EPOCHS + 1)])
    md = res.markdown.read_text()
    table = md[md.index("### Confused-label ablation (CLIRAT Fig. 1B): clirat"):].split("\n\n")[2].splitlines()
    assert table[3].endswith("| 0,1 (2 stuck, left out) | -1.00 ± 0.00 | -2.00 ± 0.00 | 143.5 ± 4.9 |")
    assert table[3].split(" | ")[1] == "3"  # the accuracy means keep all three seeds
