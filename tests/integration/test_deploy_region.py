"""A new oblast by one command: `oss region add samarkand` writes its region file from the registry
and every artefact from the region files; the broker definitions it generated, imported into the
real broker, let Samarkand's intake, notifications and reporting run each as its own broker user,
and a submission filed at its intake reaches its reporting and its notifications."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import requests
import yaml
from nameko.standalone.rpc import ClusterRpcProxy

from oss_common.cli import broker_definitions
from oss_common.config import PROJECT_ROOT
from oss_common.supervisor import ServiceProcess
from tests.conftest import TEST_JWKS, as_caller, free_port, imported_definitions, wait_for
from tests.integration.conftest import SEED, auth, valid_submission

OPERATOR = auth("operator", "samarkand", centres=["samarkand-city"])
REGIONAL_SERVICES = ("intake", "notifications", "reporting")
SAMARKAND_CITY = "1718401"  # its district in the registry

pytestmark = pytest.mark.usefixtures("rabbitmqctl_available")


def oss(*args, env):
    return subprocess.run([sys.executable, "-m", "oss_common.cli", *args], env=env, cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=120)


def test_samarkand_joins_by_one_command_and_runs_end_to_end_with_its_own_broker_users(tmp_path, monkeypatch):
    regions_dir, deploy_dir = tmp_path / "regions", tmp_path / "deploy"
    shutil.copytree(PROJECT_ROOT / "deploy" / "regions", regions_dir)
    shutil.copytree(PROJECT_ROOT / "deploy", deploy_dir, ignore=shutil.ignore_patterns("regions", "local"))
    env = {key: value for key, value in os.environ.items()
           if key not in ("AMQP_URI", "DATABASE_URL", "REGION", "REGIONS", "HTTP_PORT", "METRICS_PORT")}
    env.update(OSS_REGIONS_DIR=str(regions_dir), OSS_VAR_DIR=str(tmp_path), AUTH_JWKS=TEST_JWKS, PYTHONUNBUFFERED="1")

    added = oss("region", "add", "samarkand", "--deploy-dir", str(deploy_dir), env=env)
    assert added.returncode == 0, added.stderr
    region_file = regions_dir / "samarkand.yml"
    assert f"wrote {region_file}" in added.stdout
    assert yaml.safe_load(region_file.read_text(encoding="utf-8"))["region"] == "samarkand"
    again = oss("region", "add", "samarkand", "--deploy-dir", str(deploy_dir), env=env)
    assert again.returncode == 2 and "exists already" in again.stderr
    assert oss("deploy", "generate", "--check", "--deploy-dir", str(deploy_dir), env=env).returncode == 0
    assert oss("region", "add", "atlantis", "--deploy-dir", str(deploy_dir), env=env).returncode == 2

    # The definitions it wrote are the ones the region files generate, Samarkand's principals among them.
    monkeypatch.setenv("OSS_REGIONS_DIR", str(regions_dir))
    written = json.loads((deploy_dir / "rabbitmq" / "definitions.json").read_text(encoding="utf-8"))
    assert written == broker_definitions()
    assert {"oss-intake-samarkand", "oss-notifications-samarkand", "oss-reporting-samarkand"} <= \
        {user["name"] for user in written["users"]}

    # Its file leaves ports and databases to their defaults; here, free ports instead of 8109/8209/8309
    # (an edit by text: loading the file would resolve its ${VAR:default} values).
    text = region_file.read_text(encoding="utf-8")
    ports = {kind: (free_port(), free_port()) for kind in REGIONAL_SERVICES}
    for kind, (http, metrics) in ports.items():
        text = text.replace(f"\n  {kind}:\n", f"\n  {kind}:\n    HTTP_PORT: {http}\n    METRICS_PORT: {metrics}\n")
    region_file.write_text(text, encoding="utf-8")

    with imported_definitions(("fergana", "jizzakh", "namangan", "samarkand")) as broker:
        catalogue_port = free_port()
        catalogue = ServiceProcess("catalogue", http_port=catalogue_port, log_path=tmp_path / "logs" / "catalogue.log",
                                   env={**env, "AMQP_URI": broker("catalogue"), "HTTP_PORT": catalogue_port, "METRICS_PORT": 0,
                                        "DATABASE_URL": f"sqlite:///{tmp_path / 'catalogue.db'}"}).start()
        oblast = None
        try:
            catalogue.wait_healthy()
            with ClusterRpcProxy({"AMQP_URI": broker("ministry")}, timeout=30,
                                 context_data=as_caller("catalogue-admin")) as cluster:
                cluster.catalogue.load_catalogue(yaml.safe_load(SEED.read_text(encoding="utf-8")))
            # Each service of the oblast as its own broker user, as its region file reads them from the environment.
            oblast_env = dict(env, INTAKE_AMQP_URI=broker("intake_samarkand"),
                              NOTIFICATIONS_AMQP_URI=broker("notifications_samarkand"),
                              REPORTING_AMQP_URI=broker("reporting_samarkand"))
            oblast = subprocess.Popen([sys.executable, "-m", "oss_common.cli", "run", "--region", "samarkand",
                                       "--log-dir", str(tmp_path / "logs")], env=oblast_env, cwd=PROJECT_ROOT,
                                      start_new_session=True)
            url = {kind: f"http://127.0.0.1:{http}" for kind, (http, _) in ports.items()}
            for kind in REGIONAL_SERVICES:
                _wait_healthy(oblast, url[kind])
            districts = requests.get(f"{url['intake']}/api/v1/districts?lang=en", timeout=10, headers=OPERATOR).json()
            assert districts["region"] == "samarkand"
            assert districts["items"][0]["name"] == "Samarkand city" and len(districts["items"]) == 16

            body = valid_submission("jizzakh", district=SAMARKAND_CITY)  # a seed service offered everywhere
            response = _submit_when_catalogue_arrived(url["intake"], body)
            assert response.status_code == 201, response.text
            number = response.json()["tracking_number"]
            assert number.startswith("SA-")

            analyst = auth("analyst")
            wait_for(lambda: requests.get(f"{url['reporting']}/api/v1/reports/summary", headers=analyst,
                                          timeout=10).json()["totals"]["applications"] == 1, message="reporting_samarkand's count")
            deliveries = wait_for(lambda: requests.get(f"{url['notifications']}/api/v1/deliveries", params={"tracking": number},
                                                       headers=OPERATOR, timeout=10).json()["items"], message="the delivery")
            assert [(item["channel"], item["audience"]) for item in deliveries] == [(body["applicant"]["channel"], "citizen")]
            page = requests.get(f"http://127.0.0.1:{ports['intake'][1]}/metrics", timeout=10).text
            assert 'oss_applications_submitted_total{region="samarkand"' in page
        finally:
            returncode = None
            if oblast is not None:
                oblast.send_signal(signal.SIGTERM)
                returncode = oblast.wait(30)
            catalogue.stop()
        assert returncode == 0, f"oss run --region samarkand stopped with {returncode}; see {tmp_path / 'logs'}"


def _wait_healthy(oblast, url, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert oblast.poll() is None, f"oss run --region samarkand exited with {oblast.returncode}"
        try:
            if requests.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url}/health did not answer within {timeout:.0f}s")


def _submit_when_catalogue_arrived(url, body, timeout=30.0):
    """The region's catalogue copy fills over RPC right after start-up; until then a code is unknown (422)."""
    deadline = time.monotonic() + timeout
    while True:
        response = requests.post(f"{url}/api/v1/applications", json=body, timeout=30, headers=OPERATOR)
        if response.status_code != 422 or time.monotonic() > deadline:
            return response
        time.sleep(0.3)
