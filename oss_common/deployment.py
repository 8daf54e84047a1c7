"""Deployment files, `deploy/regions/<slug>.yml`: what a regional IT team edits to run its oblast.

One file per oblast (and `national.yml` for the national services) holds the settings its
processes run with, under the names of the configuration reference (AMQP_URI, DATABASE_URL,
HTTP_PORT, ...), and, for an oblast the registry lists without districts, its districts and
OSS centres. Values may use `${VAR:default}`; a variable set in the environment always wins
over the file, and the file over the defaults the runner derives from the region.
"""
import os
from pathlib import Path

import yaml

from oss_common.config import PROJECT_ROOT, ConfigurationError

NATIONAL_FILE = "national"
FILE_KEYS = {"region", "settings", "services", "main_centre", "districts", "centres"}


def regions_dir() -> Path:
    """Where the deployment files live: OSS_REGIONS_DIR, else deploy/regions of the checkout."""
    return Path(os.environ.get("OSS_REGIONS_DIR") or PROJECT_ROOT / "deploy" / "regions")


def deployment_file(slug: str) -> dict:
    """The parsed file of one oblast (or of `national`); {} when the deployment has none."""
    path = regions_dir() / f"{slug}.yml"
    if not path.is_file():
        return {}
    with open(path, encoding="utf-8") as handle:
        document = yaml.safe_load(handle) or {}
    if not isinstance(document, dict):
        raise ConfigurationError(f"{path}: expected a mapping with region, settings, services")
    unknown = set(document) - FILE_KEYS
    if unknown:
        raise ConfigurationError(f"{path}: unknown keys {sorted(unknown)}; allowed: {sorted(FILE_KEYS)}")
    if document.get("region", slug) != slug:
        raise ConfigurationError(f"{path}: says region {document['region']!r}, but its name says {slug!r}")
    for key in ("settings", "services"):
        if not isinstance(document.get(key) or {}, dict):
            raise ConfigurationError(f"{path}: {key} must be a mapping")
    return document


def deployed_slugs() -> list[str]:
    """The oblasts that have a deployment file, in name order (without `national`)."""
    folder = regions_dir()
    if not folder.is_dir():
        return []
    return sorted(path.stem for path in folder.glob("*.yml") if path.stem != NATIONAL_FILE)


def service_settings(slug: str, service: str) -> dict[str, str]:
    """The settings one service process takes from the file: the region-wide ones, then its own."""
    document = deployment_file(slug)
    own = (document.get("services") or {}).get(service) or {}
    if not isinstance(own, dict):
        raise ConfigurationError(f"{regions_dir() / (slug + '.yml')}: services.{service} must be a mapping")
    merged = {**(document.get("settings") or {}), **own}
    return {str(key): str(value) for key, value in merged.items() if value is not None}
