"""`oss`: run, migrate and feed the platform's services (the runner behind `make run`)."""
import warnings

warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")

import eventlet  # noqa: E402

eventlet.monkey_patch()  # noqa: E402 - must precede every import that opens sockets

import argparse  # noqa: E402
import importlib  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import yaml  # noqa: E402

from oss_common.config import PROJECT_ROOT, VAR_DIR, ConfigurationError, load_config  # noqa: E402
from oss_common.regions import deployment_regions, get_region  # noqa: E402

log = logging.getLogger("oss")


@dataclass(frozen=True)
class ServiceKind:
    """A kind of service process: where its class lives, its ports, whether it runs per region.

    A regional kind with `national_cls` also has one national instance (`--national`), named
    after the kind and on the base ports (e.g. national reporting on 8300).
    """

    name: str
    cls: str
    http_base: int
    metrics_base: int
    regional: bool
    national_cls: str | None = None

    @property
    def package(self):
        return f"services.{self.name}"

    @property
    def folder(self):
        return PROJECT_ROOT / "services" / self.name


SERVICES = {
    "catalogue": ServiceKind("catalogue", "CatalogueService", 8000, 9000, regional=False),
    "intake": ServiceKind("intake", "IntakeService", 8100, 9100, regional=True),
}
DEMO_REGIONS = "jizzakh,namangan,fergana"


def service_kind(name):
    try:
        return SERVICES[name]
    except KeyError:
        raise ConfigurationError(f"unknown service {name!r}; one of: {', '.join(SERVICES)}") from None


def process_name(kind, region):
    return f"{kind.name}_{region.slug}" if (kind.regional and region) else kind.name


def service_config(kind, region=None):
    """The service's config.yml with the defaults that follow from its region (ports, database file).

    `region` None for a regional kind means its national instance.
    """
    if kind.regional and region is None and not kind.national_cls:
        raise ConfigurationError(f"{kind.name} runs per region: give --region <slug>")
    offset = region.n if (kind.regional and region) else 0
    defaults = {
        "HTTP_PORT": kind.http_base + offset,
        "METRICS_PORT": kind.metrics_base + offset,
        "DATABASE_URL": f"sqlite:///{VAR_DIR / (process_name(kind, region) + '.db')}",
        "REGIONS": os.environ.get("REGIONS", DEMO_REGIONS),
    }
    if kind.regional and region is not None:
        defaults["REGION"] = region.slug
    config = load_config(kind.folder / "config.yml", overrides=defaults)
    if kind.regional and region is not None:
        get_region(config.get("REGION"))
    return config


def service_class(kind, region=None):
    module = importlib.import_module(f"{kind.package}.service")
    if kind.regional and region is None:
        return getattr(module, kind.national_cls)
    cls = getattr(module, kind.cls)
    if kind.regional:
        cls = type(cls.__name__, (cls,), {"name": process_name(kind, region), "__module__": cls.__module__})
    return cls


def migrate(kind, config):
    from oss_common.database import upgrade

    upgrade(kind.folder / "migrations", config["DATABASE_URL"])


def instances(kind, regions):
    """The regions a kind runs for in a deployment; None stands for a national instance."""
    if not kind.regional:
        return [None]
    return ([None] if kind.national_cls else []) + list(regions)


def configure_logging(level="INFO"):
    logging.basicConfig(level=getattr(logging, str(level).upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stdout)
    # AMQP and HTTP access logs are noise at INFO; their errors still show.
    for noisy in ("amqp", "kombu", "nameko.web.server"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def region_arg(kind, slug, national=False):
    if national:
        if not kind.national_cls:
            raise ConfigurationError(f"{kind.name} has no national instance")
        return None
    if kind.regional:
        return get_region(slug or os.environ.get("REGION"))
    return None


def cmd_run(args):
    from nameko.runners import ServiceRunner

    kind = service_kind(args.service)
    region = region_arg(kind, args.region, args.national)
    config = service_config(kind, region)
    configure_logging(config.get("LOG_LEVEL", "INFO"))
    if not args.no_migrate:
        migrate(kind, config)
    runner = ServiceRunner(config)
    runner.add_service(service_class(kind, region))

    def shutdown(signum, frame):
        eventlet.spawn_n(runner.stop)

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    runner.start()
    log.info("%s up: http on %s, metrics on :%s", process_name(kind, region), config["WEB_SERVER_ADDRESS"], config.get("METRICS_PORT"))
    runner.wait()
    return 0


def cmd_migrate(args):
    configure_logging()
    kinds = [service_kind(args.service)] if args.service else list(SERVICES.values())
    regions = deployment_regions(args.regions)
    for kind in kinds:
        for region in instances(kind, regions):
            migrate(kind, service_config(kind, region))
            log.info("migrated %s", process_name(kind, region))
    return 0


def cmd_catalogue_load(args):
    from nameko.standalone.rpc import ClusterRpcProxy

    configure_logging()
    with open(args.file, encoding="utf-8") as handle:
        document = yaml.safe_load(handle)
    config = {"AMQP_URI": os.environ.get("AMQP_URI", "amqp://guest:guest@127.0.0.1:5672/")}
    with ClusterRpcProxy(config, timeout=args.timeout) as cluster:
        summary = cluster.catalogue.load_catalogue(document)
    print(f"catalogue loaded from {args.file}: {summary['services_changed']} services changed, "
          f"{summary['services_unchanged']} unchanged, {summary['groups']} groups and {summary['agencies']} agencies changed")
    return 0


def cmd_demo(args):
    from oss_common.supervisor import run_stack

    return run_stack(deployment_regions(args.regions), seed=Path(args.seed))


def build_parser():
    parser = argparse.ArgumentParser(prog="oss", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run one service process in the foreground")
    run.add_argument("--service", required=True, choices=sorted(SERVICES))
    run.add_argument("--region", help="region slug, for regional services (or REGION in the environment)")
    run.add_argument("--national", action="store_true", help="the national instance of a regional service (reporting)")
    run.add_argument("--no-migrate", action="store_true", help="do not apply schema migrations first")
    run.set_defaults(func=cmd_run)

    mig = commands.add_parser("migrate", help="apply schema migrations to services' databases")
    mig.add_argument("--service", choices=sorted(SERVICES))
    mig.add_argument("--regions", default=os.environ.get("REGIONS", DEMO_REGIONS))
    mig.set_defaults(func=cmd_migrate)

    catalogue = commands.add_parser("catalogue", help="catalogue administration")
    catalogue_commands = catalogue.add_subparsers(dest="catalogue_command", required=True)
    load = catalogue_commands.add_parser("load", help="load a catalogue file through the running catalogue (idempotent)")
    load.add_argument("file")
    load.add_argument("--timeout", type=float, default=30.0)
    load.set_defaults(func=cmd_catalogue_load)

    demo = commands.add_parser("demo", help="the national catalogue plus intake for each region, until Ctrl-C")
    demo.add_argument("--regions", default=os.environ.get("REGIONS", DEMO_REGIONS))
    demo.add_argument("--seed", default=str(PROJECT_ROOT / "services" / "catalogue" / "seed" / "services.yml"))
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigurationError as exc:
        print(f"oss: configuration error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
