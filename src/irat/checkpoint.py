"""Checkpoints: plain dicts of tensors and primitives, loaded with `torch.load(weights_only=True)`.

Each records irat's version, the config and a content hash of the model weights; a truncated,
corrupt or code-carrying file is refused with a one-line error naming the file.

The safetensors weights that `irat export` writes load here too, as a checkpoint without optimizer
or RNG state: the tensors are the model's state and the file's metadata holds the rest (config,
classes, image size, epoch, content hash), each value as JSON. Nothing in that file is unpickled.
"""
from __future__ import annotations

import hashlib
import json
import pickletools
import random
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import safetensors
import safetensors.torch
import torch
from torch import nn

from . import __version__
from .errors import CheckpointError, IratError
from .files import atomic_torch_save

FORMAT = "irat-checkpoint-v1"
WEIGHTS_FORMAT = "irat-weights-v1"
# what a checkpoint needs besides its model state to rebuild the network and describe it
WEIGHTS_KEYS = ("config", "num_classes", "in_channels", "image_size", "classes", "epoch", "best", "irat_version",
                "model_sha256")


def state_hash(state: dict[str, torch.Tensor]) -> str:
    """sha256 over the model state's names, dtypes, shapes and bytes, in key order."""
    h = hashlib.sha256()
    for key in sorted(state):
        t = state[key].detach().cpu().contiguous()
        h.update(key.encode())
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        # as 1-d bytes: a 0-dim tensor (BatchNorm's num_batches_tracked) cannot be viewed as uint8
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    py_state = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"key": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "python": {"version": py_state[0], "state": list(py_state[1]),
                   "gauss": py_state[2] if py_state[2] is not None else None},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    """Write atomically; adds format, version and the model's content hash."""
    payload = dict(payload)
    payload["format"] = FORMAT
    payload["irat_version"] = __version__
    payload["model_sha256"] = state_hash(payload["model"])
    atomic_torch_save(path, payload)


_REFUSED = "(irat loads checkpoints with torch.load(weights_only=True): tensors and plain values only)"


def _pickle_imports(path: Path) -> list[str]:
    """What a plain (non-zip) pickle file would import when unpickled, read with pickletools: nothing runs."""
    names: list[str] = []
    strings: list[str] = []
    try:
        with open(path, "rb") as f:
            data = f.read(1 << 24)
        for op, arg, _ in pickletools.genops(data):
            if op.name in ("GLOBAL", "INST"):
                names.append(str(arg).replace(" ", "."))
            elif op.name == "STACK_GLOBAL":
                names.append(".".join(strings[-2:]) or "a global")
            if isinstance(arg, str):
                strings.append(arg)
            if op.name == "STOP":
                break
    except Exception:  # garbage stops the scan; what was found so far still counts
        pass
    return names


def _load_failure(path: Path, e: BaseException) -> CheckpointError:
    """One line for a file torch.load refused: code-carrying pickles apart from corrupt files."""
    text = str(e)
    with open(path, "rb") as f:
        is_zip = f.read(2) == b"PK"  # torch.save's archive, whole or truncated
    if is_zip:
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
        if found or "Trying to call reduce" in text or "can still be loaded" in text:
            what = f" ({found.group(1)})" if found else ""
            return CheckpointError(f"checkpoint {path}: refused, it carries pickled code or objects{what} that "
                                   f"are not plain tensors {_REFUSED}")
        first = text.split("\n")[0].split(". ")[0] if text else type(e).__name__
        return CheckpointError(f"checkpoint {path}: corrupt or truncated ({first[:100]})")
    imports = _pickle_imports(path)
    if imports:
        return CheckpointError(f"checkpoint {path}: refused, it is a plain pickle that would import "
                               f"{', '.join(imports[:3])} {_REFUSED}")
    return CheckpointError(f"checkpoint {path}: corrupt, truncated or not a checkpoint (not a torch.save archive)")


def weights_file(ckpt: dict[str, Any], state: dict[str, torch.Tensor]) -> bytes:
    """A .safetensors file of `state` (the model's tensors) with `ckpt`'s WEIGHTS_KEYS as metadata; the
    content hash is that of `state`."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    meta = {k: ckpt[k] for k in WEIGHTS_KEYS if ckpt.get(k) is not None}
    meta["irat_version"] = __version__
    meta["model_sha256"] = state_hash(tensors)
    return safetensors.torch.save(tensors, metadata={"format": WEIGHTS_FORMAT,
                                                     **{k: json.dumps(v) for k, v in meta.items()}})


def _is_safetensors(path: Path) -> bool:
    """A safetensors file: an 8-byte little-endian header length, then the JSON header."""
    try:
        with open(path, "rb") as f:
            head = f.read(9)
    except OSError:  # unreadable: torch.load names the reason
        return False
    if len(head) < 9 or head[8:9] != b"{":
        return False
    return int.from_bytes(head[:8], "little") <= path.stat().st_size - 8


def _load_weights(path: Path, map_location: str | torch.device) -> dict[str, Any]:
    """An `irat export` .safetensors file as a checkpoint dict (model state + WEIGHTS_KEYS)."""
    try:
        with safetensors.safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        state = safetensors.torch.load_file(str(path), device=str(map_location))
    except Exception as e:  # noqa: BLE001 - a bad header or truncated data is a bad file
        first = str(e).splitlines()[0][:100] if str(e) else type(e).__name__
        raise CheckpointError(f"checkpoint {path}: corrupt or truncated safetensors file ({first})") from None
    if meta.get("format") != WEIGHTS_FORMAT:
        raise CheckpointError(f"checkpoint {path}: a safetensors file without irat's metadata (format "
                              f"{WEIGHTS_FORMAT}): irat cannot tell which network it holds")
    try:
        ckpt = {k: json.loads(meta[k]) for k in WEIGHTS_KEYS if k in meta}
    except ValueError:
        raise CheckpointError(f"checkpoint {path}: the safetensors metadata is not valid JSON") from None
    ckpt.setdefault("epoch", 0)
    return {"model": state, "format": WEIGHTS_FORMAT, **ckpt}


def _exported_kind(path: Path) -> str | None:
    """Which export a zip archive is, if any: a torch.export program (torch.export.save, `.pt2`) holds
    `<name>/archive_format`; TorchScript (torch.jit.save) holds `<name>/constants.pkl` and `<name>/code/`."""
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except (zipfile.BadZipFile, OSError):
        return None
    if any(n.endswith("/archive_format") for n in names):
        return ("a torch.export program (irat export), not a training checkpoint: load it with torch.export.load, "
                "or the .safetensors weights beside it with irat.load_model")
    if any(n.endswith("/constants.pkl") or "/code/" in n for n in names):
        return "a TorchScript export (irat export), not a training checkpoint: load it with torch.jit.load"
    return None


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load safely; every failure is a CheckpointError naming the file."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path}: file not found")
    if path.is_dir():
        raise CheckpointError(f"checkpoint {path}: is a directory, expected a .pt file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path}: file is empty")
    exported = _exported_kind(path)
    if exported is not None:
        raise CheckpointError(f"checkpoint {path}: this is {exported}")
    if _is_safetensors(path):
        ckpt = _load_weights(path, map_location)
    else:
        ckpt = _load_pickle(path, map_location)
    if not isinstance(ckpt, dict) or "model" not in ckpt or "config" not in ckpt:
        raise CheckpointError(f"checkpoint {path}: not an irat checkpoint (needs the keys 'model' and 'config')")
    expected = ckpt.get("model_sha256")
    if expected is not None and state_hash(ckpt["model"]) != expected:
        raise CheckpointError(f"checkpoint {path}: content hash mismatch, the weights are corrupt")
    return ckpt


def _load_pickle(path: Path, map_location: str | torch.device) -> Any:
    """torch.load(weights_only=True): tensors and plain values only."""
    try:
        with warnings.catch_warnings():  # e.g. "Detected pickle protocol 4": the verdict below is the message
            warnings.simplefilter("ignore")
            ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except OSError as e:
        raise CheckpointError(f"checkpoint {path}: cannot read it ({e.strerror or type(e).__name__})") from None
    except Exception as e:  # every unpickling failure is a bad file, not a crash
        raise _load_failure(path, e) from None
    return ckpt


def load_state_checked(model: nn.Module, state: dict[str, torch.Tensor], path: str | Path) -> None:
    """load_state_dict with a one-line error naming the first mismatch."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        raise CheckpointError(f"checkpoint {path}: does not match the model: missing {missing[:3]}, "
                              f"unexpected {unexpected[:3]}")
    for k, v in own.items():
        if tuple(v.shape) != tuple(state[k].shape):
            raise CheckpointError(f"checkpoint {path}: does not match the model: {k} has shape "
                                  f"{tuple(state[k].shape)} in the file, {tuple(v.shape)} in the model")
    model.load_state_dict(state)


def check_data_matches(ckpt: dict[str, Any], data: Any, path: Path | str) -> None:
    """The data (anything with name, num_classes, in_channels, image_size) must still fit the
    checkpoint's model: used when a run resumes and before a checkpoint is evaluated."""
    have = {"classes": data.num_classes, "channels": data.in_channels, "image size": list(data.image_size)}
    want = {"classes": ckpt.get("num_classes"), "channels": ckpt.get("in_channels"),
            "image size": list(ckpt["image_size"]) if ckpt.get("image_size") is not None else None}
    for what, value in have.items():
        if want[what] is not None and want[what] != value:
            raise IratError(f"data.name: {data.name} now has {what} {value} but the checkpoint {path} was "
                            f"trained with {what} {want[what]}")

