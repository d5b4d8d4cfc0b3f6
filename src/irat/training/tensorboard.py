"""TensorBoard events beside metrics.jsonl: RUN/tensorboard/, one step per epoch, written by PyTorch's
own `SummaryWriter` (the `tensorboard` package's format; nothing hand-written).

Each metrics.jsonl line becomes, at step = its epoch:
- a scalar for every number in it, tagged by its path in the line: `lr`, `loss`, `train_acc`, `val/nat`,
  `val/pgd20`, `weights/mean` … `weights/ess`, `margin/q05` … `margin/q95`, `confused/one`, `seconds`,
  `images_per_s` (booleans as 0/1; lists and names are left out);
- a histogram for every `hist` with its `hist_range` (`weights/hist`, `margin/hist`): the same bins as
  the line, so the events can be rewritten from metrics.jsonl alone. The histogram's sum and sum of
  squares are taken at the bin centres.

A resumed run appends to the same directory: its writer starts with `purge_step=1`, which hides every
earlier event from TensorBoard, and writes again the epochs the checkpoint holds, as metrics.jsonl is
rewritten from the checkpoint. No epoch is lost or shown twice, wherever the previous run was killed.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

from torch.utils.tensorboard import SummaryWriter

from ..config import Config, dump_yaml
from ..runs import RunDir

EVENTS_GLOB = "events.out.tfevents.*"


def log_dir(run_dir: str | Path) -> Path:
    """RUN/tensorboard: `tensorboard --logdir RUN` (or a sweep's folder) shows it."""
    return RunDir(Path(run_dir)).tensorboard


def scalars(line: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, float]]:
    """(tag, value) for every number of a metrics line but its epoch, nested keys joined by '/'."""
    for key, value in line.items():
        tag = f"{prefix}{key}"
        if isinstance(value, dict):
            yield from scalars(value, f"{tag}/")
        elif isinstance(value, (bool, int, float)) and tag != "epoch":
            yield tag, float(value)


def histograms(line: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """(tag, add_histogram_raw's arguments) for every binned `hist` / `hist_range` of a metrics line.

    Bin i of n over [lo, hi] counts the values in [lo + i·w, lo + (i+1)·w], w = (hi − lo) / n; TensorBoard
    takes each bin's upper edge as its limit and `min` as the lower edge of the first."""
    for key, value in line.items():
        if not isinstance(value, dict):
            continue
        if "hist" in value and "hist_range" in value:
            counts = [float(c) for c in value["hist"]]
            lo, hi = (float(v) for v in value["hist_range"])
            width = (hi - lo) / max(len(counts), 1)
            centres = [lo + (i + 0.5) * width for i in range(len(counts))]
            yield f"{prefix}{key}/hist", {
                "min": float(value.get("min", lo)), "max": float(value.get("max", hi)), "num": int(sum(counts)),
                "sum": sum(c * x for c, x in zip(counts, centres)),
                "sum_squares": sum(c * x * x for c, x in zip(counts, centres)),
                "bucket_limits": [lo + (i + 1) * width for i in range(len(counts))], "bucket_counts": counts,
            }
        yield from histograms(value, f"{prefix}{key}/")


class TensorBoardLog:
    """The run's event writer; a no-op when `log.tensorboard` is false or on ranks other than 0."""

    def __init__(self, writer: SummaryWriter | None):
        self.writer = writer

    @classmethod
    def open(cls, run_dir: str | Path, cfg: Config, done: list[dict[str, Any]], enabled: bool = True
             ) -> "TensorBoardLog":
        """Start writing into RUN/tensorboard; `done` are the metrics lines of the epochs already trained
        (a resumed run's): earlier events are purged and these are written again."""
        if not (enabled and cfg.log.tensorboard):
            return cls(None)
        directory = log_dir(run_dir)
        resumed = directory.is_dir() and any(directory.glob(EVENTS_GLOB))
        log = cls(SummaryWriter(str(directory), purge_step=1 if resumed else None))
        if not resumed:  # step 0 is kept by the purge: the config is written once
            log.writer.add_text("config", "```yaml\n" + dump_yaml(cfg) + "```", global_step=0)
        for line in done:
            log.add(line, flush=False)
        log.writer.flush()
        return log

    def add(self, line: dict[str, Any], flush: bool = True) -> None:
        """One epoch's metrics line, at step = its epoch; flushed, so a kill loses no finished epoch."""
        if self.writer is None:
            return
        step = int(line["epoch"])
        for tag, value in scalars(line):
            self.writer.add_scalar(tag, value, global_step=step)
        for tag, hist in histograms(line):
            self.writer.add_histogram_raw(tag, global_step=step, **hist)
        if flush:
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


__all__ = ["TensorBoardLog", "histograms", "log_dir", "scalars"]
