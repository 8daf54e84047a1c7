"""Intake keeps accepting applications while the national catalogue is down."""
import requests

from tests.integration.conftest import valid_submission


def test_intake_accepts_while_catalogue_is_down_and_catches_up_after(stack):
    catalogue = next(process for process in stack.processes if process.service == "catalogue")
    catalogue.stop()
    try:
        for region in ("jizzakh", "namangan", "fergana"):
            response = requests.post(f"{stack.urls[region]}/api/v1/applications", json=valid_submission(region), timeout=30)
            assert response.status_code == 201, response.text
    finally:
        restarted = stack.start("catalogue", database_url=stack.catalogue_db)
        stack.urls["catalogue"] = restarted.url
    listing = requests.get(f"{restarted.url}/api/v1/services", timeout=10).json()
    assert listing["total"] >= 20
