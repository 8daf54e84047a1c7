"""A fourth oblast joins by configuration alone: one new deploy/regions/samarkand.yml, no code;
`oss run --region samarkand` then runs its intake, notifications and reporting."""
import os
import shutil
import signal
import subprocess
import sys
import time

import requests
import yaml

from oss_common.config import PROJECT_ROOT
from tests.conftest import TEST_JWKS, free_port
from tests.integration.conftest import auth, event_listener, valid_submission
from tests.integration.test_notifications import wait_for

OPERATOR = auth("operator", "samarkand", centres=["samarkand-city"])
REGIONAL_SERVICES = ("intake", "notifications", "reporting")

# Samarkand (UZ-SA, n = 9, prefix SA) is in the registry without districts: its deployment
# file brings them, as a regional IT team would.
SAMARKAND_DISTRICT = "1718401"


def samarkand_file(amqp_uri, services):
    return {
        "region": "samarkand",
        "settings": {"AMQP_URI": amqp_uri, "CATALOGUE_CACHE_TTL": 0.2},
        "services": services,
        "main_centre": "samarkand-city",
        "districts": [
            {"code": SAMARKAND_DISTRICT, "slug": "samarkand-city",
             "names": {"uz": "Samarqand shahri", "ru": "город Самарканд", "en": "Samarkand city"}},
            {"code": "1718406", "slug": "kattakurgan-city",
             "names": {"uz": "Kattaqo‘rg‘on shahri", "ru": "город Каттакурган", "en": "Kattakurgan city"}},
        ],
        "centres": [
            {"code": "samarkand-city", "district": SAMARKAND_DISTRICT,
             "names": {"uz": "Samarqand shahri davlat xizmatlari markazi",
                       "ru": "Центр государственных услуг города Самарканд",
                       "en": "Samarkand city Public Services Centre"}},
        ],
    }


def test_samarkand_runs_from_its_deployment_file_alone(stack, tmp_path):
    regions_dir = tmp_path / "regions"
    shutil.copytree(PROJECT_ROOT / "deploy" / "regions", regions_dir)
    services = {kind: {"DATABASE_URL": stack.databases.new(f"{kind}-samarkand"), "HTTP_PORT": free_port(),
                       "METRICS_PORT": free_port()} for kind in REGIONAL_SERVICES}
    document = samarkand_file(stack.amqp_uri, services)
    (regions_dir / "samarkand.yml").write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    url = {kind: f"http://127.0.0.1:{settings['HTTP_PORT']}" for kind, settings in services.items()}

    # Only where the deployment files are, where scratch files go and the deployment's token key:
    # no AMQP_URI, DATABASE_URL, REGION or ports.
    env = {key: value for key, value in os.environ.items()
           if key not in ("AMQP_URI", "DATABASE_URL", "REGION", "REGIONS", "HTTP_PORT", "METRICS_PORT")}
    env.update(OSS_REGIONS_DIR=str(regions_dir), OSS_VAR_DIR=str(tmp_path), AUTH_JWKS=TEST_JWKS,
               PYTHONUNBUFFERED="1")
    oblast = subprocess.Popen([sys.executable, "-m", "oss_common.cli", "run", "--region", "samarkand",
                               "--log-dir", str(tmp_path / "logs")], env=env, cwd=PROJECT_ROOT, start_new_session=True)
    try:
        for kind in REGIONAL_SERVICES:
            _wait_healthy(oblast, url[kind])
        districts = requests.get(f"{url['intake']}/api/v1/districts?lang=en", timeout=10, headers=OPERATOR).json()
        assert districts["region"] == "samarkand"
        assert [item["name"] for item in districts["items"]] == ["Samarkand city", "Kattakurgan city"]

        body = valid_submission("jizzakh", district=SAMARKAND_DISTRICT)  # a seed service offered everywhere
        with event_listener(stack.amqp_uri, "samarkand.application.*") as collect:
            response = _submit_when_catalogue_arrived(url["intake"], body)
            assert response.status_code == 201, response.text
            number = response.json()["tracking_number"]
            assert number.startswith("SA-")
            received = collect(until=lambda got: any(event["data"]["tracking_number"] == number for _, event in got))
        assert ("samarkand.application.submitted", "samarkand") in {(key, event["region"]) for key, event in received}

        # The oblast's reporting counts it and its notifications record the message to the applicant.
        analyst = auth("analyst")
        wait_for(lambda: requests.get(f"{url['reporting']}/api/v1/reports/summary", headers=analyst,
                                      timeout=10).json()["totals"]["applications"] == 1, message="reporting_samarkand's count")
        deliveries = wait_for(lambda: requests.get(f"{url['notifications']}/api/v1/deliveries", params={"tracking": number},
                                                   headers=OPERATOR, timeout=10).json()["items"], message="the delivery")
        assert [(item["channel"], item["audience"]) for item in deliveries] == [(body["applicant"]["channel"], "citizen")]

        page = requests.get(f"http://127.0.0.1:{services['intake']['METRICS_PORT']}/metrics", timeout=10).text
        assert 'oss_applications_submitted_total{region="samarkand"' in page
    finally:
        oblast.send_signal(signal.SIGTERM)
        returncode = oblast.wait(30)
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
