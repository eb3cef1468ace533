"""Config files: reading TOML/YAML/JSON, ``--set key.path=value`` overrides and typed
updates, then validation (:mod:`diffprior.config.run_config`). No torch.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from diffprior.errors import ConfigError
from diffprior.config.run_config import validate_config


def read_config_file(path: Path) -> dict:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file not found: {path}")
    text = path.read_text()
    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            try:
                import tomllib
            except ModuleNotFoundError:  # Python 3.10
                import tomli as tomllib
            return tomllib.loads(text)
        if suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
            if data is None:
                return {}
            if not isinstance(data, dict):
                raise ConfigError("the top level of a config must be a mapping", source=str(path))
            return data
        if suffix == ".json":
            return json.loads(text)
    except ConfigError:
        raise
    except Exception as exc:  # TOMLDecodeError, YAMLError, JSONDecodeError carry line/column
        message = " ".join(str(exc).split())
        raise ConfigError(f"syntax error: {message}", source=str(path)) from None
    raise ConfigError(f"unsupported config format {suffix!r}: use .toml, .yaml, .yml or .json", source=str(path))


def _parse_scalar(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    try:
        import tomllib
    except ModuleNotFoundError:
        import tomli as tomllib
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except Exception:
        return text


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Apply ``a.b=c`` overrides; list items are addressed by index (``terms.0.weight=0.5``)."""
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key.path=value", source="--set")
        key, value = item.split("=", 1)
        parts = key.strip().split(".")
        node: Any = data
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if isinstance(node, list):
                if not part.isdigit() or int(part) >= len(node):
                    raise ConfigError(f"{key}: {part!r} is not an index of a list of {len(node)}", source="--set")
                part = int(part)
            elif not isinstance(node, dict):
                raise ConfigError(f"{key}: {'.'.join(parts[:i])} is not a table", source="--set")
            if last:
                node[part] = _parse_scalar(value)
            else:
                if isinstance(node, dict) and part not in node:
                    node[part] = {}
                node = node[part]
    return data


def load_config(path: Path | str, overrides: list[str] | None = None, registry=None, *,
                updates: Mapping[str, Any] | None = None):
    """Read a config file, apply ``key.path=value`` overrides, then ``updates`` (typed
    top-level values such as ``{"seed": 3}``: the CLI's --seed/--batch/--device), and
    validate it once against ``registry`` (default: the installed plugins)."""
    path = Path(path)
    data = read_config_file(path)
    data = apply_overrides(data, overrides or [])
    data.update({key: value for key, value in (updates or {}).items() if value is not None})
    return validate_config(data, source=str(path), base_dir=path.resolve().parent, registry=registry)
