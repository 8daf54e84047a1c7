"""A fourth oblast joins by configuration alone: one new deploy/regions/samarkand.yml, no code."""
import shutil

import requests
import yaml

from oss_common.config import PROJECT_ROOT
from oss_common.supervisor import ServiceProcess
from tests.conftest import TEST_AUTH_SECRET, free_port
from tests.integration.conftest import auth, event_listener, valid_submission

OPERATOR = auth("operator", "samarkand", centres=["samarkand-city"])

# Samarkand (UZ-SA, n = 9, prefix SA) is in the registry without districts: its deployment
# file brings them, as a regional IT team would.
SAMARKAND_DISTRICT = "1718401"


def samarkand_file(amqp_uri, database_url, http_port, metrics_port):
    return {
        "region": "samarkand",
        "settings": {"AMQP_URI": amqp_uri},
        "services": {"intake": {"DATABASE_URL": database_url, "HTTP_PORT": http_port, "METRICS_PORT": metrics_port,
                                "CATALOGUE_CACHE_TTL": 0.2}},
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
    http_port, metrics_port = free_port(), free_port()
    document = samarkand_file(stack.amqp_uri, stack.databases.new("intake-samarkand"), http_port, metrics_port)
    (regions_dir / "samarkand.yml").write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")

    # Only where the deployment files are, where scratch files go and the deployment's token key:
    # no AMQP_URI, DATABASE_URL or ports.
    intake = ServiceProcess("intake", region="samarkand", env={"OSS_REGIONS_DIR": regions_dir, "OSS_VAR_DIR": tmp_path,
                                                               "AUTH_SECRET": TEST_AUTH_SECRET},
                            http_port=http_port, log_path=tmp_path / "intake_samarkand.log")
    for key in ("AMQP_URI", "DATABASE_URL", "HTTP_PORT", "METRICS_PORT"):
        intake.env.pop(key, None)
    try:
        intake.start().wait_healthy()
        districts = requests.get(f"{intake.url}/api/v1/districts?lang=en", timeout=10, headers=OPERATOR).json()
        assert districts["region"] == "samarkand"
        assert [item["name"] for item in districts["items"]] == ["Samarkand city", "Kattakurgan city"]

        body = valid_submission("jizzakh", district=SAMARKAND_DISTRICT)  # a seed service offered everywhere
        with event_listener(stack.amqp_uri, "samarkand.application.*") as collect:
            response = _submit_when_catalogue_arrived(intake.url, body)
            assert response.status_code == 201, response.text
            number = response.json()["tracking_number"]
            assert number.startswith("SA-")
            received = collect(until=lambda got: any(event["data"]["tracking_number"] == number for _, event in got))
        assert ("samarkand.application.submitted", "samarkand") in {(key, event["region"]) for key, event in received}

        page = requests.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).text
        assert 'oss_applications_submitted_total{region="samarkand"' in page
    finally:
        intake.stop()


def _submit_when_catalogue_arrived(url, body, timeout=30.0):
    """The region's catalogue copy fills over RPC right after start-up; until then a code is unknown (422)."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        response = requests.post(f"{url}/api/v1/applications", json=body, timeout=30, headers=OPERATOR)
        if response.status_code != 422 or time.monotonic() > deadline:
            return response
        time.sleep(0.3)
