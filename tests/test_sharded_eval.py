"""Evaluation across processes: `torchrun --nproc_per_node=2 -m irat eval …` (gloo on CPU) shards every
attack's batches, AutoAttack included, and writes the same per-example results and accuracies as one
process; only rank 0 writes. On a BatchNorm network (PreAct-ResNet-18, width 4) and CIFAR-10 pickles."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from test_bench_ddp import _env, _free_port  # the same clean environment and port picking as the DDP training test
from test_real_path import _train

ATTACKS = "nat,pgd20,cw,apgd-ce,aa"


def _eval_cmd(ckpt: Path, out: Path) -> list[str]:
    # the 40 test images in batches of 6: 7 batches, so the ranks get 4 and 3, and the cascade's later attacks
    # fewer; AutoAttack on the first 18 (its cost is the examples that survive)
    return ["-m", "irat", "eval", str(ckpt), "--attacks", ATTACKS, "--batch-size", "6", "--eps", "0.03",
            "--limit", "aa=18", "--device", "cpu", "--out", str(out), "--quiet"]


def test_two_process_eval_equals_one_process(tmp_path, cifar_root):
    run = tmp_path / "run"
    assert _train(run, "cifar10-resnet18-at", "data.name=cifar10", f"data.root={cifar_root}",
                  "model.name=preact_resnet18", "model.width=4", "epochs=3", "batch_size=16",
                  "data.val_size=16", "attack.eps=0", "optim.milestones=[3]") == 0  # natural training: it learns
    ckpt = run / "checkpoints" / "last.pt"
    one, two = tmp_path / "one" / "eval.json", tmp_path / "two" / "eval.json"
    r1 = subprocess.run([sys.executable, *_eval_cmd(ckpt, one)], env=_env(), capture_output=True, text=True,
                        timeout=600)
    assert r1.returncode == 0, r1.stderr[-2000:]
    r2 = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--nnodes=1",
                         "--master_addr=127.0.0.1", f"--master_port={_free_port()}", *_eval_cmd(ckpt, two)],
                        env=_env(), capture_output=True, text=True, timeout=600)
    assert r2.returncode == 0, r2.stderr[:3000] + " … " + r2.stderr[-1500:]
    assert r2.stdout.count("written:") == 1  # rank 0 reports
    a, b = json.loads(one.read_text()), json.loads(two.read_text())
    assert (a["processes"], b["processes"]) == (1, 2)
    assert a["accuracy"] == b["accuracy"] and a["worst"] == b["worst"]
    assert a["order"] == b["order"] == ["nat", "pgd20", "cw", "apgd-ce", "aa"]
    for name in a["order"]:
        for k in ("n_examples", "n_attacked", "robust", "accuracy", "mode"):
            assert a["attacks"][name][k] == b["attacks"][name][k], (name, k)
    ea = json.loads(one.with_name("eval_examples.json").read_text())
    eb = json.loads(two.with_name("eval_examples.json").read_text())
    assert ea == eb  # every example's code under every attack
    # the comparison means something: some examples were broken and some survived every attack
    codes = ea["robust"]
    assert 0 < a["accuracy"]["worst"] < a["accuracy"]["nat"]
    assert any(c == 0 for c in codes["pgd20"]) and any(c == 1 for c in codes["aa"])
    assert a["flags"]["perturbation_bound"]["max_linf"] == b["flags"]["perturbation_bound"]["max_linf"]
    assert sorted(p.name for p in two.parent.iterdir()) == sorted(p.name for p in one.parent.iterdir())
