"""Experiment tooling: `irat sweep` (skip / resume / dry run), `irat report` (tables that match the
eval.json files, every figure drawn and labelled), LM-PGD (ε-ball, box, ascent) and `irat analyze paths`.

One tiny real sweep (2 methods × 2 seeds on 64 Fashion-MNIST images, 2 epochs, PGD-2) is shared by
the module; the γ × β heat map is tested on hand-written run directories (no training).
"""
from __future__ import annotations

import csv
import json
import signal
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from torch import nn

import irat.evaluation as eval_mod
from irat import cli
from irat.attacks.lmpgd import lm_pgd
from irat.attacks.pgd import attack_loss, pgd
from irat.errors import IratError
from irat.report import build_report, find_runs, group_runs, paired_rows
from irat.sweep import Cell, SweepSpec, parse_grid, run_sweep, split_values

train_mod = __import__("importlib").import_module("irat.training.trainer")

FMNIST = Path("/usr/share/datasets/fashion-mnist")
needs_fmnist = pytest.mark.skipif(not (FMNIST / "train-images-idx3-ubyte.gz").is_file(),
                                  reason="Fashion-MNIST system copy not installed")

PRESET = "fmnist-smallcnn-at"
TINY = ["epochs=2", "reweight.from_epoch=2", "data.train_subset=64", "data.val_size=16", "batch_size=32",
        "attack.steps=2"]
EVAL = ["nat", "pgd20"]
EVAL_N = 48


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_spec(out: Path, **kw: Any) -> SweepSpec:
    args: dict[str, Any] = dict(out=out, methods=["at", "mail-at"], seeds=[0, 1], preset=PRESET, sets=list(TINY),
                                eval_attacks=list(EVAL), eval_examples=EVAL_N)
    args.update(kw)
    return SweepSpec(**args)


class Calls:
    """Counts calls of irat.training.trainer.train and irat.evaluation.evaluate_checkpoint (still running them)."""

    def __init__(self, mp: pytest.MonkeyPatch, out: Path):
        self.train: list[tuple[str, bool]] = []
        self.eval: list[str] = []
        real_train, real_eval = train_mod.train, eval_mod.evaluate_checkpoint

        def train(cfg, out_dir, **kw):
            self.train.append((Path(out_dir).relative_to(out).as_posix(), bool(kw.get("resume"))))
            return real_train(cfg, out_dir, **kw)

        def evaluate(path, **kw):
            self.eval.append(Path(path).parent.parent.relative_to(out).as_posix())
            return real_eval(path, **kw)

        mp.setattr(train_mod, "train", train)
        mp.setattr(eval_mod, "evaluate_checkpoint", evaluate)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The shared sweep. Its cell mail-at/seed0 is interrupted (SIGTERM) after epoch 1, then the sweep is re-run."""
    if not (FMNIST / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip("Fashion-MNIST system copy not installed")
    out = tmp_path_factory.mktemp("sweep")
    spec = tiny_spec(out)
    real_summary = train_mod.Trainer._summary

    def interrupting_summary(self, epoch, *a, **kw):
        if self.out_dir == out / "mail-at" / "seed0" and epoch == 1:
            self._stop_signal = signal.SIGTERM  # as if the job were killed during epoch 1
        return real_summary(self, epoch, *a, **kw)

    with pytest.MonkeyPatch.context() as mp:
        first = Calls(mp, out)
        mp.setattr(train_mod.Trainer, "_summary", interrupting_summary)
        with pytest.raises(train_mod.Interrupted):
            run_sweep(spec, log=lambda s: None)
    partial = torch.load(out / "mail-at/seed0/checkpoints/last.pt", weights_only=True)["epoch"]
    with pytest.MonkeyPatch.context() as mp:
        second = Calls(mp, out)
        results = run_sweep(spec, log=lambda s: None)
    return {"out": out, "spec": spec, "first": first, "second": second, "partial_epoch": partial,
            "results": results}


@pytest.fixture(scope="module")
def report(sweep: dict[str, Any]):
    return build_report([sweep["out"]], sweep["out"] / "report" / "results.md", analysis_examples=32, device="cpu",
                        keep_figures=True)


# ---------------------------------------------------------------------------------------------- sweep


def test_cells_are_the_product_with_deterministic_names() -> None:
    spec = SweepSpec(out=Path("d"), methods=["at", "clirat"], seeds=[0, 1], preset=PRESET,
                     grid=parse_grid(["reweight.gamma=2,10", "reweight.beta=-0.5,0"]))
    names = [c.name for c in spec.cells()]
    assert len(names) == len(set(names)) == 2 * 2 * 2 * 2
    assert names[0] == "at/reweight.gamma=2/reweight.beta=-0.5/seed0"
    assert Cell(0, "mail-at", 3, (("optim.milestones", "[10,13]"),)).name == "mail-at/optim.milestones=_10_13_/seed3"
    assert split_values("[10,13],[5,8]") == ["[10,13]", "[5,8]"]
    assert spec.cells()[0].overrides(["epochs=1"]) == ["epochs=1", "reweight.gamma=2", "reweight.beta=-0.5",
                                                       "method=at", "seed=0"]
    with pytest.raises(IratError, match="--grid"):
        parse_grid(["method=at,mail-at"])


@needs_fmnist
def test_interrupted_cell_is_resumed_and_completed(sweep: dict[str, Any]) -> None:
    out = sweep["out"]
    # first pass: the at cells finished, mail-at/seed0 stopped after epoch 1 of 2, mail-at/seed1 not started
    assert sweep["first"].train == [("at/seed0", False), ("at/seed1", False), ("mail-at/seed0", False)]
    assert sweep["partial_epoch"] == 1
    # second pass: only the unfinished work, the interrupted cell with resume=True
    assert sweep["second"].train == [("mail-at/seed0", True), ("mail-at/seed1", False)]
    assert sweep["second"].eval == ["mail-at/seed0", "mail-at/seed1"]
    for cell in ("at/seed0", "at/seed1", "mail-at/seed0", "mail-at/seed1"):
        epochs = [json.loads(line)["epoch"] for line in (out / cell / "metrics.jsonl").read_text().splitlines()]
        assert epochs == [1, 2], cell
        ev = json.loads((out / cell / "eval.json").read_text())
        assert set(EVAL) <= set(ev["accuracy"]) and ev["data"]["n_examples"] == EVAL_N
    cfg = yaml.safe_load((out / "mail-at/seed1/config.yaml").read_text())
    assert cfg["method"] == "mail-at" and cfg["seed"] == 1 and cfg["data"]["train_subset"] == 64


@needs_fmnist
def test_rerun_does_no_repeated_work_and_completes_a_missing_eval(sweep: dict[str, Any],
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    out, spec = sweep["out"], sweep["spec"]
    files = sorted(out.glob("*/seed*/checkpoints/last.pt")) + sorted(out.glob("*/seed*/eval.json"))
    assert len(files) == 8
    before = {p: p.stat().st_mtime_ns for p in files}
    calls = Calls(monkeypatch, out)
    run_sweep(spec, log=lambda s: None)
    assert calls.train == [] and calls.eval == []
    assert {p: p.stat().st_mtime_ns for p in files} == before

    (out / "at/seed1/eval.json").unlink()  # e.g. killed between training and evaluation
    run_sweep(spec, log=lambda s: None)
    assert calls.train == [] and calls.eval == ["at/seed1"]
    assert (out / "at/seed1/eval.json").is_file()
    assert (out / "at/seed1/checkpoints/last.pt").stat().st_mtime_ns == before[out / "at/seed1/checkpoints/last.pt"]


@needs_fmnist
def test_dry_run_lists_cells_and_runs_nothing(sweep: dict[str, Any], tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    calls = Calls(monkeypatch, tmp_path)
    res = run_sweep(sweep["spec"], dry_run=True, log=lambda s: None)
    assert [r.state.action for r in res] == ["done"] * 4

    fresh = tmp_path / "grid"
    args = ["sweep", "--preset", PRESET, "--methods", "at,clirat", "--seeds", "0,1", "--grid", "reweight.gamma=2,10",
            "--grid", "reweight.beta=-0.5,0", "--set", *TINY, "--out", str(fresh), "--eval", "nat,pgd20", "--dry-run"]
    assert cli.main(args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 16 and all(line.rstrip().endswith("new") for line in lines)
    assert "clirat/reweight.gamma=10/reweight.beta=0/seed1" in lines[-1]
    assert cli.main(args + ["--print-commands"]) == 0
    cmds = capsys.readouterr().out.splitlines()
    assert len(cmds) == 16 and all(c.startswith("irat train --preset") and "&& irat eval" in c for c in cmds)
    assert not fresh.exists() and calls.train == [] and calls.eval == []

    # a cell whose stored config differs from the sweep's is refused before anything runs
    changed = tiny_spec(sweep["out"], sets=[s if s != "batch_size=32" else "batch_size=16" for s in TINY])
    with pytest.raises(IratError, match="differs"):
        run_sweep(changed, dry_run=True, log=lambda s: None)


@needs_fmnist
def test_eval_limit_runs_one_attack_on_fewer_examples_and_is_not_repeated(
        sweep: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    from irat.sweep import cell_command, cell_state

    out = tmp_path / "copy"
    shutil.copytree(sweep["out"], out)
    limited = tiny_spec(out, eval_limits={"pgd20": 20})
    calls = Calls(monkeypatch, out)
    run_sweep(limited, log=lambda s: None)  # the stored evals covered pgd20 on 48 examples: re-evaluated
    assert calls.train == [] and calls.eval == ["at/seed0", "at/seed1", "mail-at/seed0", "mail-at/seed1"]
    ev = json.loads((out / "at/seed0/eval.json").read_text())
    assert ev["attacks"]["nat"]["n_examples"] == EVAL_N and ev["attacks"]["pgd20"]["n_examples"] == 20
    assert ev["protocol"]["limits"] == {"pgd20": 20}
    assert ev["reused"]["attacks"] == ["nat"]  # natural accuracy on the same 48 examples was kept
    codes = json.loads((out / "at/seed0/eval_examples.json").read_text())["robust"]["pgd20"]
    assert all(c is None for c in codes[20:]) and any(c is not None for c in codes[:20])
    run_sweep(limited, log=lambda s: None)
    assert len(calls.eval) == 4  # nothing repeated
    state = cell_state(limited, limited.cells()[0])
    state.action = "evaluate"
    assert "--limit pgd20=20" in cell_command(limited, state)


# --------------------------------------------------------------------------------------------- report


@needs_fmnist
def test_report_table_matches_eval_json(sweep: dict[str, Any], report) -> None:
    out = sweep["out"]
    assert report.columns[:2] == ["nat", "pgd20"] and set(report.columns) <= {"nat", "pgd20", "worst"}
    rows = list(csv.DictReader(report.csv.open()))
    assert [r["method"] for r in rows] == ["at", "mail-at"]
    md = report.markdown.read_text()
    for row in rows:
        accs = [json.loads(p.read_text())["accuracy"] for p in sorted(out.glob(f"{row['method']}/seed*/eval.json"))]
        assert len(accs) == 2 and row["seeds"] == "2"
        for col in report.columns:
            vals = np.array([a[col] for a in accs])
            mean, std = vals.mean(), vals.std(ddof=1)
            assert float(row[f"{col}_mean"]) == pytest.approx(mean, abs=1e-9)
            assert float(row[f"{col}_std"]) == pytest.approx(std, abs=1e-9)
            assert f"{mean:.2f} ± {std:.2f}" in md
    assert "| method | seeds | NAT | PGD-20 |" in md
    # the cost table: the training loop's seconds from metrics.jsonl, each attack's from eval.json
    cost = md[md.index("### Cost"):]
    for row in rows:
        runs = sorted(out.glob(f"{row['method']}/seed*"))
        train = np.mean([sum(json.loads(x)["seconds"] for x in (d / "metrics.jsonl").read_text().splitlines())
                         for d in runs])
        pgd = np.mean([json.loads((d / "eval.json").read_text())["attacks"]["pgd20"]["seconds"] for d in runs])
        assert f"| {row['method']} | 2 | {train:.0f} | " in cost and f" | {pgd:.0f} |" in cost
    assert "steps=20" in md  # every attack parameter is printed
    tex = report.latex.read_text()
    assert r"\begin{tabular}" in tex and "PGD-20" in tex and r"\pm" in tex


def _assert_labelled(fig) -> None:
    axes = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    assert axes
    for ax in axes:
        assert ax.get_xlabel().strip() and ax.get_ylabel().strip() and ax.get_title().strip()


def _assert_png(path: Path) -> None:
    import matplotlib.image as mpimg

    assert path.is_file() and path.stat().st_size > 2000
    img = mpimg.imread(path)
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100 and img.std() > 0


@needs_fmnist
def test_every_report_figure_is_drawn_and_labelled(report) -> None:
    expected = {"training_curves", "lps_histogram", "pm_vs_lps", "burn_in_distributions", "confused_labels"}
    assert expected <= set(report.figure_objects)
    for fig in report.figure_objects.values():
        _assert_labelled(fig)
    assert len(report.figures) == len(report.figure_objects)
    for path in report.figures.values():
        assert path.parent == report.markdown.parent / "figures"
        _assert_png(path)
        assert f"figures/{path.name}" in report.markdown.read_text()
    # the analysis ran the training attack (PGD-2) on 32 training examples of one checkpoint per method
    for a in report.analyses.values():
        assert a.lps.shape == (32,) and a.lps.min() >= 0 and a.lps.max() <= 2
        assert np.all((a.pm_nat >= -1) & (a.pm_nat <= 1))


def _fake_run(d: Path, gamma: float, beta: float, seed: int, acc: dict[str, float], method: str = "mail-at") -> None:
    d.mkdir(parents=True)
    cfg = {"method": method, "seed": seed, "epochs": 3, "device": "cpu",
           "reweight": {"margin": "pm_adv", "gamma": gamma, "beta": beta, "from_epoch": 2},
           "optim": {"milestones": [2]}}
    (d / "config.yaml").write_text(yaml.safe_dump(cfg))
    (d / "eval.json").write_text(json.dumps({"accuracy": acc, "method": method, "attacks": {
        "nat": {}, "pgd20": {"eps": 0.1, "steps": 20}}, "checkpoint": {"path": "x/checkpoints/last.pt", "epoch": 3}}))
    lines = []
    for e in (1, 2, 3):
        lines.append({"epoch": e, "reweight_active": e >= 2, "val": {"nat": 50.0 + e + gamma, "pgd20": 20.0 + e},
                      "confused": {"one": 10 - e, "several": 5 + e, "misclassified": 15},
                      "margin": {"name": "pm_adv", "hist": [1, 2, 3, 4], "hist_range": [-1, 1]},
                      "weights": {"hist": [0, 4, 5, 1], "hist_range": [0, 2]}})
    (d / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in lines))


def test_gamma_beta_heat_map_and_grouping_by_varied_settings(tmp_path: Path) -> None:
    expected = {}
    for gamma in (2.0, 10.0):
        for beta in (-0.5, 0.0):
            for seed in (0, 1, 2):
                pgd20 = 30 + gamma + 10 * beta + seed
                _fake_run(tmp_path / f"g{gamma}b{beta}s{seed}", gamma, beta, seed, {"nat": 80.0 + seed, "pgd20": pgd20})
            expected[(gamma, beta)] = np.mean([30 + gamma + 10 * beta + s for s in (0, 1, 2)])
    res = build_report([tmp_path], tmp_path / "r.md", analysis_examples=0, keep_figures=True)
    assert len(res.rows) == 4
    for row in res.rows:
        g, b = row.group.setting("reweight.gamma"), row.group.setting("reweight.beta")
        assert dict(row.group.settings).keys() == {"reweight.beta", "reweight.gamma"}
        assert row.cells["pgd20"][0] == pytest.approx(expected[(g, b)])
        assert row.cells["pgd20"][1] == pytest.approx(1.0)  # seeds 0, 1, 2: std with ddof = 1
    heat = [k for k in res.figure_objects if k.startswith("gamma_beta")]
    assert len(heat) == 1
    fig = res.figure_objects[heat[0]]
    _assert_labelled(fig)
    image = fig.axes[0].images[0].get_array()
    assert np.allclose(image, [[expected[(2.0, -0.5)], expected[(2.0, 0.0)]],
                               [expected[(10.0, -0.5)], expected[(10.0, 0.0)]]])
    for name, fig in res.figure_objects.items():
        _assert_labelled(fig)
        _assert_png(res.figures[next(t for t, p in res.figures.items() if p.stem == name)])
    assert "mail-at (reweight.beta=-0.5, reweight.gamma=10)" in res.markdown.read_text()

    # the same through the CLI, default output DIR/report.md
    assert cli.main(["report", str(tmp_path), "--analysis-examples", "0"]) == 0
    assert all((tmp_path / f"report.{ext}").is_file() for ext in ("md", "csv", "tex"))
    assert (tmp_path / "figures" / "gamma_beta_mail-at.png").is_file()

    # a title and a written analysis above the generated tables
    notes = tmp_path / "notes.md"
    notes.write_text("## What we found\n\nγ = 10 beats γ = 2.\n")
    out = tmp_path / "doc" / "README.md"
    assert cli.main(["report", str(tmp_path), "--analysis-examples", "0", "--out", str(out), "--title", "Results",
                     "--intro", str(notes)]) == 0
    text = out.read_text()
    assert text.startswith("# Results\n\n## What we found\n\nγ = 10 beats γ = 2.\n")
    assert text.index("γ = 10 beats") < text.index("| method |")
    assert cli.main(["report", str(tmp_path), "--intro", str(tmp_path / "missing.md")]) == 2


def test_a_column_evaluated_on_fewer_seeds_says_so(tmp_path: Path) -> None:
    _fake_run(tmp_path / "s0", 10.0, -0.5, 0, {"nat": 80.0, "pgd20": 40.0, "aa": 35.0})
    _fake_run(tmp_path / "s1", 10.0, -0.5, 1, {"nat": 82.0, "pgd20": 42.0})
    res = build_report([tmp_path], tmp_path / "r.md", analysis_examples=0)
    (row,) = res.rows
    assert row.n == 2 and row.cells["aa"] == (35.0, 0.0, 1)
    line = next(x for x in res.markdown.read_text().splitlines() if x.startswith("| mail-at"))
    assert "| 81.00 ± 1.41 | 41.00 ± 1.41 | 35.00 ± 0.00 (n=1) |" in line


# --------------------------------------------------------------------------------------------- LM-PGD


class ConcaveCE(nn.Module):
    """Two classes, logits (−k‖x − c‖², 0): CE for label 1 is softplus(−k‖x − c‖²), maximal at x = c.

    With c inside the ε-ball, sign-PGD with a fixed step oscillates around c; a line search does not.
    """

    def __init__(self, c: torch.Tensor, k: float = 50.0):
        super().__init__()
        self.register_buffer("c", c)
        self.k = k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = ((x - self.c) ** 2).flatten(1).sum(1)
        return torch.stack([-self.k * d, torch.zeros_like(d)], dim=1)


def test_lm_pgd_ascends_further_than_pgd_on_a_known_landscape() -> None:
    x = torch.full((1, 1, 2, 2), 0.5)
    c = x + torch.tensor([0.037, -0.053, 0.071, -0.019]).view(1, 1, 2, 2)
    model = ConcaveCE(c)
    y = torch.ones(1, dtype=torch.long)
    eps, steps, alpha = 0.1, 10, 0.025
    p = pgd(model, x, y, eps, steps, alpha, start="none")
    lm = lm_pgd(model, x, y, eps, steps, 2 * alpha, start="none")
    loss_pgd = attack_loss(model(p.x_adv), y, "ce")
    loss_lm = attack_loss(model(lm.x_adv), y, "ce")
    assert torch.allclose(lm.losses[-1], loss_lm)
    assert float(loss_lm) > float(loss_pgd)
    assert float((lm.x_adv - c).abs().max()) < float((p.x_adv - c).abs().max())
    assert torch.all(lm.losses[1:] >= lm.losses[:-1])  # accepted steps only raise the loss


def test_lm_pgd_stays_in_the_ball_and_box_and_restores_the_mode() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 32), nn.Tanh(), nn.Dropout(0.5), nn.Linear(32, 5))
    model.train()
    x = torch.rand(12, 1, 4, 4)
    x[:3] = 0.0
    x[3:6] = 1.0  # on the box edges: projection must clip
    y = torch.randint(0, 5, (12,))
    eps = torch.linspace(0.01, 0.3, 12)  # a per-example radius
    res = lm_pgd(model, x, y, eps, 8, start="uniform", noise=torch.rand_like(x) * 2 - 1)
    assert model.training
    assert torch.all((res.x_adv - x).abs().flatten(1).max(1).values <= eps + 1e-6)
    assert res.x_adv.min() >= 0 and res.x_adv.max() <= 1
    assert res.losses.shape == (9, 12) and torch.all(res.losses[1:] >= res.losses[:-1])
    assert res.first_wrong.min() >= 0 and res.first_wrong.max() <= 8 and res.kappa.max() <= 8


def test_lm_pgd_without_momentum_and_line_search_is_pgd() -> None:
    torch.manual_seed(1)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 24), nn.ReLU(), nn.Linear(24, 4)).eval()
    x, y = torch.rand(10, 1, 4, 4), torch.randint(0, 4, (10,))
    noise = torch.rand_like(x) * 2 - 1
    ref = pgd(model, x, y, 0.1, 6, 0.025, noise=noise)
    plain = lm_pgd(model, x, y, 0.1, 6, 0.025, momentum=0.0, line_search=False, start="uniform", noise=noise)
    assert torch.equal(plain.x_adv, ref.x_adv)
    assert torch.equal(plain.first_wrong, ref.first_wrong) and torch.equal(plain.kappa, ref.kappa)


@needs_fmnist
def test_analyze_paths_on_a_trained_model(sweep: dict[str, Any], tmp_path: Path,
                                          capsys: pytest.CaptureFixture) -> None:
    from irat.figures import loss_paths

    ckpt = sweep["out"] / "mail-at/seed1/checkpoints/last.pt"
    assert cli.main(["analyze", "paths", str(ckpt), "--n", "6", "--steps", "6", "--out", str(tmp_path),
                     "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "LPS differs between PGD and LM-PGD paths" in printed
    s = json.loads((tmp_path / "paths.json").read_text())
    assert s["n_examples"] == 6 and 0.0 <= s["fraction_lps_differs"] <= 1.0
    assert s["pm_nat_max_change"] == 0.0  # PM_nat is computed from the natural example: no path at all
    assert s["mean_final_loss_lmpgd"] >= s["mean_final_loss_pgd"] - 1e-6
    _assert_png(tmp_path / "paths.png")
    fig = loss_paths(np.zeros((7, 2)), np.ones((7, 2)), [6, 3], [2, 6], [0.1, -0.2], ["a", "b"])
    _assert_labelled(fig)


@needs_fmnist
def test_analyze_lps_writes_the_mail_fig_1b_and_fig_4_data(sweep: dict[str, Any], tmp_path: Path) -> None:
    ckpt = sweep["out"] / "at/seed0/checkpoints/last.pt"
    assert cli.main(["analyze", "lps", str(ckpt), "--n", "16", "--out", str(tmp_path), "--device", "cpu"]) == 0
    s = json.loads((tmp_path / "lps.json").read_text())
    assert s["n_examples"] == 16 and sum(s["lps_counts"]) == 16 and len(s["lps_counts"]) == 3  # LPS in 0..T, T = 2
    for name in ("lps_hist.png", "pm_vs_lps.png"):
        _assert_png(tmp_path / name)


def test_paired_table_differences_runs_of_the_same_seed(tmp_path: Path) -> None:
    acc = {("at", 0): (60.0, 55.0), ("at", 1): (70.0, 58.0), ("at", 2): (65.0, 50.0),
           ("mail-at", 0): (61.0, 53.0), ("mail-at", 1): (72.0, 55.0),  # no seed 2
           ("clirat", 0): (62.0, 54.0), ("clirat", 1): (71.0, 57.0), ("clirat", 2): (66.0, 51.0)}
    for (method, seed), (pgd20, cw) in acc.items():
        extra = {"aa": cw - 1.0} if (method, seed) == ("clirat", 0) else {}
        _fake_run(tmp_path / method / f"s{seed}", 10.0, -0.5, seed,
                  {"nat": 80.0, "pgd20": pgd20, "cw": cw, **extra, "worst": cw - 2.0}, method=method)
    res = build_report([tmp_path], tmp_path / "r.md", analysis_examples=0)
    text = res.markdown.read_text()
    pairs = {(r.group.method, r.baseline.method): r for r in paired_rows(group_runs(find_runs([tmp_path])),
                                                                          res.columns)}
    assert set(pairs) == {("mail-at", "at"), ("clirat", "at"), ("clirat", "mail-at")}
    m = pairs[("mail-at", "at")]
    assert m.seeds == [0, 1]
    assert m.cells["pgd20"] == pytest.approx((1.5, np.std([1.0, 2.0], ddof=1), 2))
    assert m.cells["cw"] == pytest.approx((-2.5, np.std([-2.0, -3.0], ddof=1), 2))
    c = pairs[("clirat", "at")]
    assert c.seeds == [0, 1, 2] and c.cells["pgd20"][0] == pytest.approx(4.0 / 3)
    assert "aa" not in c.cells  # AutoAttack only on clirat's seed 0: nothing to pair
    # worst over other attack sets (clirat seed 0 has AA, AT does not) is left out of the difference
    assert c.cells["worst"][2] == 2
    assert "| mail-at − at | 0,1 | +0.00 ± 0.00 | +1.50 ± 0.71 | -2.50 ± 0.71 |" in text
