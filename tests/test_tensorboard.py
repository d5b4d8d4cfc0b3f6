"""TensorBoard events beside metrics.jsonl: every number of each metrics line as a scalar at step = epoch,
the weight and margin histograms with the same bins, and a resumed run appending to the same directory
without showing any epoch twice. Read back with TensorBoard's own EventAccumulator.

Torch runs single-threaded here: on a shared 2-core machine OpenMP threads make small batches far slower.
"""
from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import pytest
from tensorboard.backend.event_processing import event_accumulator

import irat
from irat.errors import ConfigError
from irat.training import train
from irat.training.tensorboard import log_dir
from irat.training.trainer import Interrupted, Trainer

SCALARS = {"lr", "loss", "train_acc", "val/nat", "val/pgd20", "weights/mean", "weights/std", "weights/min",
           "weights/max", "weights/ess", "margin/q05", "margin/q25", "margin/q50", "margin/q75", "margin/q95",
           "confused/one", "confused/several", "confused/misclassified", "seconds", "images_per_s"}
HISTOGRAMS = {"weights/hist", "margin/hist"}


pytestmark = pytest.mark.usefixtures("one_thread")


def _config(*overrides: str) -> Any:
    # 64 images, 32 of them held out for validation, one batch per epoch; MAIL-AT reweights from epoch 1
    return irat.build_config("fmnist-smallcnn-mail-at", overrides=[
        "data.train_subset=64", "data.val_size=32", "batch_size=64", "epochs=2", "reweight.from_epoch=1",
        "attack.steps=1", "seed=0", *overrides])


def _events(run: Path) -> event_accumulator.EventAccumulator:
    acc = event_accumulator.EventAccumulator(str(log_dir(run)), size_guidance={
        event_accumulator.SCALARS: 0, event_accumulator.HISTOGRAMS: 0})
    acc.Reload()
    return acc


def _value(line: dict[str, Any], tag: str) -> float | None:
    """The number a scalar tag stands for in a metrics line; None where that line has no such key
    (e.g. "stuck", written only for the epoch that flags it)."""
    for key in tag.split("/"):
        if not isinstance(line, dict) or key not in line:
            return None
        line = line[key]
    return float(line)  # type: ignore[arg-type]


def test_events_hold_each_epochs_metrics_once_across_a_resume(tmp_path: Path) -> None:
    out = tmp_path / "run"
    trainer = Trainer(_config(), out, progress=False)
    trainer._stop_signal = int(signal.SIGTERM)  # as a SIGTERM would: stop after epoch 1, checkpoint written
    with pytest.raises(Interrupted):
        trainer.run()
    assert [json.loads(s)["epoch"] for s in (out / "metrics.jsonl").read_text().splitlines()] == [1]
    assert _events(out).Scalars("loss")[-1].step == 1
    train(_config(), out, resume=True, progress=False)

    metrics = [json.loads(s) for s in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in metrics] == [1, 2]
    assert len(list(log_dir(out).glob("events.out.tfevents.*"))) == 2  # the resumed run appended its own file
    acc = _events(out)
    tags = acc.Tags()
    assert SCALARS <= set(tags["scalars"]), SCALARS - set(tags["scalars"])
    assert HISTOGRAMS <= set(tags["histograms"])
    for tag in tags["scalars"]:
        events = acc.Scalars(tag)
        lines = [m for m in metrics if _value(m, tag) is not None]
        # one value per epoch that has it: epoch 1 is not shown twice
        assert [e.step for e in events] == [m["epoch"] for m in lines], tag
        for e, line in zip(events, lines):
            assert e.value == pytest.approx(_value(line, tag), rel=1e-6, abs=1e-6), tag
    for tag in HISTOGRAMS:
        events = acc.Histograms(tag)
        assert [e.step for e in events] == [1, 2], tag
        for e, line in zip(events, metrics):
            binned = line[tag.split("/")[0]]
            assert e.histogram_value.bucket == pytest.approx(binned["hist"])
            assert e.histogram_value.num == pytest.approx(sum(binned["hist"]))
            assert e.histogram_value.bucket_limit[-1] == pytest.approx(binned["hist_range"][1])
    assert metrics[0]["reweight_active"] and acc.Scalars("reweight_active")[0].value == 1.0


def test_log_tensorboard_false_writes_no_events(tmp_path: Path) -> None:
    out = tmp_path / "run"
    train(_config("log.tensorboard=false", "epochs=1"), out, progress=False)
    assert (out / "metrics.jsonl").is_file() and not log_dir(out).exists()
    with pytest.raises(ConfigError, match="log.tensorboard"):
        _config("log.tensorboard=sometimes")
