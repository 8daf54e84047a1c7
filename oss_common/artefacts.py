"""Everything under deploy/ that follows from the region files, generated from them: the broker's
definitions, the compose stack (on a three-node RabbitMQ cluster), the PostgreSQL roles and
databases, one Kubernetes overlay per oblast, Prometheus' targets and the Grafana dashboard's rows.

`oss region add <slug>` writes deploy/regions/<slug>.yml from the registry and then these;
`oss deploy generate` writes them again after a region file changed, `oss deploy generate --check`
says which are stale (tests/deploy checks the committed ones are current). Nothing here is edited by hand.
Over 300 lines because it holds one short generator per artefact, and they share the region list and the ports.
"""
import json
from pathlib import Path

import yaml

from oss_common.config import PROJECT_ROOT, ConfigurationError
from oss_common.deployment import NATIONAL_FILE, deployed_slugs, regions_dir
from oss_common.regions import get_region

DEPLOY = PROJECT_ROOT / "deploy"
REGIONAL_KINDS = ("intake", "notifications", "reporting")
# Ports of ARCHITECTURE.md: HTTP base + n, metrics base + n.
PORT_BASES = {"intake": (8100, 9100), "notifications": (8200, 9200), "reporting": (8300, 9300)}
NATIONAL_SERVICES = {"catalogue": ("catalogue", 8000, 9000, ["run", "--service", "catalogue"]),
                     "reporting-national": ("reporting", 8300, 9300, ["run", "--service", "reporting", "--national"])}
BROKER_NODES = ("rabbitmq-1", "rabbitmq-2", "rabbitmq-3")
GENERATED_BY = "Generated from deploy/regions/ by `oss deploy generate` (`oss region add` runs it): do not edit."


def region_file(slug: str) -> str:
    """The text of a new deploy/regions/<slug>.yml: the oblast's settings, its services' own broker
    users and databases; its districts and centres come from the registry."""
    region = get_region(slug)
    if not region.centres:
        raise ConfigurationError(f"the registry has no OSS centres for {slug}: add its districts and centres to "
                                 "oss_common/data/regions.yml (or under districts:/centres: of its file) first")
    n = region.n
    name = region.names["en"]
    return f"""\
# {name} ({region.iso}, n = {n}): the settings of this oblast's service processes.
# `oss run --region {slug}` (and `oss run --service S --region {slug}`) read this file. Names are
# those of the configuration reference in README.md; an environment variable of the same name
# still wins, and what is left out takes its default (HTTP 8100/8200/8300 + {n}, metrics
# 9100/9200/9300 + {n}, SQLite under var/). ${{VAR:default}} reads the environment, so secrets stay out.
region: {slug}
settings: {{}}         # every service of the region
services:            # per service: its own broker user (oss-<service>-<region>) and its own database;
                     # on the cluster every node, `;` between them: amqp://U:P@rabbitmq-1/oss;amqp://U:P@rabbitmq-2/oss;...
  intake:
    AMQP_URI: ${{INTAKE_AMQP_URI:amqp://guest:guest@127.0.0.1:5672/}}  # amqp://oss-intake-{slug}:...@broker/oss
    # DATABASE_URL: postgresql://oss_intake:${{INTAKE_DB_PASSWORD}}@db.{slug}.example/intake_{_db(slug)}
    CATALOGUE_RESYNC_SECONDS: 300
  notifications:
    AMQP_URI: ${{NOTIFICATIONS_AMQP_URI:amqp://guest:guest@127.0.0.1:5672/}}  # amqp://oss-notifications-{slug}:...@broker/oss
    # SMTP_HOST: smtp.{slug}.example
    # SMTP_SECURITY: starttls
    # SMTP_FROM: Davlat xizmatlari markazi <noreply@{slug}.oss.example>
    # SMTP_PASSWORD: ${{SMTP_PASSWORD}}
    # SMS_GATEWAY_URL: https://notify.eskiz.uz/api/message/sms/send
    # SMS_GATEWAY_TOKEN: ${{SMS_GATEWAY_TOKEN}}
    # AGENCY_EMAILS: khokimiyat=devonxona@{slug}.example,cadastre-agency=kadastr@{slug}.example
    DEADLINE_CHECK_SECONDS: 300
  reporting:
    AMQP_URI: ${{REPORTING_AMQP_URI:amqp://guest:guest@127.0.0.1:5672/}}  # amqp://oss-reporting-{slug}:...@broker/oss
# The registry (oss_common/data/regions.yml) already lists this oblast's districts and OSS
# centres; an oblast it does not detail adds them here under districts:/centres: (see README).
"""


def _db(slug):
    return slug.replace("-", "_")


def _env(name):
    return name.upper().replace("-", "_")


def _secret(name, what):
    variable = f"OSS_{_env(name)}_{what}_PASSWORD"
    return f"${{{variable}:?set {variable}}}"


def amqp_uri_list(user: str, hosts=BROKER_NODES, port: int = 5672, vhost: str = "oss", password: str = "...") -> str:
    """A client's AMQP_URI naming every node of the cluster (`;` between them): kombu connects to the
    first that answers and, when its node goes, to the next."""
    return ";".join(f"amqp://{user}:{password}@{host}:{port}/{vhost}" for host in hosts)


def _compose_services(slugs):
    """(name, principal, database, HTTP port, metrics port, command) of every OSS process of the stack."""
    rows = [(name, principal, principal, http, metrics, command)
            for name, (principal, http, metrics, command) in NATIONAL_SERVICES.items()]
    for slug in slugs:
        n = get_region(slug).n
        for kind in REGIONAL_KINDS:
            http, metrics = (base + n for base in PORT_BASES[kind])
            rows.append((f"{kind}-{slug}", f"{kind}-{slug}", f"{kind}_{_db(slug)}", http, metrics,
                         ["run", "--service", kind, "--region", slug]))
    return rows


COMPOSE_HEADER = """\
# {generated}
# The whole stack of deploy/regions/ ({regions}): `docker compose -f deploy/compose.yml up -d` (needs a Docker engine).
# The broker is a three-node RabbitMQ cluster (rabbitmq-1..3, peer discovery by the node list in
# rabbitmq/cluster.conf); every queue that must outlive a node is a quorum queue, and every client's
# AMQP_URI names all three nodes, so it reconnects to another when its node goes.
# Every OSS service is the same image (`oss` console command) with its own user on the broker
# (deploy/rabbitmq/definitions.json) and its own PostgreSQL role owning its own database only.
# Set the secrets first: OSS_RABBITMQ_ERLANG_COOKIE (the cluster's shared secret), POSTGRES_PASSWORD
#   (the superuser, used by nothing but the init script), OSS_<SERVICE>_AMQP_PASSWORD for each broker user
#   (OSS_CATALOGUE_..., OSS_REPORTING_..., OSS_INTAKE_JIZZAKH_..., and so on), OSS_<DATABASE>_DB_PASSWORD for
#   each database role, and OSS_AUTH_JWKS (the URL, or a mounted file, of the token issuers' public keys),
#   OSS_PAYME_MERCHANT_ID_<REGION> and OSS_PAYME_KEY_<REGION> for each oblast's Payme merchant (empty: no online
#   payment). Staff sign in to the pages at an OpenID Connect provider (README "Signing in to the pages"), e.g.
#   Keycloak: OSS_AUTH_OIDC_ISSUER=https://id.gov.example.uz/realms/oss OSS_AUTH_OIDC_AUDIENCE=urn:oss:api
#   OSS_AUTH_OIDC_CLAIMS=role=realm_access.roles, and OSS_<SERVICE>_PUBLIC_URL the address staff reach a
#   service's pages at (WEB_PUBLIC_URL, e.g. OSS_INTAKE_JIZZAKH_PUBLIC_URL=https://desk.jizzakh.gov.example.uz),
# and give the broker users the same passwords once (they are imported without one):
#   docker compose exec rabbitmq-1 rabbitmqctl change_password oss-intake-jizzakh "$OSS_INTAKE_JIZZAKH_AMQP_PASSWORD"
# Ports are those of ARCHITECTURE.md (HTTP 8000 / 8100+n / 8200+n / 8300+n, metrics 9000 / 9100+n ...);
# the broker nodes on 5672 / 5673 / 5674, Prometheus on :9090, Grafana on :3000.
x-oss: &oss
  build:
    context: ..
    dockerfile: deploy/Dockerfile
  image: oss-platform:latest
  entrypoint: ["oss"]
  restart: unless-stopped
  depends_on:
    rabbitmq-1: {{condition: service_healthy}}
    rabbitmq-2: {{condition: service_healthy}}
    rabbitmq-3: {{condition: service_healthy}}
    postgres: {{condition: service_healthy}}
"""


def _payme_secrets(principal):
    """A regional intake's Payme merchant (each oblast its own): id and key from the environment, never a file."""
    region = _env(principal.removeprefix("intake-"))
    return {"PAYME_MERCHANT_ID": f"${{OSS_PAYME_MERCHANT_ID_{region}:-}}", "PAYME_KEY": f"${{OSS_PAYME_KEY_{region}:-}}"}


def compose(slugs: list[str]) -> str:
    services = {}
    for index, node in enumerate(BROKER_NODES):
        services[node] = {
            "image": "rabbitmq:3.10",
            "hostname": node,
            "environment": {"RABBITMQ_ERLANG_COOKIE": "${OSS_RABBITMQ_ERLANG_COOKIE:?set OSS_RABBITMQ_ERLANG_COOKIE}"},
            "volumes": ["./rabbitmq/definitions.json:/etc/rabbitmq/definitions.json:ro",
                        "./rabbitmq/rabbitmq.conf:/etc/rabbitmq/conf.d/20-oss.conf:ro",
                        "./rabbitmq/cluster.conf:/etc/rabbitmq/conf.d/30-cluster.conf:ro",
                        "./rabbitmq/enabled_plugins:/etc/rabbitmq/enabled_plugins:ro",
                        f"{node}:/var/lib/rabbitmq"],
            "ports": [f"{5672 + index}:5672"],
            "healthcheck": {"test": ["CMD", "rabbitmq-diagnostics", "-q", "check_port_connectivity"],
                            "interval": "10s", "retries": 12},
        }
    rows = _compose_services(slugs)
    services["postgres"] = {
        "image": "postgres:15",
        "environment": {"POSTGRES_PASSWORD": "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD}"}
        | {f"OSS_{_env(database)}_DB_PASSWORD": _secret(database, "DB") for _, _, database, _, _, _ in rows},
        "volumes": ["./postgres/create-databases.sql:/docker-entrypoint-initdb.d/create-databases.sql:ro",
                    "postgres:/var/lib/postgresql/data"],
        "healthcheck": {"test": ["CMD", "pg_isready", "-U", "postgres"], "interval": "5s", "retries": 20},
    }
    oss = {}
    for name, principal, database, http, metrics, command in rows:
        user = f"oss-{principal}"
        oss[name] = {
            "command": command,
            "environment": {
                "AMQP_URI": amqp_uri_list(user, password=_secret(principal, "AMQP")),
                "AUTH_JWKS": "${OSS_AUTH_JWKS:?set OSS_AUTH_JWKS to the token issuers JWKS URL or file}",
                "DATABASE_URL": f"postgresql://{database}:{_secret(database, 'DB')}@postgres:5432/{database}",
                # Staff sign in at the ministry's OpenID Connect provider (empty: tokens of AUTH_JWKS only).
                "AUTH_OIDC_ISSUER": "${OSS_AUTH_OIDC_ISSUER:-}",
                "AUTH_OIDC_AUDIENCE": "${OSS_AUTH_OIDC_AUDIENCE:-urn:oss:api}",
                "AUTH_OIDC_CLAIMS": "${OSS_AUTH_OIDC_CLAIMS:-}",
                "WEB_PUBLIC_URL": f"${{OSS_{_env(principal)}_PUBLIC_URL:-}}",
            } | (_payme_secrets(principal) if principal.startswith("intake-") else {}),
            "ports": [f"{http}:{http}", f"{metrics}:{metrics}"],
        }
    tail = {
        "prometheus": {"image": "prom/prometheus:v2.42.0", "volumes": ["./monitoring:/etc/prometheus:ro"],
                       "command": ["--config.file=/etc/prometheus/prometheus.yml"], "ports": ["9090:9090"]},
        "grafana": {"image": "grafana/grafana:10.4.2", "ports": ["3000:3000"],
                    "volumes": ["./monitoring/grafana/provisioning:/etc/grafana/provisioning:ro",
                                "./monitoring/grafana/dashboards:/var/lib/grafana/dashboards:ro"],
                    "depends_on": ["prometheus"]},
    }

    def dump(mapping):
        return yaml.safe_dump(mapping, sort_keys=False, width=1000)

    text = COMPOSE_HEADER.format(generated=GENERATED_BY, regions=", ".join(slugs)) + "services:\n"
    text += _indent(dump(services))
    for name, service in oss.items():
        text += f"  {name}:\n    <<: *oss\n" + _indent(dump(service), 4)
    text += _indent(dump(tail))
    text += dump({"volumes": {node: {} for node in BROKER_NODES} | {"postgres": {}}})
    return text


def _indent(text, spaces=2):
    return "".join(" " * spaces + line if line.strip() else line for line in text.splitlines(keepends=True))


def postgres_sql(slugs: list[str]) -> str:
    lines = [f"-- {GENERATED_BY}",
             "-- One database per service process of deploy/compose.yml, each owned by a role of its own that can",
             "-- connect to nothing else (CONNECT revoked from PUBLIC); no service connects as the superuser.",
             "-- Passwords come from the environment of the postgres container (psql \\getenv, PostgreSQL 15+)."]
    for _, _, database, _, _, _ in _compose_services(slugs):
        lines += [f"\\getenv {database}_password OSS_{_env(database)}_DB_PASSWORD",
                  f"CREATE ROLE {database} LOGIN PASSWORD :'{database}_password';",
                  f"CREATE DATABASE {database} OWNER {database};",
                  f"REVOKE ALL ON DATABASE {database} FROM PUBLIC;"]
    return "\n".join(lines) + "\n"


def kubernetes_overlay(slug: str) -> dict[str, str]:
    """deploy/k8s/overlays/<slug>/: its namespace, the regional base, REGION."""
    nodes = ";".join(f"amqp://oss-intake-{slug}:...@oss-rabbitmq-server-{index}.oss-rabbitmq-nodes.oss-broker/oss"
                     for index in range(3))
    kustomization = f"""\
# {GENERATED_BY}
# {slug}: `kubectl apply -k deploy/k8s/overlays/{slug}`. Create its secret first, in namespace oss-{slug}:
#   kubectl -n oss-{slug} create secret generic oss-region \\
#     --from-literal=INTAKE_AMQP_URI='{nodes}' \\
#     --from-literal=NOTIFICATIONS_AMQP_URI='amqp://oss-notifications-{slug}:...@...' \\
#     --from-literal=REPORTING_AMQP_URI='amqp://oss-reporting-{slug}:...@...' \\
#     --from-literal=INTAKE_DATABASE_URL=postgresql://intake_{_db(slug)}:...@.../intake_{_db(slug)} \\
#     --from-literal=NOTIFICATIONS_DATABASE_URL=... --from-literal=REPORTING_DATABASE_URL=... \\
#     [--from-literal=SMTP_PASSWORD=... --from-literal=SMS_GATEWAY_TOKEN=...] \
#     [--from-literal=PAYME_MERCHANT_ID=... --from-literal=PAYME_KEY=...]
#   (each service its own broker user, naming every node of the cluster of deploy/k8s/rabbitmq/, and its own
#   PostgreSQL role; see README "Trust between oblasts" and "The clustered broker"; PAYME_*: the oblast's
#   Payme merchant, see README "Fees and payments").
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: oss-{slug}
resources:
  - namespace.yaml
  - ../../base/regional
labels:
  - pairs:
      oss.gov.uz/region: {slug}
configMapGenerator:
  - name: oss-settings
    behavior: merge
    literals:
      - REGION={slug}
      # The address staff reach this oblast's pages at (sign-in callbacks; README "Signing in to the pages"):
      # - WEB_PUBLIC_URL=https://desk.{slug}.gov.example.uz
"""
    namespace = f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: oss-{slug}\n"
    return {"kustomization.yaml": kustomization, "namespace.yaml": namespace}


def prometheus(slugs: list[str]) -> str:
    jobs = [{"job_name": f"oss-{name}", "static_configs": [
        {"targets": [f"{name}:{metrics}"], "labels": {"service": principal, "region": "national"}}]}
        for name, (principal, _, metrics, _) in NATIONAL_SERVICES.items()]
    for kind in REGIONAL_KINDS:
        jobs.append({"job_name": f"oss-{kind}", "static_configs": [
            {"targets": [f"{kind}-{slug}:{PORT_BASES[kind][1] + get_region(slug).n}"],
             "labels": {"service": f"{kind}_{slug}", "region": slug}} for slug in slugs]})
    jobs.append({"job_name": "rabbitmq", "static_configs": [
        {"targets": [f"{node}:15692"], "labels": {"node": f"rabbit@{node}"}} for node in BROKER_NODES]})
    document = {"global": {"scrape_interval": "15s", "evaluation_interval": "15s"}, "rule_files": ["alerts.yml"],
                "scrape_configs": jobs}
    return (f"# {GENERATED_BY}\n# Prometheus for the stack of deploy/compose.yml (host names are compose services):\n"
            "# the national services, every service of every region file, and each broker node.\n"
            + yaml.safe_dump(document, sort_keys=False, width=1000))


def grafana_dashboard(slugs: list[str]) -> str:
    template = (DEPLOY / "templates" / "grafana-region-row.json").read_text(encoding="utf-8")
    panels, y = [], 0
    for slug in slugs:
        row = json.loads(template.replace("@SLUG@", slug).replace("@NAME@", get_region(slug).names["en"].removesuffix(" Region")))
        height = max(panel["gridPos"]["y"] + panel["gridPos"]["h"] for panel in row)
        for panel in row:
            panel["gridPos"]["y"] += y
            panels.append({"id": len(panels) + 1, **panel})
        y += height
    dashboard = {
        "uid": "oss-regions", "title": "OSS platform: regions", "description": GENERATED_BY, "tags": ["oss"],
        "timezone": "Asia/Tashkent", "schemaVersion": 39, "version": 1, "editable": True, "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"}, "templating": {"list": []}, "annotations": {"list": []},
        "panels": panels,
    }
    return json.dumps(dashboard, indent=2, ensure_ascii=False) + "\n"


def broker_definitions_text(slugs: list[str]) -> str:
    from oss_common.cli import broker_definitions

    return json.dumps(broker_definitions(",".join(slugs)), indent=2, ensure_ascii=False) + "\n"


def artefacts(slugs: list[str] | None = None) -> dict[Path, str]:
    """Every generated file (its path under deploy/) and its text, for these regions (default: every region file)."""
    slugs = list(slugs or deployed_slugs())
    if not slugs:
        raise ConfigurationError(f"no region files in {regions_dir()}")
    definitions = broker_definitions_text(slugs)
    files = {
        Path("rabbitmq/definitions.json"): definitions,
        Path("k8s/rabbitmq/definitions.json"): definitions,
        Path("compose.yml"): compose(slugs),
        Path("postgres/create-databases.sql"): postgres_sql(slugs),
        Path("monitoring/prometheus.yml"): prometheus(slugs),
        Path("monitoring/grafana/dashboards/oss-regions.json"): grafana_dashboard(slugs),
    }
    for slug in slugs:
        for name, text in kubernetes_overlay(slug).items():
            files[Path("k8s/overlays") / slug / name] = text
    return files


def stale_overlays(deploy_dir: Path, slugs: list[str]) -> list[Path]:
    """Overlay folders of oblasts that have no region file any more."""
    folder = Path(deploy_dir) / "k8s" / "overlays"
    return sorted(path for path in folder.iterdir() if path.is_dir() and path.name not in set(slugs) | {NATIONAL_FILE}) \
        if folder.is_dir() else []


def write(deploy_dir: Path = DEPLOY, slugs: list[str] | None = None) -> list[Path]:
    """Write every artefact that differs from what is generated; returns those written."""
    written = []
    for relative, text in artefacts(slugs).items():
        path = Path(deploy_dir) / relative
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            written.append(path)
    return written


def stale(deploy_dir: Path = DEPLOY, slugs: list[str] | None = None) -> list[Path]:
    """The artefacts that are missing or differ from what the region files generate, and overlays of no region."""
    differing = [Path(deploy_dir) / relative for relative, text in artefacts(slugs).items()
                 if not (Path(deploy_dir) / relative).is_file()
                 or (Path(deploy_dir) / relative).read_text(encoding="utf-8") != text]
    return differing + stale_overlays(deploy_dir, slugs or deployed_slugs())
