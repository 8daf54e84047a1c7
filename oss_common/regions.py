"""The region registry: Uzbekistan's 14 first-level divisions, their districts and OSS centres."""
import os
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path

import yaml

from oss_common.config import ConfigurationError, as_list
from oss_common.deployment import deployed_slugs, deployment_file, regions_dir

SHIPPED_REGISTRY = Path(__file__).with_name("data") / "regions.yml"


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
    population: int = 0  # inhabitants, as the registry gives them (the national bench spreads its load by it)
    main_centre: str | None = None
    districts: tuple = field(default_factory=tuple)
    centres: tuple = field(default_factory=tuple)

    def district(self, code):
        return next((d for d in self.districts if d.code == code), None)

    def centre(self, code):
        return next((c for c in self.centres if c.code == code), None)

    def port(self, base: int) -> int:
        """This region's port for a regional service whose region ports start at `base`."""
        return base + self.n


def load_registry(path: str | Path | None = None) -> dict[str, "Region"]:
    """Every region by slug: the registry file (OSS_REGISTRY_FILE, else the shipped one), with the
    districts and centres that deployment files (deploy/regions/<slug>.yml) add for oblasts the
    registry does not detail yet."""
    return _load_registry(Path(path or os.environ.get("OSS_REGISTRY_FILE") or SHIPPED_REGISTRY), regions_dir())


def _districts(items):
    return tuple(District(code=str(d["code"]), slug=d["slug"], names=dict(d["names"])) for d in items or ())


def _centres(items):
    return tuple(Centre(code=str(c["code"]), district=str(c["district"]), names=dict(c["names"])) for c in items or ())


@lru_cache(maxsize=None)
def _load_registry(path, deployment_dir):
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
            population=int(item.get("population", 0)),
            main_centre=item.get("main_centre"),
            districts=_districts(item.get("districts")),
            centres=_centres(item.get("centres")),
        )
        regions[region.slug] = region
    for slug in deployed_slugs():
        if slug not in regions:
            raise ConfigurationError(f"deployment file {slug}.yml names no region of the registry; "
                                     f"the registry knows: {', '.join(sorted(regions))}")
        regions[slug] = _extended(regions[slug], deployment_file(slug))
    return regions


def _extended(region, document):
    """The region with the deployment file's districts and centres added; one the registry already
    has may not be redefined there (edit the registry instead), so two sources never disagree."""
    districts, centres = _districts(document.get("districts")), _centres(document.get("centres"))
    if not districts and not centres and not document.get("main_centre"):
        return region
    clashes = {d.code for d in districts} & {d.code for d in region.districts} | \
        ({c.code for c in centres} & {c.code for c in region.centres})
    if clashes:
        raise ConfigurationError(f"deployment file {region.slug}.yml redefines {sorted(clashes)} of the registry")
    all_districts = region.districts + districts
    known = {d.code for d in all_districts}
    strays = sorted(c.code for c in centres if c.district not in known)
    if strays:
        raise ConfigurationError(f"deployment file {region.slug}.yml: centres {strays} are in no district of {region.slug}")
    return replace(region, districts=all_districts, centres=region.centres + centres,
                   main_centre=document.get("main_centre") or region.main_centre)


def all_regions() -> list[Region]:
    return list(load_registry().values())


def get_region(slug: str | None) -> Region:
    """The region with this slug; a clear ConfigurationError for an unknown one."""
    registry = load_registry()
    region = registry.get(str(slug).strip().lower()) if slug else None
    if region is None:
        known = ", ".join(sorted(registry))
        raise ConfigurationError(f"unknown region {slug!r}; the registry knows: {known}")
    return region


def deployment_regions(value: str | list | None) -> list[Region]:
    """The regions a deployment runs, from a list or comma-separated slugs; each must be known."""
    slugs = as_list(value)
    if not slugs:
        raise ConfigurationError("no regions configured: set REGIONS to region slugs, e.g. jizzakh,namangan,fergana")
    return [get_region(slug) for slug in slugs]
