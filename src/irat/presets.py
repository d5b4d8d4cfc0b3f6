"""Presets (the YAML files in irat/presets/) and reading YAML: `1e-3` is a number, a bad file one line.

A family preset (`family: true`) yields `<family>-<method>` for every method of the registry.
"""
from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError, IratError
from .methods import METHODS, describe


class YamlLoader(yaml.SafeLoader):
    """safe_load that also reads `1e-3` and `1e30` as numbers (YAML 1.2 floats; PyYAML wants `1.0e-3`)."""


YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                |[-+]?\.(?:inf|Inf|INF)
                |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."))


def yaml_load(text: str) -> Any:
    return yaml.load(text, Loader=YamlLoader)  # noqa: S506 - a SafeLoader subclass


def preset_dir() -> Path:
    return Path(str(resources.files("irat") / "presets"))


def _preset_files() -> dict[str, dict[str, Any]]:
    return {p.stem: (yaml.safe_load(p.read_text()) or {}) for p in sorted(preset_dir().glob("*.yaml"))}


def preset_names() -> list[str]:
    """Standalone presets, plus `<family>-<method>` for every family preset and every method."""
    names = []
    for stem, data in _preset_files().items():
        if data.get("family"):
            names.extend(f"{stem}-{m}" for m in METHODS)
        else:
            names.append(stem)
    return sorted(names)


def read_yaml(path: Path, what: str) -> dict[str, Any]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise IratError(f"{what}: file not found: {path}") from None
    except OSError as e:
        raise IratError(f"{what}: cannot read {path}: {e.strerror}") from None
    try:
        data = yaml_load(text) or {}
    except yaml.YAMLError as e:
        line = str(e).splitlines()[0] if str(e) else "invalid YAML"
        raise IratError(f"{what}: {path} is not valid YAML ({line})") from None
    if not isinstance(data, dict):
        raise IratError(f"{what}: {path} must hold a mapping of config keys")
    return data


def preset_dict(name: str) -> dict[str, Any]:
    """A preset's keys. `<family>-<method>` is the family preset with `method` set."""
    files = _preset_files()
    data: dict[str, Any] | None = None
    if name in files and not files[name].get("family"):
        data = dict(files[name])
    else:
        for stem, content in files.items():
            method = name[len(stem) + 1:]
            if content.get("family") and name.startswith(stem + "-") and method in METHODS:
                data = dict(content)
                data["method"] = method
                break
    if data is None:
        raise ConfigError("--preset", "a name listed by `irat presets`", name)
    for key in ("description", "family"):
        data.pop(key, None)
    return data


def preset_descriptions() -> dict[str, str]:
    files = _preset_files()
    out = {}
    for name in preset_names():
        if name in files:
            out[name] = str(files[name].get("description", "")).strip()
            continue
        stem = next(s for s in files if name.startswith(s + "-") and name[len(s) + 1:] in METHODS)
        out[name] = f"{name[len(stem) + 1:]} on {stem}: {describe(name[len(stem) + 1:]).split('  — ')[0]}"
    return out
