"""The registry of service kinds (catalogue, intake, notifications, reporting) and how one process of a
kind is configured and named; what `oss run`, `oss status`, the supervisor and the OpenAPI writer share."""
import importlib
import os
from dataclasses import dataclass
from pathlib import Path

from oss_common.config import PROJECT_ROOT, ConfigurationError, load_config, var_dir
from oss_common.deployment import NATIONAL_FILE, deployed_slugs, deployment_file, service_settings
from oss_common.regions import Region, get_region


@dataclass(frozen=True)
class ServiceKind:
    """A kind of service process: where its class lives, its ports, whether it runs per region.

    A regional kind with `national_cls` also has one national instance (`--national`), named
    after the kind and on the base ports (e.g. national reporting on 8300). With
    `national_by_choice` the deployment runs either that instance or the regional ones, never
    both: the national one when deploy/regions/national.yml lists the kind under `services:`.
    """

    name: str
    cls: str
    http_base: int
    metrics_base: int
    regional: bool
    national_cls: str | None = None
    national_by_choice: bool = False

    @property
    def package(self) -> str:
        return f"services.{self.name}"

    @property
    def folder(self) -> Path:
        return PROJECT_ROOT / "services" / self.name


SERVICES = {
    "catalogue": ServiceKind("catalogue", "CatalogueService", 8000, 9000, regional=False),
    "intake": ServiceKind("intake", "IntakeService", 8100, 9100, regional=True),
    "notifications": ServiceKind("notifications", "NotificationService", 8200, 9200, regional=True,
                                 national_cls="NotificationService", national_by_choice=True),
    "reporting": ServiceKind("reporting", "ReportingService", 8300, 9300, regional=True, national_cls="NationalReportingService"),
}
DEMO_REGIONS = "jizzakh,namangan,fergana"


def deployed_regions() -> str:
    """REGIONS from the environment, else every oblast with a deploy/regions/<slug>.yml (so that a new
    oblast's file is all national reporting and `oss status` need), else the demo's three."""
    return os.environ.get("REGIONS") or ",".join(deployed_slugs()) or DEMO_REGIONS


def service_kind(name: str) -> ServiceKind:
    try:
        return SERVICES[name]
    except KeyError:
        raise ConfigurationError(f"unknown service {name!r}; one of: {', '.join(SERVICES)}") from None


def process_name(kind: ServiceKind, region: Region | None) -> str:
    return f"{kind.name}_{region.slug}" if (kind.regional and region) else kind.name


def signing_key_file() -> Path:
    """The token issuer's private key on a single machine (`make run`, `oss token issue`):
    AUTH_SIGNING_KEY_FILE or var/auth/signing-key.jwk."""
    return Path(os.environ.get("AUTH_SIGNING_KEY_FILE") or var_dir() / "auth" / "signing-key.jwk")


def jwks_file() -> Path:
    """The public keys services trust on a single machine: var/auth/jwks.json (AUTH_JWKS overrides)."""
    return var_dir() / "auth" / "jwks.json"


def service_config(kind: ServiceKind, region: Region | None = None) -> dict:
    """The service's config.yml with the defaults that follow from its region (ports, database file),
    overridden by the region's deployment file (deploy/regions/<slug>.yml), itself overridden by
    the environment.

    `region` None for a regional kind means its national instance.
    """
    if kind.regional and region is None and not kind.national_cls:
        raise ConfigurationError(f"{kind.name} runs per region: give --region <slug>")
    offset = region.n if (kind.regional and region) else 0
    defaults = {
        "HTTP_PORT": kind.http_base + offset,
        "METRICS_PORT": kind.metrics_base + offset,
        "DATABASE_URL": f"sqlite:///{var_dir() / (process_name(kind, region) + '.db')}",
        "REGIONS": deployed_regions(),
    }
    if jwks_file().exists():
        defaults["AUTH_JWKS"] = str(jwks_file())
    defaults.update(service_settings(region.slug if (kind.regional and region) else NATIONAL_FILE, kind.name))
    if kind.regional and region is not None:
        defaults["REGION"] = region.slug
    config = load_config(kind.folder / "config.yml", overrides=defaults)
    if kind.regional and region is not None:
        get_region(config.get("REGION"))
    return config


def service_class(kind: ServiceKind, region: Region | None = None) -> type:
    module = importlib.import_module(f"{kind.package}.service")
    if kind.regional and region is None:
        return getattr(module, kind.national_cls)
    cls = getattr(module, kind.cls)
    if kind.regional:
        cls = type(cls.__name__, (cls,), {"name": process_name(kind, region), "__module__": cls.__module__})
    return cls


def runs_nationally(kind: ServiceKind) -> bool:
    """Whether the deployment runs the kind's national instance (see ServiceKind)."""
    if not kind.national_cls:
        return False
    return not kind.national_by_choice or kind.name in (deployment_file(NATIONAL_FILE).get("services") or {})


def runs_regionally(kind: ServiceKind) -> bool:
    return kind.regional and not (kind.national_by_choice and runs_nationally(kind))


def instances(kind: ServiceKind, regions: list[Region]) -> list[Region | None]:
    """The regions a kind runs for in a deployment; None stands for a national instance."""
    if not kind.regional:
        return [None]
    return ([None] if runs_nationally(kind) else []) + (list(regions) if runs_regionally(kind) else [])


def group_members(region_slug: str | None, national: bool) -> list[tuple[ServiceKind, Region | None]]:
    """The (kind, region) pairs `oss run --region`/`--national` starts: every regional service of
    the region, or every national service (the catalogue and national instances)."""
    if bool(region_slug) == bool(national):
        raise ConfigurationError("give --service S, or --region <slug> (every service of that region), or --national")
    if national:
        return [(kind, None) for kind in SERVICES.values() if not kind.regional or runs_nationally(kind)]
    region = get_region(region_slug)
    return [(kind, region) for kind in SERVICES.values() if runs_regionally(kind)]
