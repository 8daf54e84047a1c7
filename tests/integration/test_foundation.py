"""The foundation against a real broker and real databases: one catalogue, three regional intakes."""
import re
import uuid
from datetime import datetime, timedelta

import eventlet
import requests

from oss_common.calendar import local_date
from oss_common.regions import get_region
from tests.conftest import as_caller, wait_for
from tests.integration.conftest import REGIONS, auth, event_listener, post, valid_submission

PREFIX = {"jizzakh": "JI", "namangan": "NG", "fergana": "FA"}


def submit(stack, region, body=None, **headers):
    return post(f"{stack.urls[region]}/api/v1/applications", body or valid_submission(region),
                **{**auth("operator", region), **headers})


def total(stack, region):
    response = requests.get(f"{stack.urls[region]}/api/v1/applications", params={"page_size": 1}, timeout=10,
                            headers=auth("operator", region))
    assert response.status_code == 200
    return response.json()["total"]


def test_each_region_numbers_with_its_own_prefix(stack):
    for region in REGIONS:
        response = submit(stack, region)
        assert response.status_code == 201, response.text
        body = response.json()
        year = local_date(datetime.fromisoformat(body["submitted_at"])).year
        assert re.fullmatch(rf"{PREFIX[region]}-{year}-\d{{6}}", body["tracking_number"]), body["tracking_number"]
        assert body["status"] == "submitted"
        assert body["due_date"] > body["submitted_at"][:10]
        assert response.headers["Location"].endswith(body["tracking_number"])
        fetched = requests.get(f"{stack.urls[region]}/api/v1/applications/{body['tracking_number']}", timeout=10,
                               headers=auth("operator", region)).json()
        assert fetched["history"][0]["to"] == "submitted"
        assert fetched["applicant"]["pinfl"] == "31234567890123"


def test_a_jizzakh_binding_sees_jizzakh_events_only(stack):
    with event_listener(stack.amqp_uri, "jizzakh.application.*") as collect:
        numbers = {region: submit(stack, region).json()["tracking_number"] for region in REGIONS}
        received = collect(until=lambda got: any(body["data"]["tracking_number"] == numbers["jizzakh"] for _, body in got))
        eventlet.sleep(1.0)  # give stray events of other regions time to arrive, if they were going to
        received = collect(timeout=0.5)
    assert received, "no Jizzakh event arrived"
    assert {key for key, _ in received} == {"jizzakh.application.submitted"}
    assert {body["region"] for _, body in received} == {"jizzakh"}
    mine = [body for _, body in received if body["data"]["tracking_number"] == numbers["jizzakh"]]
    assert len(mine) == 1
    event = mine[0]
    assert set(event) == {"event_id", "type", "region", "occurred_at", "schema_version", "producer", "data"}
    assert event["type"] == "application.submitted" and event["producer"] == "intake_jizzakh"
    assert event["occurred_at"].endswith("Z")
    assert "31234567890123" not in str(event) and "Test Applicant" not in str(event)
    assert event["data"]["service_name"]["ru"]


def test_catalogue_change_reaches_every_intake(stack):
    code = f"pilot-{uuid.uuid4().hex[:6]}"
    with stack.rpc(caller=as_caller("catalogue-admin")) as cluster:
        base = cluster.catalogue.get_service("photocopying") if _has(cluster, "photocopying") else \
            cluster.catalogue.list_services(state="published")[0]
        definition = {key: base[key] for key in ("names", "descriptions", "group", "keywords", "required_documents",
                                                 "attributes", "fee", "deadline_working_days")}
        definition.update(code=code, agency=base["agency"]["code"], regions=["namangan"])
        created = cluster.catalogue.upsert_service(definition)
        assert created["state"] == "draft" and created["version"] == 1
        published = cluster.catalogue.publish_service(code)
        assert published["version"] == 2
    for region in REGIONS:
        def seen(region=region):
            with stack.rpc() as cluster:
                entry = getattr(cluster, f"intake_{region}").catalogue_entry(code)
            return entry if entry and entry["version"] == 2 else None
        entry = wait_for(seen)
        assert entry is not None, f"intake_{region} never saw version 2 of {code}"
        assert entry["state"] == "published" and entry["regions"] == ["namangan"]
    body = valid_submission("namangan", service_code=base["code"])
    body["service_code"] = code
    assert submit(stack, "namangan", body).status_code == 201
    body = valid_submission("jizzakh", service_code=base["code"])
    body["service_code"] = code
    refused = submit(stack, "jizzakh", body)
    assert refused.status_code == 422
    assert "not offered in jizzakh" in refused.json()["fields"]["service_code"][0]
    with stack.rpc(caller=as_caller("catalogue-admin")) as cluster:
        cluster.catalogue.retire_service(code)
    wait_for(lambda: _entry_state(stack, "namangan", code) == "retired")
    retired = submit(stack, "namangan", body)
    assert retired.status_code == 422 and "retired" in retired.json()["fields"]["service_code"][0]


def _has(cluster, code):
    return any(service["code"] == code for service in cluster.catalogue.list_services(state="published"))


def _entry_state(stack, region, code):
    with stack.rpc() as cluster:
        entry = getattr(cluster, f"intake_{region}").catalogue_entry(code)
    return entry and entry["state"]


def test_two_intake_processes_of_one_region_never_share_a_tracking_number(stack):
    second = stack.start("intake", region="jizzakh", database_url=stack.intake_db["jizzakh"], migrate=False)
    try:
        before = total(stack, "jizzakh")
        urls = [stack.urls["jizzakh"], second.url]
        pool = eventlet.GreenPool(16)

        def one(index):
            return post(f"{urls[index % 2]}/api/v1/applications", valid_submission("jizzakh"), **auth("operator", "jizzakh"))

        responses = list(pool.imap(one, range(80)))
        assert [r.status_code for r in responses] == [201] * 80, {r.status_code: r.text for r in responses if r.status_code != 201}
        numbers = [r.json()["tracking_number"] for r in responses]
        assert len(set(numbers)) == 80
        assert total(stack, "jizzakh") == before + 80
    finally:
        second.stop()


def test_the_same_idempotency_key_yields_one_application(stack):
    key = str(uuid.uuid4())
    before = total(stack, "fergana")
    body = valid_submission("fergana")
    first = submit(stack, "fergana", body, **{"Idempotency-Key": key})
    second = submit(stack, "fergana", body, **{"Idempotency-Key": key})
    assert first.status_code == 201 and second.status_code == 200
    assert first.json()["tracking_number"] == second.json()["tracking_number"]
    with stack.rpc(caller=as_caller("operator", "fergana")) as cluster:
        third = cluster.intake_fergana.submit_application(body, idempotency_key=key)
    assert third["tracking_number"] == first.json()["tracking_number"]
    assert total(stack, "fergana") == before + 1
    other = dict(body, documents=body["documents"] + ["extra-document"])
    reused = submit(stack, "fergana", other, **{"Idempotency-Key": key})
    assert reused.status_code == 422 and reused.json()["error"] == "idempotency_key_reused"
    assert total(stack, "fergana") == before + 1


def test_concurrent_retries_with_one_key_store_one_application(stack):
    key = str(uuid.uuid4())
    body = valid_submission("namangan")
    before = total(stack, "namangan")
    pool = eventlet.GreenPool(8)
    responses = list(pool.imap(lambda _: submit(stack, "namangan", body, **{"Idempotency-Key": key}), range(8)))
    assert {r.status_code for r in responses} <= {200, 201}
    assert len({r.json()["tracking_number"] for r in responses}) == 1
    assert total(stack, "namangan") == before + 1


def test_workflow_over_http_keeps_who_when_why(stack):
    number = submit(stack, "jizzakh").json()["tracking_number"]
    url = f"{stack.urls['jizzakh']}/api/v1/applications/{number}/transitions"
    for target in ("accepted", "in_review", "approved", "issued"):
        response = post(url, {"to": target}, **auth("officer", "jizzakh", subject="karimov"))
        assert response.status_code == 200, response.text
        assert response.json()["status"] == target
    refused = post(url, {"to": "withdrawn", "reason": "changed my mind"}, **auth("officer", "jizzakh"))
    assert refused.status_code == 409
    assert refused.json()["error"] == "transition_not_allowed" and "to" in refused.json()["fields"]
    detail = requests.get(f"{stack.urls['jizzakh']}/api/v1/applications/{number}", timeout=10,
                          headers=auth("officer", "jizzakh")).json()
    assert [h["to"] for h in detail["history"]] == ["submitted", "accepted", "in_review", "approved", "issued"]
    assert all(h["actor"] for h in detail["history"]) and detail["history"][1]["actor"] == "officer:karimov"
    assert detail["status"] == "issued" and detail["allowed_transitions"] == []


def test_status_change_event_carries_what_notifications_need(stack):
    number = submit(stack, "fergana").json()["tracking_number"]
    with event_listener(stack.amqp_uri, "fergana.application.status_changed") as collect:
        url = f"{stack.urls['fergana']}/api/v1/applications/{number}/transitions"
        assert post(url, {"to": "returned_for_correction", "reason": "photo missing"}, **auth("officer", "fergana")).status_code == 200
        received = collect(until=lambda got: any(b["data"]["tracking_number"] == number for _, b in got))
    event = next(body for _, body in received if body["data"]["tracking_number"] == number)
    data = event["data"]
    assert data["status"] == "returned_for_correction" and data["previous_status"] == "submitted"
    assert data["reason"] == "photo missing" and data["service_name"]["en"]
    assert data["contact"]["phone"] == "+998901234567"


def listing(stack, region, role="operator", **params):
    response = requests.get(f"{stack.urls[region]}/api/v1/applications", params=params, timeout=10,
                            headers=auth(role, region))
    assert response.status_code == 200, response.text
    return response.json()


def whole_listing(stack, region, role="operator", **params):
    """Every page of a listing (other tests of the session share these databases)."""
    items, page = [], 1
    while True:
        answer = listing(stack, region, role, page=page, page_size=500, **params)
        items.extend(answer["items"])
        if len(items) >= answer["total"] or not answer["items"]:
            return items
        page += 1


def test_list_filters_and_pages(stack):
    region = get_region("namangan")
    district = region.districts[-1].code
    other = seed_other_service("namangan")
    mine = {"service": other["service_code"], "district": district}
    before = listing(stack, "namangan", page_size=1, **mine)["total"]
    numbers = [submit(stack, "namangan", {**other, "district": district}).json()["tracking_number"] for _ in range(3)]
    decoy = submit(stack, "namangan").json()["tracking_number"]  # the default service in the first district
    filtered = listing(stack, "namangan", page_size=500, **mine)
    assert filtered["total"] == before + 3
    listed = [item["tracking_number"] for item in filtered["items"]]
    assert set(numbers) <= set(listed) and decoy not in listed
    assert all(item["service_code"] == other["service_code"] and item["district"] == district for item in filtered["items"])
    # Newest first, a page at a time: the three newest of the filter, one per page.
    pages = [listing(stack, "namangan", page=page, page_size=1, **mine) for page in (1, 2, 3)]
    assert [page["items"][0]["tracking_number"] for page in pages] == numbers[::-1]
    assert all(page["total"] == before + 3 and page["page_size"] == 1 for page in pages)
    today = local_date(datetime.fromisoformat(pages[0]["items"][0]["submitted_at"]))
    assert listing(stack, "namangan", submitted_from=today.isoformat(), submitted_to=today.isoformat(),
                   page_size=1, **mine)["total"] >= 3
    yesterday = (today - timedelta(days=1)).isoformat()
    assert not set(numbers) & {item["tracking_number"] for item in
                               listing(stack, "namangan", submitted_to=yesterday, page_size=500, **mine)["items"]}
    assert listing(stack, "namangan", submitted_from=(today + timedelta(days=1)).isoformat(), **mine)["total"] == 0
    submitted = whole_listing(stack, "namangan", status="submitted")
    assert decoy in {item["tracking_number"] for item in submitted} and {item["status"] for item in submitted} == {"submitted"}
    item = next(item for item in submitted if item["tracking_number"] == decoy)
    assert item["applicant"]["pinfl"] == "31**********23" and item["applicant"]["full_name"] is None
    for params, field in (({"page_size": 501}, "page_size"), ({"page": 0}, "page"), ({"status": "lost"}, "status"),
                          ({"submitted_from": "2026-02-30"}, "submitted_from"),
                          ({"submitted_from": today.isoformat(), "submitted_to": yesterday}, "submitted_from")):
        refused = requests.get(f"{stack.urls['namangan']}/api/v1/applications", params=params, timeout=10,
                               headers=auth("operator", "namangan"))
        assert refused.status_code == 400 and field in refused.json()["fields"], (params, refused.text)


def test_event_export_pages_through_the_region_history(stack):
    submit(stack, "fergana")
    with stack.rpc(caller=as_caller("region-admin", "fergana")) as cluster:
        seen, after = [], 0
        while True:
            page = cluster.intake_fergana.export_events(after_id=after, limit=3)
            seen.extend(page["items"])
            after = page["next_after_id"]
            if not page["more"]:
                break
    assert seen and all(event["region"] == "fergana" for event in seen)
    assert len({event["event_id"] for event in seen}) == len(seen)


def test_districts_of_the_region(stack):
    response = requests.get(f"{stack.urls['jizzakh']}/api/v1/districts", params={"lang": "ru"}, timeout=10,
                            headers=auth("operator", "jizzakh"))
    assert response.status_code == 200
    body = response.json()
    assert body["region"] == "jizzakh" and len(body["items"]) >= 10
    assert all(item["code"].startswith("1708") and item["name"] for item in body["items"])


def test_catalogue_http_api(stack):
    response = requests.get(f"{stack.urls['catalogue']}/api/v1/services", params={"region": "jizzakh", "lang": "ru"}, timeout=10,
                            headers=auth("analyst"))
    assert response.status_code == 200
    body = response.json()
    assert body["total"] == len(body["items"]) >= 20
    service = body["items"][0]
    for field in ("code", "names", "descriptions", "agency", "group", "required_documents", "attributes", "fee",
                  "deadline_working_days", "regions", "state", "version"):
        assert field in service
    assert service["state"] == "published" and "jizzakh" in service["regions"] and service["name"] == service["names"]["ru"]
    one = requests.get(f"{stack.urls['catalogue']}/api/v1/services/{service['code']}", timeout=10, headers=auth("analyst"))
    assert one.status_code == 200 and one.json()["code"] == service["code"]
    missing = requests.get(f"{stack.urls['catalogue']}/api/v1/services/no-such-service", timeout=10, headers=auth("analyst"))
    assert missing.status_code == 404 and missing.json()["fields"] == {"code": ["unknown service"]}
    bad = requests.get(f"{stack.urls['catalogue']}/api/v1/services", params={"region": "atlantis"}, timeout=10, headers=auth("analyst"))
    assert bad.status_code == 400 and "region" in bad.json()["fields"]


def test_loading_the_seed_twice_changes_nothing(stack):
    import yaml

    from tests.integration.conftest import SEED

    with stack.rpc(caller=as_caller("catalogue-admin")) as cluster:
        before = {s["code"]: s["version"] for s in cluster.catalogue.list_services(state="all")}
        summary = cluster.catalogue.load_catalogue(yaml.safe_load(SEED.read_text(encoding="utf-8")))
        after = {s["code"]: s["version"] for s in cluster.catalogue.list_services(state="all")}
    assert summary["services_changed"] == 0 and summary["services_unchanged"] >= 20
    assert before == after


def test_an_officer_queue_is_active_applications_earliest_due_first(stack):
    officer = auth("officer", "fergana")
    url = f"{stack.urls['fergana']}/api/v1/applications"
    numbers = [submit(stack, "fergana").json()["tracking_number"] for _ in range(2)]
    other = seed_other_service("fergana")
    numbers.append(submit(stack, "fergana", other).json()["tracking_number"])
    withdrawn = numbers[0]
    assert post(f"{url}/{withdrawn}/transitions", {"to": "withdrawn", "reason": "asked to"}, **officer).status_code == 200
    items = whole_listing(stack, "fergana", "officer", active="true", order="due")
    listed = [item["tracking_number"] for item in items]
    assert withdrawn not in listed and set(numbers[1:]) <= set(listed)
    assert all(item["status"] not in ("issued", "withdrawn") for item in items)
    due_dates = [item["due_date"] for item in items]
    assert due_dates == sorted(due_dates)
    assert len({item["due_date"] for item in items if item["tracking_number"] in numbers[1:]}) == 2
    finished = whole_listing(stack, "fergana", "officer", active="false")
    assert withdrawn in [item["tracking_number"] for item in finished]
    bad = requests.get(url, params={"order": "oldest"}, headers=officer, timeout=10)
    assert bad.status_code == 400 and "order" in bad.json()["fields"]


def seed_other_service(region):
    """A submission for a published service whose deadline differs from the default one's."""
    from tests.integration.conftest import seed_document

    default = valid_submission(region)
    days = next(s for s in seed_document()["services"] if s["code"] == default["service_code"])["deadline_working_days"]
    for service in seed_document()["services"]:
        if service.get("state", "published") == "published" and service["regions"] == "all" \
                and service["deadline_working_days"] != days:
            try:
                return valid_submission(region, service["code"])
            except (KeyError, IndexError):
                continue
    raise LookupError("no second service with another deadline in the seed")
