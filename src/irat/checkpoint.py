"""Checkpoints: plain dicts of tensors and primitives, loaded with `torch.load(weights_only=True)`.

Each records irat's version, the config and a content hash of the model weights; a truncated,
corrupt or code-carrying file is refused with a one-line error naming the file.
"""
from __future__ import annotations

import hashlib
import pickle
import random
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from . import __version__
from .errors import CheckpointError
from .io import atomic_torch_save

FORMAT = "irat-checkpoint-v1"


def state_hash(state: dict[str, torch.Tensor]) -> str:
    """sha256 over the model state's names, dtypes, shapes and bytes, in key order."""
    h = hashlib.sha256()
    for key in sorted(state):
        t = state[key].detach().cpu().contiguous()
        h.update(key.encode())
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
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


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load safely; every failure is a CheckpointError naming the file."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path}: file not found")
    if path.is_dir():
        raise CheckpointError(f"checkpoint {path}: is a directory, expected a .pt file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path}: file is empty")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        msg = str(e).splitlines()[0] if str(e) else ""
        if "weights_only" in str(e) or "Unsupported global" in str(e) or "GLOBAL" in str(e):
            raise CheckpointError(f"checkpoint {path}: refused, it carries pickled code or objects that are "
                                  f"not plain tensors (safe loading with weights_only=True)") from None
        raise CheckpointError(f"checkpoint {path}: corrupt or truncated ({msg[:120]})") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError, KeyError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CheckpointError(f"checkpoint {path}: corrupt or truncated ({msg[:120]})") from None
    except Exception as e:  # any other unpickling failure is still a bad file, not a crash
        raise CheckpointError(f"checkpoint {path}: unreadable ({type(e).__name__})") from None
    if not isinstance(ckpt, dict) or "model" not in ckpt or "config" not in ckpt:
        raise CheckpointError(f"checkpoint {path}: not an irat checkpoint (needs the keys 'model' and 'config')")
    expected = ckpt.get("model_sha256")
    if expected is not None and state_hash(ckpt["model"]) != expected:
        raise CheckpointError(f"checkpoint {path}: content hash mismatch, the weights are corrupt")
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
