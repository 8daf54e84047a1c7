"""`oss`: run, migrate and feed the platform's services (the runner behind `make run`); its length is
that of eight commands' help texts and arguments, each command itself a few lines."""
import warnings

warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")

import eventlet  # noqa: E402

eventlet.monkey_patch()  # must precede every import that opens sockets

import argparse  # noqa: E402
import gc  # noqa: E402
import importlib  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import yaml  # noqa: E402
from nameko.exceptions import RemoteError  # noqa: E402

from oss_common.auth import MAX_TTL_SECONDS, ROLES, SigningKey  # noqa: E402
from oss_common.broker import ensure_quorum_rpc_queue, ensure_shared_exchanges  # noqa: E402
from oss_common.config import PROJECT_ROOT, ConfigurationError, var_dir  # noqa: E402
from oss_common.consumers import event_handlers  # noqa: E402
from oss_common.regions import Region, deployment_regions, get_region  # noqa: E402
from oss_common.rpc import use_broker_permissions  # noqa: E402
from oss_common.service_kinds import (  # noqa: E402
    DEMO_REGIONS, SERVICES, deployed_regions, jwks_file, runs_nationally, signing_key_file, group_members, instances, process_name, service_class,
    service_config, service_kind,
)
from oss_common.status import deployment_status, format_status  # noqa: E402
from oss_common.supervisor import IdentityProviderProcess, run_group, run_stack  # noqa: E402

log = logging.getLogger("oss")


MAIN_HELP = """\
oss: run and look after the OSS platform's services.

Every service is a nameko process on the shared RabbitMQ bus with its own database.
Settings come from, strongest first: environment variables (AMQP_URI, DATABASE_URL,
HTTP_PORT, METRICS_PORT, ...), the oblast's deployment file deploy/regions/<slug>.yml
(deploy/regions/national.yml for national services), then defaults derived from the region
(ports 8100 + n / 9100 + n, a SQLite file under var/).

First steps on a new machine:
  oss run --national                       the catalogue (and other national services)
  oss catalogue load services/catalogue/seed/services.yml
  oss run --region jizzakh                 every service of Jizzakh, one process each
  oss status                               who is up, queue depths, outbox backlog

`oss <command> --help` explains each command."""

RUN_HELP = """\
Run services in the foreground until Ctrl-C (or SIGTERM); schema migrations are applied first.

  oss run --region jizzakh                 every regional service of Jizzakh, each its own process
  oss run --national                       the national services, each its own process
  oss run --service intake --region jizzakh   one service in this process (what a container runs)
  oss run --service reporting --national   the national instance of a regional service

With --region/--national, if one process dies the others are stopped and the exit status is 1,
so a service manager (systemd, Kubernetes) can restart the group."""

STATUS_HELP = """\
Show, for each national service and each service of the given regions:
  STATE         up when GET /health answers 200, DOWN otherwise
  RPC QUEUE     messages waiting in rpc-<service> and how many consumers serve it
  EVENT QUEUES  events waiting in each <service>.<purpose> queue
  RETRY         events waiting out a back-off after a failure that passes (<queue>.retry)
  DEAD          events parked in the dead-letter queues (<queue>.dead); should be 0 (oss dead-letters)
  OUTBOX        events committed but not yet published (oss_outbox_pending_events)
Ports come from the same configuration `oss run` uses; the broker from AMQP_URI.
Exit status 0 when every service is up, 1 otherwise."""


def ensure_signing_key() -> SigningKey:
    """The single machine's token issuer (`make run`): signing_key_file(), and its public key in
    jwks_file(), made when there is none yet (the private key readable by its owner only)."""
    path = signing_key_file()
    if not path.exists():
        add_signing_key(path, jwks_file())
    return SigningKey.load(path)


def add_signing_key(key_path: Path, jwks_path: Path, region: str | None = None) -> str:
    """A new key pair: the private key into `key_path` (never overwritten), its public key added to
    the JWKS at `jwks_path` beside the keys already there. Returns the new key's kid."""
    from oss_common.auth import new_key_pair

    private, public = new_key_pair(region)
    key_path = Path(key_path)
    key_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ConfigurationError(f"{key_path} exists: give a new file for a new key (the old one keeps signing "
                                 "until you switch to the new file)") from None
    with os.fdopen(descriptor, "w") as handle:
        json.dump(private, handle)
    jwks_path = Path(jwks_path)
    document = json.loads(jwks_path.read_text(encoding="utf-8")) if jwks_path.exists() else {"keys": []}
    document["keys"].append(public)
    jwks_path.parent.mkdir(parents=True, exist_ok=True)
    jwks_path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return public["kid"]


def caller_token(role: str, region: str | None = None) -> str:
    """The token a command acts with: OSS_TOKEN, else one minted for ten minutes with this machine's
    signing key (signing_key_file(); `make run` makes one)."""
    from oss_common.auth import SigningKey, issue_token

    if os.environ.get("OSS_TOKEN"):
        return os.environ["OSS_TOKEN"]
    path = signing_key_file()
    if not path.exists():
        raise ConfigurationError(f"this command acts as a {role}: set OSS_TOKEN to such a token "
                                 f"(`oss token issue --role {role} ...` where the issuer's key is), or keep the "
                                 f"issuer's key in {path}")
    try:
        return issue_token(SigningKey.load(path), role, f"cli-{os.environ.get('USER') or 'oss'}", region=region,
                           ttl_seconds=600)
    except ValueError as exc:
        raise ConfigurationError(f"{path} cannot sign a {role} token: {exc}") from None


def migrate(kind: str, config: dict) -> None:
    from oss_common.database import upgrade

    upgrade(kind.folder / "migrations", config["DATABASE_URL"])


def configure_logging(level: str = "INFO") -> None:
    logging.basicConfig(level=getattr(logging, str(level).upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stdout)
    # AMQP and HTTP access logs are noise at INFO; their errors still show.
    for noisy in ("amqp", "kombu", "nameko.web.server"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def region_arg(kind: str, slug: str | None, national: bool = False) -> Region | None:
    if national:
        if not kind.national_cls:
            raise ConfigurationError(f"{kind.name} has no national instance")
        return None
    if kind.regional:
        return get_region(slug or os.environ.get("REGION"))
    return None


def settle_garbage_collector() -> None:
    """Once a service has started: what exists now (modules, mappers, schemas, statement caches)
    lives as long as the process, so move it out of the collector's sight (gc.freeze), and let
    the youngest generation grow larger before a collection. Python's collector was ~7% of a busy
    intake's CPU, mostly re-scanning those long-lived objects. OSS_GC_THRESHOLD=0 keeps Python's
    defaults."""
    threshold = int(os.environ.get("OSS_GC_THRESHOLD") or 10000)
    if threshold <= 0:
        return
    gc.collect()
    gc.freeze()
    gc.set_threshold(threshold, 20, 20)


def cmd_run(args: argparse.Namespace) -> int | None:
    from nameko.runners import ServiceRunner

    from oss_common.consumers import reject_malformed_messages, tolerate_dropped_connections

    if args.service is None:
        members = group_members(args.region, args.national)
        configure_logging()
        return run_group(members, Path(args.log_dir) if args.log_dir else None, migrate=not args.no_migrate)
    kind = service_kind(args.service)
    region = region_arg(kind, args.region, args.national)
    config = service_config(kind, region)
    configure_logging(config.get("LOG_LEVEL", "INFO"))
    ensure_shared_exchanges(config["AMQP_URI"])
    ensure_quorum_rpc_queue(config["AMQP_URI"], service_class(kind, region).name)
    if not args.no_migrate:
        migrate(kind, config)
    tolerate_dropped_connections()
    reject_malformed_messages()
    runner = ServiceRunner(config)
    runner.add_service(service_class(kind, region))

    def shutdown(signum, frame):
        eventlet.spawn_n(runner.stop)

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    runner.start()
    settle_garbage_collector()
    log.info("%s up: http on %s, metrics on :%s", process_name(kind, region), config["WEB_SERVER_ADDRESS"], config.get("METRICS_PORT"))
    runner.wait()
    return 0


def cmd_migrate(args: argparse.Namespace) -> int | None:
    configure_logging()
    kinds = [service_kind(args.service)] if args.service else list(SERVICES.values())
    regions = deployment_regions(args.regions)
    for kind in kinds:
        for region in instances(kind, regions):
            migrate(kind, service_config(kind, region))
            log.info("migrated %s", process_name(kind, region))
    return 0


def cmd_catalogue_load(args: argparse.Namespace) -> int | None:
    from nameko.standalone.rpc import ClusterRpcProxy

    configure_logging()
    with open(args.file, encoding="utf-8") as handle:
        document = yaml.safe_load(handle)
    from oss_common.auth import CATALOGUE_ADMIN
    from oss_common.callers import caller_context

    config = {"AMQP_URI": os.environ.get("AMQP_URI", "amqp://guest:guest@127.0.0.1:5672/")}
    with ClusterRpcProxy(config, timeout=args.timeout, context_data=caller_context(caller_token(CATALOGUE_ADMIN))) as cluster:
        summary = cluster.catalogue.load_catalogue(document)
    print(f"catalogue loaded from {args.file}: {summary['services_changed']} services changed, "
          f"{summary['services_unchanged']} unchanged, {summary['groups']} groups and {summary['agencies']} agencies changed")
    return 0


def cmd_reporting_rebuild(args: argparse.Namespace) -> int | None:
    kind = service_kind("reporting")
    region = get_region(args.region or os.environ.get("REGION"))
    config = service_config(kind, region)
    configure_logging(config.get("LOG_LEVEL", "INFO"))
    migrate(kind, config)
    from oss_common.auth import REGION_ADMIN

    dependencies = importlib.import_module(f"{kind.package}.dependencies")
    result = dependencies.rebuild_from_intake(config, caller_token(REGION_ADMIN, region.slug), page_size=args.page_size)
    print(f"{process_name(kind, region)} rebuilt from intake_{region.slug}: "
          f"{result['events_read']} events read, {result['events_applied']} applied")
    return 0


def cmd_status(args: argparse.Namespace) -> int | None:
    regions = deployment_regions(args.regions)
    members = group_members(None, True) + [member for region in regions for member in group_members(region.slug, False)]
    amqp_uri = os.environ.get("AMQP_URI", "amqp://guest:guest@127.0.0.1:5672/")
    statuses = deployment_status(members, amqp_uri, host=args.host, timeout=args.timeout)
    print(format_status(statuses, broker_reachable=any(status.rpc is not None for status in statuses)))
    return 0 if all(status.up for status in statuses) else 1


DEAD_LETTERS_HELP = """\
Events a consumer gave up on wait in <queue>.dead (the broker at AMQP_URI); failures that pass
(a database or gateway away) are retried and never land there.
  oss dead-letters list                                 per queue (event and RPC): count, oldest, reasons, dropped
  oss dead-letters show QUEUE MESSAGE_ID                one message, personal data masked
  oss dead-letters replay QUEUE (--id ID ... | --all)   back to the queue it failed on
  oss dead-letters drop QUEUE --id ID --reason TEXT     gone for good; a record stays in <queue>.dropped
QUEUE is the consumer's queue, e.g. notifications_jizzakh.applications (with or without .dead);
MESSAGE_ID is the event id (`list` and `show` print them). Replaying is safe to repeat: consumers
apply an event id once. Fix what the x-error header names before replaying. AMQP_URI: the broker
as the queue's own service user (replay goes through its outlet) or an administrator."""


def deployment_event_topology(regions: list[Region]) -> list[tuple[str, tuple[str, ...]]]:
    """(queue, binding patterns) of every event handler of the deployment's processes."""
    members = group_members(None, True) + [member for region in regions for member in group_members(region.slug, False)]
    return sorted({(queue, tuple(patterns)) for kind, region in members
                   for handler in event_handlers(service_class(kind, region))
                   for queue, patterns in [handler.topology(process_name(kind, region), service_config(kind, region))]})


def deployment_rpc_queues(regions: list[Region]) -> list[str]:
    """`rpc-<service>` of every process of the deployment: malformed requests are parked in its `.dead`."""
    members = group_members(None, True) + [member for region in regions for member in group_members(region.slug, False)]
    return sorted({f"rpc-{service_class(kind, region).name}" for kind, region in members})


def cmd_dead_letters(args: argparse.Namespace) -> int | None:
    import json

    from amqp.exceptions import AccessRefused

    from oss_common.broker import amqp_user
    from oss_common.dead_letters import DeadLetterError, DeadLetters, format_summaries

    amqp_uri = os.environ.get("AMQP_URI", "amqp://guest:guest@127.0.0.1:5672/")
    try:
        with DeadLetters(amqp_uri) as dead_letters:
            if args.action == "list":
                regions = deployment_regions(args.regions)
                queues = [args.queue] if args.queue else [
                    queue for queue, _ in deployment_event_topology(regions)] + deployment_rpc_queues(regions)
                summaries = [dead_letters.summary(queue) for queue in queues]
                print(format_summaries(summaries))
                return 1 if any(summary.messages for summary in summaries) else 0
            if args.action == "show":
                print(json.dumps(dead_letters.show(args.queue, args.message_id), indent=2, ensure_ascii=False, default=str))
                return 0
            if args.action == "replay":
                if bool(args.id) == args.all:
                    raise ConfigurationError("give --id ID (repeatable) or --all")
                replayed = dead_letters.replay(args.queue, None if args.all else set(args.id))
                print(f"replayed {len(replayed)} to {args.queue.removesuffix('.dead')}: {', '.join(replayed) or '-'}")
                return 0
            record = dead_letters.drop(args.queue, args.id, args.reason)
            print(f"dropped {record['event_id']} from {record['queue']}.dead; recorded in {record['queue']}.dropped")
            return 0
    except DeadLetterError as exc:
        print(f"oss dead-letters: {exc}", file=sys.stderr)
        return 1
    except AccessRefused as exc:
        # Another principal's queue (a region's user may touch its own queues only): the broker's own words.
        print(f"oss dead-letters: the broker refused user {amqp_user(amqp_uri)!r}: {exc.reply_text}", file=sys.stderr)
        return 1


def broker_definitions(regions: list[Region] | None = None, prefix: str | None = None) -> dict:
    """The deployment's definitions document (`oss broker definitions`): its principals, and its
    consumers' queues and bindings. `regions` as in --regions (default: every deploy/regions/<slug>.yml)."""
    from oss_common.broker import USER_PREFIX, definitions
    from oss_common.deployment import deployed_slugs

    regions = deployment_regions(regions or ",".join(deployed_slugs()))
    return definitions([region.slug for region in regions], national_notifications=runs_nationally(SERVICES["notifications"]),
                       prefix=prefix or USER_PREFIX, event_queues=deployment_event_topology(regions))


def cmd_broker_definitions(args: argparse.Namespace) -> int | None:
    import json

    sys.stdout.write(json.dumps(broker_definitions(args.regions), indent=2, ensure_ascii=False) + "\n")
    return 0


REGION_ADD_HELP = """\
Add an oblast to the deployment by one command: writes deploy/regions/<slug>.yml from the registry
(its number, names; its districts and OSS centres stay in the registry) and then every artefact that
follows from the region files (`oss deploy generate`): the broker's users, permissions and queues
(rabbitmq/definitions.json), its compose services, PostgreSQL roles and databases, its Kubernetes overlay,
Prometheus targets and Grafana row. Then import the definitions, set its three broker users' passwords,
and start it: `oss run --region <slug>` (or `kubectl apply -k deploy/k8s/overlays/<slug>`)."""


def _regenerate(deploy_dir):
    from oss_common import artefacts

    for path in artefacts.write(Path(deploy_dir)):
        print(f"wrote {path}")
    for path in artefacts.stale_overlays(deploy_dir, artefacts.deployed_slugs()):
        print(f"{path} belongs to no region file: remove it", file=sys.stderr)


def cmd_region_add(args: argparse.Namespace) -> int | None:
    from oss_common import artefacts
    from oss_common.deployment import regions_dir
    from oss_common.regions import _load_registry

    slug = get_region(args.slug).slug
    path = regions_dir() / f"{slug}.yml"
    if path.exists() and not args.force:
        raise ConfigurationError(f"{path} exists already (--force writes it again from the registry)")
    path.write_text(artefacts.region_file(slug), encoding="utf-8")
    _load_registry.cache_clear()
    print(f"wrote {path}")
    _regenerate(args.deploy_dir)
    users = " ".join(f"oss-{kind}-{slug}" for kind in ("intake", "notifications", "reporting"))
    print(f"next: rabbitmqctl import_definitions {Path(args.deploy_dir) / 'rabbitmq' / 'definitions.json'}; "
          f"rabbitmqctl change_password <user> <password> for {users}; set the region file's broker URIs and "
          f"databases; then `oss run --region {slug}` (or docker compose up, or kubectl apply -k "
          f"{Path(args.deploy_dir) / 'k8s' / 'overlays' / slug})")
    return 0


def cmd_deploy_generate(args: argparse.Namespace) -> int | None:
    from oss_common import artefacts

    if args.check:
        stale = artefacts.stale(Path(args.deploy_dir))
        for path in stale:
            print(f"{path} is not what the region files generate", file=sys.stderr)
        return 1 if stale else 0
    _regenerate(args.deploy_dir)
    return 0


TOKEN_HELP = """\
Print a bearer token (JWT, EdDSA) for one caller, signed with the issuer's private key. Roles:
  operator          --region R --centre C [--centre C2 ...]  files and reads applications at its centres
  officer           --region R --agency A [--agency A2 ...]  moves its agencies' applications on
  region-admin      --region R                               exports the region's events (reporting rebuild)
  analyst           (national)                               reads every region's reports
  catalogue-admin   (national)                               edits the catalogue
The key is the file AUTH_SIGNING_KEY_FILE (default var/auth/signing-key.jwk, which `make run` makes);
an oblast's own key (`oss keys new --region R`) signs that oblast's operators, officers and admins only.
Tokens live at most 12 hours.
Use it as: curl -H "Authorization: Bearer $(oss token issue ...)" ..."""


def cmd_token_issue(args: argparse.Namespace) -> int | None:
    from oss_common.auth import SigningKey, issue_token

    path = signing_key_file()
    if not path.exists():
        raise ConfigurationError(f"no signing key at {path}: set AUTH_SIGNING_KEY_FILE, or `oss keys new` (make run does)")
    if args.region:
        get_region(args.region)
    try:
        token = issue_token(SigningKey.load(path), args.role, args.subject, region=args.region,
                            centres=as_codes(args.centre), agencies=as_codes(args.agency),
                            ttl_seconds=int(args.ttl_hours * 3600))
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from None
    print(token)
    return 0


KEYS_HELP = """\
Keys that sign bearer tokens. Services trust the public keys in AUTH_JWKS (files or URLs).

  oss keys new --key K.jwk --jwks jwks.json [--region R]   a new key pair: private key into K.jwk
                                                           (mode 600), public key added to jwks.json
  oss keys retire --kid KID --jwks jwks.json               drop a public key: its tokens stop counting

Rotation without downtime: `keys new` into a new file, publish the JWKS (services re-read it when
a token names a key they do not know), sign with the new file, and `keys retire` the old kid once
the last token it signed has expired (12 hours at most)."""


def cmd_keys_new(args: argparse.Namespace) -> int | None:
    if args.region:
        get_region(args.region)
    kid = add_signing_key(args.key or signing_key_file(), args.jwks or jwks_file(), region=args.region)
    print(kid)
    return 0


def cmd_keys_retire(args: argparse.Namespace) -> int | None:
    path = Path(args.jwks or jwks_file())
    document = json.loads(path.read_text(encoding="utf-8"))
    kept = [key for key in document["keys"] if key.get("kid") != args.kid]
    if len(kept) == len(document["keys"]):
        raise ConfigurationError(f"no key {args.kid} in {path}")
    path.write_text(json.dumps({**document, "keys": kept}, indent=2) + "\n", encoding="utf-8")
    print(f"{args.kid} removed from {path}; {len(kept)} keys left")
    return 0


def as_codes(values: list[str] | None) -> list[str]:
    return [code.strip() for value in values or () for code in value.split(",") if code.strip()]


def demo_tokens(regions: list[Region], signing_key: SigningKey,
                ttl_seconds: int = MAX_TTL_SECONDS) -> list[tuple[str, str]]:
    """A token per role for the demo: an operator (all centres) and an officer (all agencies) per
    region, one analyst, one catalogue admin. Returns [(label, token)]."""
    from oss_common.auth import ANALYST, CATALOGUE_ADMIN, OFFICER, OPERATOR, issue_token

    seed = yaml.safe_load((PROJECT_ROOT / "services" / "catalogue" / "seed" / "services.yml").read_text(encoding="utf-8"))
    agencies = sorted(agency["code"] for agency in seed["agencies"])
    tokens = []
    for region in regions:
        centres = [centre.code for centre in region.centres] or [region.main_centre]
        tokens.append((f"operator {region.slug}", issue_token(signing_key, OPERATOR, f"demo-operator-{region.slug}", region.slug,
                                                              centres=centres, ttl_seconds=ttl_seconds)))
        tokens.append((f"officer {region.slug}", issue_token(signing_key, OFFICER, f"demo-officer-{region.slug}", region.slug,
                                                             agencies=agencies, ttl_seconds=ttl_seconds)))
    tokens.append(("analyst", issue_token(signing_key, ANALYST, "demo-analyst", ttl_seconds=ttl_seconds)))
    tokens.append(("catalogue-admin", issue_token(signing_key, CATALOGUE_ADMIN, "demo-catalogue-admin", ttl_seconds=ttl_seconds)))
    return tokens


def demo_identity_provider(regions: list) -> tuple:
    """The demo's identity provider for the pages of `regions` and the services' settings for it, or
    (None, why not) where it cannot run (no Node.js or its packages: `make oidc`) or another is set."""
    if os.environ.get("AUTH_OIDC_ISSUER"):
        return None, f"the services take the tokens of AUTH_OIDC_ISSUER={os.environ['AUTH_OIDC_ISSUER']}"
    if not IdentityProviderProcess.installed():
        return None, ("NO IDENTITY PROVIDER: Node.js or the provider's packages are missing (deploy/local/ensure-oidc.sh "
                      "installs them as root). The pages fall back to the project's own demo tokens below (paste one); "
                      "a deployment signs staff in at its provider instead.")
    pages = []
    for kind in (SERVICES["intake"], SERVICES["reporting"]):
        for region in instances(kind, regions):
            if kind.name == "intake" or region is None:
                port = service_config(kind, region)["WEB_SERVER_ADDRESS"].rsplit(":", 1)[1]
                page = "desk" if kind.name == "intake" else "dashboard"
                pages += [f"http://{host}:{port}/{page}/" for host in ("127.0.0.1", "localhost")]
    provider = IdentityProviderProcess(pages, log_path=var_dir() / "log" / "oidc-provider.log")
    os.environ.update(AUTH_OIDC_ISSUER=provider.issuer, AUTH_OIDC_AUDIENCE="urn:oss:api")
    return provider, None


def sign_in_banner(provider: IdentityProviderProcess) -> str:
    pages = ", ".join(page for page in provider.pages if page.startswith("http://127.0.0.1:"))
    lines = [f"Staff sign in on the pages ({pages}) at the identity provider {provider.issuer}, as:"]
    lines += [f"  {login:<20} {login.replace('.', '-')}-demo   {role}{', ' + region if region else ''}"
              for login, role, region in IdentityProviderProcess.staff()]
    return "".join(line + "\n" for line in lines)


def cmd_demo(args: argparse.Namespace) -> int | None:
    from services.notifications.demo_sinks import DemoSinks

    regions = deployment_regions(args.regions)
    tokens = demo_tokens(regions, ensure_signing_key())
    path = var_dir() / "demo-tokens.txt"
    path.write_text("".join(f"{label}\t{token}\n" for label, token in tokens), encoding="utf-8")
    os.chmod(path, 0o600)
    provider, no_provider = demo_identity_provider(regions)
    sign_in = sign_in_banner(provider) if provider else f"{no_provider}\n"
    # Citizens' messages go to local sinks (a real SMTP server and an Eskiz-speaking endpoint), shown on a page.
    sinks = DemoSinks(var_dir() / "demo-messages.jsonl").start()
    for key, value in sinks.settings().items():
        os.environ.setdefault(key, str(value))
    banner = (f"Messages sent to citizens (SMS and e-mail, in their language): {sinks.url}\n" + sign_in
              + f"Demo tokens for curl and `oss` (valid 12 hours, `oss token issue` makes more; also in {path}; "
              "send as Authorization: Bearer <token>):\n"
              + "".join(f"  {label:<18} {token}\n" for label, token in tokens))
    try:
        return run_stack(regions, seed=Path(args.seed), banner=banner, provider=provider)
    finally:
        sinks.stop()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="oss", description=MAIN_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser(
        "run", help="run services in the foreground (one, a region's, or the national ones)",
        formatter_class=argparse.RawDescriptionHelpFormatter, description=RUN_HELP)
    run.add_argument("--service", choices=sorted(SERVICES),
                     help="run just this service, in this process (default: every service of --region / --national)")
    run.add_argument("--region", help="region slug from the registry, e.g. jizzakh (or REGION in the environment with --service)")
    run.add_argument("--national", action="store_true",
                     help="the national services: the catalogue and national instances (e.g. national reporting)")
    run.add_argument("--no-migrate", action="store_true", help="do not apply schema migrations first")
    run.add_argument("--log-dir", help="with --region/--national: one log file per service here (default: this terminal)")
    run.set_defaults(func=cmd_run)

    mig = commands.add_parser("migrate", help="apply schema migrations to services' databases")
    mig.add_argument("--service", choices=sorted(SERVICES), help="only this service's database (default: every service's)")
    mig.add_argument("--regions", default=deployed_regions(),
                     help="regions whose databases to migrate, comma-separated (default: %(default)s)")
    mig.set_defaults(func=cmd_migrate)

    catalogue = commands.add_parser("catalogue", help="catalogue administration")
    catalogue_commands = catalogue.add_subparsers(dest="catalogue_command", required=True)
    load = catalogue_commands.add_parser(
        "load", help="load a catalogue file through the running catalogue (idempotent)",
        description="Send a catalogue file (YAML, as services/catalogue/seed/services.yml) to the running national "
                    "catalogue over RPC (AMQP_URI). Services are created or changed, and their version rises, only "
                    "where the file differs; loading the same file again changes nothing.")
    load.add_argument("file", metavar="FILE", help="the catalogue file, e.g. services/catalogue/seed/services.yml")
    load.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the catalogue's answer")
    load.set_defaults(func=cmd_catalogue_load)

    reporting = commands.add_parser("reporting", help="reporting administration")
    reporting_commands = reporting.add_subparsers(dest="reporting_command", required=True)
    rebuild = reporting_commands.add_parser(
        "rebuild", help="empty a region's reporting read model and replay the region's whole event history from intake")
    rebuild.add_argument("--region", help="region slug (or REGION in the environment)")
    rebuild.add_argument("--page-size", type=int, default=1000, help="events fetched per intake export call")
    rebuild.set_defaults(func=cmd_reporting_rebuild)

    status = commands.add_parser(
        "status", help="each service: up or down, queue depths, outbox backlog",
        formatter_class=argparse.RawDescriptionHelpFormatter, description=STATUS_HELP)
    status.add_argument("--regions", default=deployed_regions(),
                        help="regions to look at, comma-separated (default: REGIONS, else every deploy/regions/<slug>.yml: "
                             "%(default)s)")
    status.add_argument("--host", default=os.environ.get("OSS_STATUS_HOST", "127.0.0.1"),
                        help="where the services' HTTP and metrics ports answer (default: %(default)s)")
    status.add_argument("--timeout", type=float, default=2.0, help="seconds to wait for each answer")
    status.set_defaults(func=cmd_status)

    broker = commands.add_parser("broker", help="RabbitMQ administration")
    broker_commands = broker.add_subparsers(dest="broker_command", required=True)
    broker_definitions = broker_commands.add_parser(
        "definitions", help="print the broker definitions (vhost, exchanges, policies, users) for the deployment",
        description="Print RabbitMQ definitions for the regions of deploy/regions/ (or --regions): "
                    "`oss broker definitions > deploy/rabbitmq/definitions.json`, then on the broker "
                    "`rabbitmqctl import_definitions deploy/rabbitmq/definitions.json` and "
                    "`rabbitmqctl change_password oss-<service>-<region> ...` for each user (oss-intake-jizzakh, oss-catalogue, "
                    "...; they have no password until then).")
    broker_definitions.add_argument("--regions", help="comma-separated slugs (default: every deploy/regions/<slug>.yml)")
    broker_definitions.set_defaults(func=cmd_broker_definitions)

    region = commands.add_parser("region", help="the oblasts of the deployment")
    region_commands = region.add_subparsers(dest="region_command", required=True)
    region_add = region_commands.add_parser("add", help="a new oblast: its region file and every artefact from it",
                                            formatter_class=argparse.RawDescriptionHelpFormatter,
                                            description=REGION_ADD_HELP)
    region_add.add_argument("slug", help="the oblast's slug in the registry (oss_common/data/regions.yml), e.g. samarkand")
    region_add.add_argument("--force", action="store_true", help="write its region file again when there is one")
    region_add.add_argument("--deploy-dir", default=str(PROJECT_ROOT / "deploy"), help="where the artefacts go (default: %(default)s)")
    region_add.set_defaults(func=cmd_region_add)

    deploy = commands.add_parser("deploy", help="artefacts generated from the region files")
    deploy_commands = deploy.add_subparsers(dest="deploy_command", required=True)
    generate = deploy_commands.add_parser(
        "generate", help="write definitions, compose, PostgreSQL roles, Kubernetes overlays, Prometheus and Grafana",
        description="Write every artefact under deploy/ that follows from deploy/regions/*.yml (OSS_REGIONS_DIR); "
                    "--check writes nothing and exits 1 when one is stale.")
    generate.add_argument("--check", action="store_true", help="only say which artefacts are stale (exit 1 if any)")
    generate.add_argument("--deploy-dir", default=str(PROJECT_ROOT / "deploy"), help="where the artefacts go (default: %(default)s)")
    generate.set_defaults(func=cmd_deploy_generate)

    dead = commands.add_parser("dead-letters", help="list, show, replay or drop events consumers gave up on",
                               formatter_class=argparse.RawDescriptionHelpFormatter, description=DEAD_LETTERS_HELP)
    dead_commands = dead.add_subparsers(dest="action", required=True)
    dead_list = dead_commands.add_parser("list", help="per dead-letter queue: count, oldest, reasons (exit 1 if any)")
    dead_list.add_argument("queue", nargs="?", help="one queue only (default: every event queue of the deployment)")
    dead_list.add_argument("--regions", default=deployed_regions(), help="regions to look at (default: %(default)s)")
    dead_show = dead_commands.add_parser("show", help="one dead letter, personal data masked")
    dead_show.add_argument("queue")
    dead_show.add_argument("message_id", metavar="MESSAGE_ID")
    dead_replay = dead_commands.add_parser("replay", help="back to the queue they failed on")
    dead_replay.add_argument("queue")
    dead_replay.add_argument("--id", action="append", help="event id to replay (repeatable)")
    dead_replay.add_argument("--all", action="store_true", help="every dead letter of the queue")
    dead_drop = dead_commands.add_parser("drop", help="remove one for good, with the reason recorded")
    dead_drop.add_argument("queue")
    dead_drop.add_argument("--id", required=True, help="event id to drop")
    dead_drop.add_argument("--reason", required=True, help="why (kept in <queue>.dropped with who and when)")
    dead.set_defaults(func=cmd_dead_letters)

    tokens = commands.add_parser("token", help="bearer tokens for the HTTP APIs")
    token_commands = tokens.add_subparsers(dest="token_command", required=True)
    issue = token_commands.add_parser("issue", help="print a signed token for one caller",
                                      formatter_class=argparse.RawDescriptionHelpFormatter, description=TOKEN_HELP)
    issue.add_argument("--role", required=True, choices=list(ROLES))
    issue.add_argument("--region", help="region slug (operator, officer, region-admin)")
    issue.add_argument("--centre", action="append", help="OSS centre code (operator; repeat or comma-separate)")
    issue.add_argument("--agency", action="append", help="agency code (officer; repeat or comma-separate)")
    issue.add_argument("--subject", required=True, help="who: a staff id or login, recorded in audit trails")
    issue.add_argument("--ttl-hours", type=float, default=8.0, help="hours until it expires (default %(default)s)")
    issue.set_defaults(func=cmd_token_issue)

    keys = commands.add_parser("keys", help="the keys that sign bearer tokens", description=KEYS_HELP,
                               formatter_class=argparse.RawDescriptionHelpFormatter)
    key_commands = keys.add_subparsers(dest="keys_command", required=True)
    new_key = key_commands.add_parser("new", help="a new signing key; its public key added to a JWKS")
    new_key.add_argument("--key", help="file for the private key (default: AUTH_SIGNING_KEY_FILE or var/auth/signing-key.jwk)")
    new_key.add_argument("--jwks", help="JWKS file to add the public key to (default: var/auth/jwks.json)")
    new_key.add_argument("--region", help="an oblast's own issuer: its tokens count for this oblast's staff only")
    new_key.set_defaults(func=cmd_keys_new)
    retire = key_commands.add_parser("retire", help="remove a public key from a JWKS")
    retire.add_argument("--kid", required=True, help="the key's id (printed by `keys new`)")
    retire.add_argument("--jwks", help="the JWKS file (default: var/auth/jwks.json)")
    retire.set_defaults(func=cmd_keys_retire)

    demo = commands.add_parser("demo", help="the national catalogue plus intake for each region, until Ctrl-C")
    demo.add_argument("--regions", default=os.environ.get("REGIONS", DEMO_REGIONS),
                      help="regions to run, comma-separated (default: %(default)s)")
    demo.add_argument("--seed", default=str(PROJECT_ROOT / "services" / "catalogue" / "seed" / "services.yml"),
                      help="catalogue file loaded at start (idempotent)")
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int | None:
    args = build_parser().parse_args(argv)
    use_broker_permissions()
    try:
        return args.func(args)
    except ConfigurationError as exc:
        print(f"oss: configuration error: {exc}", file=sys.stderr)
        return 2
    except RemoteError as exc:
        if exc.exc_type not in ("Unauthorized", "Forbidden"):
            raise
        print(f"oss: refused by the service ({exc.exc_type}): {exc.value}", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
