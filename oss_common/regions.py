"""The region registry: Uzbekistan's 14 first-level divisions, their districts and OSS centres."""
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import yaml

from oss_common.config import ConfigurationError, as_list

REGISTRY_FILE = Path(os.environ.get("OSS_REGISTRY_FILE") or Path(__file__).with_name("data") / "regions.yml")


@dataclass(frozen=True)
class District:
    code: str
    slug: str
    names: dict


@dataclass(frozen=True)
class Centre:
    code: str
    district: str
    names: dict


@dataclass(frozen=True)
class Region:
    n: int
    iso: str
    slug: str
    prefix: str
    names: dict
    soato: str = ""
    main_centre: str | None = None
    districts: tuple = field(default_factory=tuple)
    centres: tuple = field(default_factory=tuple)

    def district(self, code):
        return next((d for d in self.districts if d.code == code), None)

    def centre(self, code):
        return next((c for c in self.centres if c.code == code), None)

    def port(self, base):
        """This region's port for a regional service whose region ports start at `base`."""
        return base + self.n


@lru_cache(maxsize=None)
def load_registry(path=REGISTRY_FILE):
    with open(path, encoding="utf-8") as handle:
        raw = yaml.safe_load(handle)
    regions = {}
    for item in raw["regions"]:
        region = Region(
            n=int(item["n"]),
            iso=item["iso"],
            slug=item["slug"],
            prefix=item["prefix"],
            names=dict(item["names"]),
            soato=str(item.get("soato", "")),
            main_centre=item.get("main_centre"),
            districts=tuple(
                District(code=str(d["code"]), slug=d["slug"], names=dict(d["names"]))
                for d in item.get("districts") or ()
            ),
            centres=tuple(
                Centre(code=c["code"], district=str(c["district"]), names=dict(c["names"]))
                for c in item.get("centres") or ()
            ),
        )
        regions[region.slug] = region
    return regions


def all_regions():
    return list(load_registry().values())


def get_region(slug):
    """The region with this slug; a clear ConfigurationError for an unknown one."""
    registry = load_registry()
    region = registry.get(str(slug).strip().lower()) if slug else None
    if region is None:
        known = ", ".join(sorted(registry))
        raise ConfigurationError(f"unknown region {slug!r}; the registry knows: {known}")
    return region


def deployment_regions(value):
    """The regions a deployment runs, from a list or comma-separated slugs; each must be known."""
    slugs = as_list(value)
    if not slugs:
        raise ConfigurationError("no regions configured: set REGIONS to region slugs, e.g. jizzakh,namangan,fergana")
    return [get_region(slug) for slug in slugs]
