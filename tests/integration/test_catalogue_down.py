"""Intake keeps accepting applications while the national catalogue is down, and hears of its changes once it is back."""
import uuid

import eventlet
import requests

from tests.conftest import as_caller
from tests.integration.conftest import REGIONS, auth, valid_submission


def test_intake_accepts_while_catalogue_is_down_and_catches_up_after(stack):
    catalogue = next(process for process in stack.processes if process.service == "catalogue")
    catalogue.stop()
    try:
        for region in REGIONS:
            response = requests.post(f"{stack.urls[region]}/api/v1/applications", json=valid_submission(region), timeout=30,
                                     headers=auth("operator", region))
            assert response.status_code == 201, response.text
    finally:
        restarted = stack.start("catalogue", database_url=stack.catalogue_db)
        stack.urls["catalogue"] = restarted.url
    listing = requests.get(f"{restarted.url}/api/v1/services", timeout=10, headers=auth("operator", "jizzakh")).json()
    assert listing["total"] >= 20
    # A change made after the restart reaches every intake's copy through the events, as before the outage.
    code = f"after-outage-{uuid.uuid4().hex[:6]}"
    with stack.rpc(caller=as_caller("catalogue-admin")) as cluster:
        base = cluster.catalogue.get_service(valid_submission("jizzakh")["service_code"])
        definition = {key: base[key] for key in ("names", "descriptions", "group", "keywords", "required_documents",
                                                 "attributes", "fee", "deadline_working_days")}
        definition.update(code=code, agency=base["agency"]["code"], regions=list(REGIONS))
        cluster.catalogue.upsert_service(definition)
        version = cluster.catalogue.publish_service(code)["version"]
    for region in REGIONS:
        for _ in range(150):
            with stack.rpc() as cluster:
                entry = getattr(cluster, f"intake_{region}").catalogue_entry(code)
            if entry and entry["version"] == version:
                break
            eventlet.sleep(0.1)
        assert entry and entry["version"] == version and entry["state"] == "published", (region, entry)
        body = {**valid_submission(region), "service_code": code}
        created = requests.post(f"{stack.urls[region]}/api/v1/applications", json=body, timeout=30,
                                headers=auth("operator", region))
        assert created.status_code == 201, created.text
