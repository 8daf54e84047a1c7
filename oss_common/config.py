"""The one config loader: a YAML file with ${VAR:default} substitution, as nameko reads it."""
import os
from collections.abc import Callable
from typing import Any
from pathlib import Path

import yaml
from nameko.cli.main import setup_yaml_parser

PROJECT_ROOT = Path(__file__).resolve().parent.parent

setup_yaml_parser()


def var_dir() -> Path:
    """Where a single machine keeps its SQLite files, logs and token key: OSS_VAR_DIR, else var/ of the checkout."""
    return Path(os.environ.get("OSS_VAR_DIR") or PROJECT_ROOT / "var")


class ConfigurationError(Exception):
    """The deployment's configuration cannot start a service; the message says what to fix."""


def load_config(path: str | Path, overrides: dict | None = None) -> dict:
    """Read a service's YAML config; environment variables fill ${VAR:default} placeholders.

    `overrides` are defaults computed by the runner (ports, database file of a region); they
    apply only where the environment does not already set the variable.
    """
    overrides = {key: str(value) for key, value in (overrides or {}).items()}
    saved = {}
    for key, value in overrides.items():
        if key not in os.environ:
            saved[key] = None
            os.environ[key] = value
    try:
        with open(path, encoding="utf-8") as handle:
            config = yaml.safe_load(handle) or {}
    finally:
        for key in saved:
            os.environ.pop(key, None)
    return config


def setting(config: dict, key: str, default: Any = None, cast: Callable[[Any], Any] | None = None) -> Any:
    """A config value, with its default when unset or empty, converted by `cast`."""
    value = config.get(key)
    if value in (None, ""):
        value = default
    if cast is not None and value is not None:
        try:
            value = cast(value)
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(f"config {key}={value!r} is not a valid {cast.__name__}") from exc
    return value


def as_list(value: Any) -> list[str]:
    """A list from a YAML list or a comma-separated string."""
    if value in (None, ""):
        return []
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return [str(item).strip() for item in value]


def as_flag(value: Any) -> bool:
    """A yes/no setting: 0, false, no and off (any case) are no; anything else is yes."""
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() not in ("0", "false", "no", "off")
