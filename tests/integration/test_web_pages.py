"""The web pages against the real stack: the JSON endpoints they need (on both backends), and, in
headless Chromium on SQLite, an operator filing an application at the desk, an officer taking it
to approval, the citizen's status page showing it approved and the ministry's dashboard counting it."""
import re
import time

import eventlet
import pytest
import requests
from sqlalchemy import create_engine, text

from oss_common.auth import ANALYST, OFFICER, OPERATOR
from oss_common.regions import get_region
from tests.conftest import token
from tests.integration.conftest import ARTIFACTS, REGIONS, auth, post, seed_document, valid_submission
from tests.integration.test_reporting import direct_figures, oss, wait_caught_up

pytestmark = pytest.mark.integration

REGION = "jizzakh"
PERSONAL = {"pinfl": "41234567890123", "full_name": "Dilnoza Web Rahimova", "phone": "+998907654321",
            "email": "dilnoza.web@example.uz"}
REASON = "Shaxsiy izoh: web-reason-7731"


def web_service():
    """A published service offered everywhere with documents to check and the most attribute types."""
    candidates = [service for service in seed_document()["services"]
                  if service.get("state", "published") == "published" and service["regions"] == "all"
                  and service["required_documents"] and service["attributes"]]
    return max(candidates, key=lambda service: (len({a["datatype"] for a in service["attributes"]}), service["code"]))


@pytest.fixture(scope="module")
def reporting(stack):
    """Regional reporting of the three regions (caught up on earlier history by a rebuild) and the national instance."""
    databases = {region: stack.databases.new(f"web-reporting-{region}") for region in REGIONS}
    processes = {region: stack.start("reporting", region=region, database_url=databases[region], wait=False)
                 for region in REGIONS}
    for process in processes.values():
        process.wait_healthy()
    for region in REGIONS:
        done = oss("reporting", "rebuild", "--region", region,
                   env=stack.env(databases[region], OSS_TOKEN=token("region-admin", region)))
        assert done.returncode == 0, done.stderr[-2000:]
        wait_caught_up(stack, region, processes[region])
    national = stack.start_national("reporting", REGIONS=",".join(REGIONS), NATIONAL_TIMEOUT_SECONDS=5)
    yield {"processes": processes, "national": national}
    for process in [national, *processes.values()]:
        process.stop()


# JSON endpoints (both backends)

def test_services_lists_the_regions_published_services_as_forms(stack):
    answer = requests.get(f"{stack.urls[REGION]}/api/v1/services", headers=auth(OPERATOR, REGION), timeout=30)
    assert answer.status_code == 200, answer.text
    listing = answer.json()
    by_code = {item["code"]: item for item in listing["items"]}
    seed = seed_document()["services"]
    seeded = {service["code"] for service in seed if service.get("state", "published") == "published"
              and (service["regions"] == "all" or REGION in service["regions"])}
    # Other tests of the session may have published services of their own: the catalogue is the truth.
    catalogue = requests.get(f"{stack.urls['catalogue']}/api/v1/services", params={"region": REGION},
                             headers=auth(ANALYST), timeout=30)
    assert catalogue.status_code == 200, catalogue.text
    published = {item["code"] for item in catalogue.json()["items"]}
    assert seeded <= published
    assert listing["region"] == REGION and set(by_code) == published
    assert "agro-subsidy-application" in by_code  # Jizzakh only
    form, definition = by_code[web_service()["code"]], web_service()
    assert [document["code"] for document in form["required_documents"]] == \
        [document["code"] for document in definition["required_documents"]]
    assert [(a["code"], a["datatype"], a["required"]) for a in form["attributes"]] == \
        [(a["code"], a["datatype"], bool(a.get("required"))) for a in sorted(definition["attributes"], key=lambda a: a["order"])]
    elsewhere = requests.get(f"{stack.urls['namangan']}/api/v1/services", headers=auth(OPERATOR, "namangan"), timeout=30).json()
    assert "agro-subsidy-application" not in {item["code"] for item in elsewhere["items"]}
    assert requests.get(f"{stack.urls[REGION]}/api/v1/services", timeout=30).status_code == 401


def test_status_is_public_and_tells_nothing_personal(stack):
    body = valid_submission(REGION, applicant={**PERSONAL, "language": "ru", "channel": "email"})
    filed = post(f"{stack.urls[REGION]}/api/v1/applications", body, **auth(OPERATOR, REGION))
    assert filed.status_code == 201, filed.text
    tracking, code = filed.json()["tracking_number"], filed.json()["status_code"]
    moved = post(f"{stack.urls[REGION]}/api/v1/applications/{tracking}/transitions",
                 {"to": "returned_for_correction", "reason": REASON}, **auth(OFFICER, REGION))
    assert moved.status_code == 200, moved.text

    answer = post(f"{stack.urls[REGION]}/api/v1/status/{tracking}", {"code": code})  # no token
    assert answer.status_code == 200, answer.text
    status = answer.json()
    assert status["tracking_number"] == tracking
    assert status["service_code"] == body["service_code"]
    assert status["service_name"]["en"]
    assert status["status"] == "returned_for_correction" and status["final"] is False
    assert status["due_date"] == filed.json()["due_date"]
    assert [change["status"] for change in status["history"]] == ["submitted", "returned_for_correction"]
    assert set(status["history"][0]) == {"status", "on"}
    for secret in (*PERSONAL.values(), PERSONAL["pinfl"][-4:], REASON, "officer:", "operator:", "centre"):
        assert secret not in answer.text


@pytest.mark.parametrize("tracking", ["JI-2099-999999", "not-a-number", "ji-2026-000001", "JI-2026-00001"])
def test_status_of_an_unknown_or_malformed_number_is_404(stack, tracking):
    answer = post(f"{stack.urls[REGION]}/api/v1/status/{tracking}", {"code": "K7QP-4MZX"})
    assert answer.status_code == 404
    assert answer.json()["error"] == "application_not_found"


def test_pages_are_served_by_the_services_themselves_without_a_token(stack, reporting):
    for base, page, script in ((stack.urls[REGION], "desk", "app.js"), (stack.urls[REGION], "status", "status.js"),
                               (reporting["national"].url, "dashboard", "charts.js")):
        index = requests.get(f"{base}/{page}/", timeout=30)
        assert index.status_code == 200 and index.headers["Content-Type"].startswith("text/html")
        assert f'src="{script}"' in index.text and "http" not in index.text.replace('http-equiv', '')
        asset = requests.get(f"{base}/{page}/{script}", timeout=30)
        assert asset.status_code == 200 and asset.headers["Content-Type"].startswith("text/javascript")
        assert requests.get(f"{base}/{page}/style.css", timeout=30).headers["Content-Type"].startswith("text/css")
        assert requests.get(f"{base}/{page}/../service.py", timeout=30).status_code == 404
        assert requests.get(f"{base}/{page}/missing.js", timeout=30).status_code == 404


def test_national_monthly_series_counts_a_new_application_and_its_decision(stack, reporting):
    national = reporting["national"].url
    before = monthly(national)
    tracking = file_and_approve(stack)
    this_month = before_month = None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        after = monthly(national)
        this_month = region_month(after, REGION)
        before_month = region_month(before, REGION)
        if this_month["decided"] == before_month["decided"] + 1:
            break
        eventlet.sleep(0.5)
    assert this_month["submitted"] == before_month["submitted"] + 1, tracking
    assert this_month["approved"] == before_month["approved"] + 1
    assert this_month["on_time"] == before_month["on_time"] + 1
    assert this_month["backlog"] == before_month["backlog"]  # filed and decided within the month
    assert after["partial"] is False and [region["region"] for region in after["regions"]] == list(REGIONS)
    assert after["regions"][0]["names"]["en"] == get_region(REGIONS[0]).names["en"]
    national_month = next(row for row in after["totals"] if row["month"] == this_month["month"])
    assert national_month["submitted"] == sum(region_month(after, slug)["submitted"] for slug in REGIONS)
    assert requests.get(f"{national}/api/v1/reports/monthly", headers=auth(OPERATOR, REGION), timeout=30).status_code == 403
    assert requests.get(f"{national}/api/v1/reports/monthly", params={"from": "2026-05-01", "to": "2026-04-01"},
                        headers=auth(ANALYST), timeout=30).status_code == 400


def monthly(national_url):
    answer = requests.get(f"{national_url}/api/v1/reports/monthly", headers=auth(ANALYST), timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()


def region_month(report, slug):
    months = next(region["months"] for region in report["regions"] if region["region"] == slug)
    return months[-1]


def file_and_approve(stack):
    url = stack.urls[REGION]
    filed = post(f"{url}/api/v1/applications", valid_submission(REGION), **auth(OPERATOR, REGION))
    assert filed.status_code == 201, filed.text
    tracking = filed.json()["tracking_number"]
    for target in ("accepted", "in_review", "approved"):
        moved = post(f"{url}/api/v1/applications/{tracking}/transitions", {"to": target}, **auth(OFFICER, REGION))
        assert moved.status_code == 200, moved.text
    return tracking


# In the browser (SQLite only: the pages do not care which database answers)

def new_page(browser, problems):
    """A page that records script errors, console errors (a CSP violation shows there) and requests
    that failed or answered 404 for a file of the page; the API's expected 4xx answers, and its calls
    aborted by a navigation, are not problems."""
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    page.on("console", lambda message: message.type == "error" and not message.text.startswith("Failed to load resource")
            and problems.append(message.text))
    page.on("response", lambda response: response.status >= 400 and "/api/" not in response.url
            and problems.append(f"{response.url}: {response.status}"))
    page.on("pageerror", lambda error: problems.append(str(error)))
    # An API call still in flight when the page navigates (signing out) is aborted by the browser:
    # not a fault of the page. A file of the page that fails to load still is.
    page.on("requestfailed", lambda request: not ("/api/" in request.url and request.failure == "net::ERR_ABORTED")
            and problems.append(f"{request.url}: {request.failure}"))
    return page


def sign_in(page, url, bearer):
    page.goto(url)
    page.fill("#token", bearer)
    page.click("#sign-in-form button[type=submit]")


def fill_attributes(page, service):
    for attribute in service["attributes"]:
        field = page.locator(f'[data-attribute="{attribute["code"]}"]')
        datatype = attribute["datatype"]
        if datatype == "multivaluelist":
            field.locator("input[type=checkbox]").first.check()
        elif datatype == "singlevaluelist":
            field.locator("select").select_option(attribute["values"][0]["key"])
        else:
            value = {"string": "Mustaqillik ko'chasi 5", "text": "Ariza matni", "number": "3",
                     "datetime": "2026-09-01T10:00"}[datatype]
            control = field.locator("input, textarea").first
            # Each datatype gets the browser's own control for it (a number pad, a date picker).
            assert control.evaluate("element => element.tagName === 'TEXTAREA' ? 'textarea' : element.type") == \
                {"string": "text", "text": "textarea", "number": "number", "datetime": "datetime-local"}[datatype]
            control.fill(value)


def test_operator_files_officer_approves_citizen_sees_it_and_the_dashboard_counts_it(stack, reporting, browser):
    problems = []
    region = get_region(REGION)
    service = web_service()
    centre = region.main_centre
    agency = service["agency"]

    # The operator's desk: a form built from the catalogue copy; the API's field errors beside the fields.
    desk = new_page(browser, problems)
    sign_in(desk, f"{stack.urls[REGION]}/desk/", token(OPERATOR, REGION, centres=[centre]))
    desk.select_option("#language", "en")
    desk.wait_for_selector(f'#service option[value="{service["code"]}"]', state="attached")
    desk.select_option("#service", service["code"])
    assert desk.locator("#documents input[type=checkbox]").count() == len(service["required_documents"])
    assert desk.locator("#attributes .attribute").count() == len(service["attributes"])
    desk.fill('[name="applicant.pinfl"]', "123")
    desk.fill('[name="applicant.full_name"]', PERSONAL["full_name"])
    desk.fill('[name="applicant.phone"]', PERSONAL["phone"])
    desk.click("#submit")
    desk.wait_for_selector('[data-error-for="applicant.pinfl"]:not([hidden])')
    assert "14 digits" in desk.inner_text('[data-error-for="applicant.pinfl"]')
    assert desk.locator("#receipt").is_hidden()
    desk.fill('[name="applicant.pinfl"]', PERSONAL["pinfl"])
    desk.click("#submit")
    desk.wait_for_selector('[data-error-for="documents"]:not([hidden])')
    assert "missing required document" in desk.inner_text('[data-error-for="documents"]')
    desk.screenshot(path=str(ARTIFACTS / "desk-field-errors.png"), full_page=True)
    for box in desk.locator("#documents input[type=checkbox]").all():
        box.check()
    fill_attributes(desk, service)
    desk.click("#submit")
    desk.wait_for_selector("#receipt:not([hidden])")
    tracking = desk.inner_text("#receipt-tracking").strip()
    status_code = desk.inner_text("#receipt-code").strip()
    shown_due = desk.inner_text("#receipt-due").strip()
    desk.screenshot(path=str(ARTIFACTS / "desk-receipt.png"), full_page=True)

    stored = stored_application(stack, tracking)
    assert stored is not None, f"the desk showed {tracking}, which intake does not hold"
    assert stored["service_code"] == service["code"] and stored["centre"] == centre and stored["status"] == "submitted"
    assert shown_due == stored["due_date"].strftime("%d.%m.%Y")
    assert stored["applicant_pinfl"] == PERSONAL["pinfl"]
    assert re.fullmatch(r"[2-9A-HJ-NP-Z]{4}-[2-9A-HJ-NP-Z]{4}", status_code), status_code

    # The centre's list finds it by its number, with status and days left.
    desk.click('#tabs button[data-tab="list"]')
    desk.fill("#search", tracking)
    row = desk.locator(f'#applications tbody tr[data-tracking="{tracking}"]')
    row.wait_for()
    assert desk.locator("#applications tbody tr").count() == 1
    assert "Submitted" in row.inner_text() and "days" in row.inner_text()
    desk.screenshot(path=str(ARTIFACTS / "desk-list.png"), full_page=True)
    # One filed elsewhere since the list loaded is not in it: its whole number is looked up on the server.
    later = post(f"{stack.urls[REGION]}/api/v1/applications", dict(valid_submission(REGION), centre=centre, district=region.centre(centre).district),
                 **auth(OPERATOR, REGION))
    assert later.status_code == 201, later.text
    later_number = later.json()["tracking_number"]
    desk.fill("#search", later_number)
    desk.locator(f'#applications tbody tr[data-tracking="{later_number}"]').wait_for()
    assert desk.locator("#applications tbody tr").count() == 1

    # The officer: oldest due first, the allowed transitions as buttons, a reason where one is required.
    officer = new_page(browser, problems)
    sign_in(officer, f"{stack.urls[REGION]}/desk/", token(OFFICER, REGION, agencies=[agency]))
    officer.select_option("#language", "en")
    mine = officer.locator(f'#queue tbody tr[data-tracking="{tracking}"]')
    mine.wait_for()
    dues = [cell.strip() for cell in officer.locator("#queue tbody tr td:nth-child(4)").all_inner_texts()]
    as_iso = ["-".join(reversed(due.split("."))) for due in dues]
    assert as_iso == sorted(as_iso)
    assert sorted(mine.locator("button").evaluate_all("buttons => buttons.map(b => b.dataset.to)")) == \
        ["accepted", "returned_for_correction", "withdrawn"]
    mine.locator('button[data-to="withdrawn"]').click()
    mine.locator(".error:not([hidden])").wait_for()
    assert "reason" in mine.locator(".error").inner_text().lower()
    for target, label in (("accepted", "Accepted"), ("in_review", "In review"), ("approved", "Approved")):
        if target == "approved":
            mine.locator("input.reason").fill("All documents in order")
        mine.locator(f'button[data-to="{target}"]').click()
        officer.wait_for_function("([text]) => document.querySelector('#officer-message').textContent.includes(text)",
                                  arg=[label])
        if target != "approved":
            mine.locator(f"td.status-{target}").wait_for()
    officer.screenshot(path=str(ARTIFACTS / "officer-queue.png"), full_page=True)
    assert stored_application(stack, tracking)["status"] == "approved"
    assert decision_reason(stack, tracking) == ("approved", "All documents in order", f"{OFFICER}:test-{OFFICER}")
    officer.wait_for_selector(f'#queue tbody tr[data-tracking="{tracking}"] button[data-to="issued"]')

    # The citizen: a tracking number and the receipt's status code in, the status and dates out, nothing personal.
    citizen = new_page(browser, problems)
    citizen.goto(f"{stack.urls[REGION]}/status/")
    citizen.select_option("#language", "ru")
    citizen.fill("#tracking", tracking)
    citizen.fill("#code", status_code.lower())
    citizen.click("#lookup button")
    citizen.wait_for_selector("#result:not([hidden])")
    assert citizen.inner_text("#result-status") == "Одобрено"
    assert citizen.inner_text("#result-tracking") == tracking
    assert citizen.inner_text("#result-due") == shown_due
    assert citizen.locator("#result-history li").evaluate_all("items => items.map(i => i.dataset.status)") == \
        ["submitted", "accepted", "in_review", "approved"]
    assert citizen.inner_text("#result-service") == service["names"]["ru"]
    citizen.select_option("#language", "en")
    assert citizen.inner_text("#result-status") == "Approved"
    page_text = citizen.inner_text("body")
    for secret in (PERSONAL["pinfl"], PERSONAL["full_name"], PERSONAL["phone"], "officer:"):
        assert secret not in page_text
    citizen.screenshot(path=str(ARTIFACTS / "citizen-status.png"), full_page=True)
    citizen.fill("#tracking", "JI-2099-999999")
    citizen.click("#lookup button")
    citizen.wait_for_selector("#error:not([hidden])")
    assert citizen.locator("#result").is_hidden()

    # The ministry: the dashboard's Jizzakh card and table row count the application.
    wait_caught_up(stack, REGION, reporting["processes"][REGION])
    expected = direct_figures(stack.intake_db[REGION])
    ministry = new_page(browser, problems)
    sign_in(ministry, f"{reporting['national'].url}/dashboard/", token(ANALYST))
    ministry.select_option("#language", "en")
    card = ministry.locator(f'#region-cards .card[data-region="{REGION}"]')
    card.wait_for()
    assert card.locator("h3").inner_text() == region.names["en"]
    assert as_number(card.locator('[data-figure="applications"] strong').inner_text()) == expected["total"]
    table_row = ministry.locator(f'#comparison tbody tr[data-region="{REGION}"] td')
    assert as_number(table_row.nth(1).inner_text()) == expected["total"]
    decided = sum(figures["on_time"] + figures["late"] for figures in expected["decisions"]["service"].values())
    assert as_number(table_row.nth(2).inner_text()) == expected["open"]
    assert as_number(table_row.nth(3).inner_text()) == decided >= 1  # the officer's approval among them
    assert ministry.locator("#chart-submitted svg g[data-series]").count() == len(REGIONS)
    points = ministry.locator(f'#chart-submitted svg g[data-series="{region.names["en"]}"] circle')
    assert points.count() >= 1
    this_month = region_month(monthly(reporting["national"].url), REGION)
    assert float(points.last.get_attribute("data-value")) == this_month["submitted"]
    assert ministry.locator("#chart-sla svg circle").count() >= 1
    backlog = ministry.locator(f'#chart-backlog svg g[data-series="{region.names["en"]}"] circle')
    assert float(backlog.last.get_attribute("data-value")) == this_month["backlog"]
    assert ministry.locator(f'#chart-median svg g[data-series="{region.names["en"]}"] circle').count() >= 1
    ministry.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
    ministry.select_option("#language", "uz")
    assert card.locator("h3").inner_text() == region.names["uz"]
    ministry.screenshot(path=str(ARTIFACTS / "dashboard-uz.png"), full_page=True)

    assert problems == []


def as_number(text_value):
    return int("".join(character for character in text_value if character.isdigit()))


def decision_reason(stack, tracking):
    """(status, reason, actor) of the application's latest status change, as intake stored it."""
    engine = create_engine(stack.intake_db[REGION])
    try:
        with engine.connect() as connection:
            return tuple(connection.execute(text(
                "SELECT c.to_status, c.reason, c.actor FROM status_changes c JOIN applications a ON a.id = c.application_id "
                "WHERE a.tracking_number = :t ORDER BY c.id DESC LIMIT 1"), {"t": tracking}).one())
    finally:
        engine.dispose()


def stored_application(stack, tracking):
    engine = create_engine(stack.intake_db[REGION])
    try:
        with engine.connect() as connection:
            row = connection.execute(text(
                "SELECT service_code, centre, status, due_date, applicant_pinfl FROM applications WHERE tracking_number = :t"),
                {"t": tracking}).mappings().first()
    finally:
        engine.dispose()
    if row is None:
        return None
    row = dict(row)
    if isinstance(row["due_date"], str):
        from datetime import date

        row["due_date"] = date.fromisoformat(row["due_date"])
    return row


def test_operator_files_a_paid_application_takes_the_fee_and_prints_the_receipt(stack, reporting, browser):
    problems = []
    paid_service = next(service for service in seed_document()["services"] if service["code"] == "apostille")
    desk = new_page(browser, problems)
    sign_in(desk, f"{stack.urls[REGION]}/desk/", token(OPERATOR, REGION))
    desk.select_option("#language", "en")
    desk.wait_for_selector('#service option[value="apostille"]', state="attached")
    desk.select_option("#service", "apostille")
    assert "82\u00a0400 so'm" in desk.inner_text("#service-info")  # 0.2 of the base amount in force (412 000)
    desk.fill('[name="applicant.pinfl"]', PERSONAL["pinfl"])
    desk.fill('[name="applicant.full_name"]', PERSONAL["full_name"])
    desk.fill('[name="applicant.phone"]', PERSONAL["phone"])
    for box in desk.locator("#documents input[type=checkbox]").all():
        box.check()
    fill_attributes(desk, paid_service)
    desk.click("#submit")
    desk.wait_for_selector("#payment-form:not([hidden])")
    tracking = desk.inner_text("#receipt-tracking").strip()
    assert desk.inner_text("#pay-amount").strip() == "82\u00a0400 so'm"
    assert stored_application(stack, tracking)["status"] == "awaiting_payment"
    desk.select_option("#pay-method", "cash")
    desk.fill("#pay-receipt", "KASSA-0042")
    desk.click("#pay-submit")
    desk.wait_for_selector("#paid:not([hidden])")
    assert stored_application(stack, tracking)["status"] == "submitted"
    desk.click("#print-receipt")
    desk.wait_for_selector("#receipt-lines:not([hidden])")
    assert desk.inner_text("#r-tracking").strip() == tracking
    assert desk.inner_text("#r-amount").strip() == "82\u00a0400 so'm"
    assert desk.inner_text("#r-receipt").strip() == "KASSA-0042" and desk.inner_text("#r-method").strip() == "Cash"
    assert desk.inner_text("#r-state").strip() == "paid"
    assert PERSONAL["pinfl"] not in desk.content() and PERSONAL["full_name"] not in desk.content()
    desk.screenshot(path=str(ARTIFACTS / "desk-fee-receipt.png"), full_page=True)

    # The ministry's dashboard: Jizzakh's fees, as many invoices as intake holds, the fee paid among them.
    wait_caught_up(stack, REGION, reporting["processes"][REGION])
    engine = create_engine(stack.intake_db[REGION])
    with engine.connect() as connection:
        invoices = connection.execute(text("SELECT count(*) FROM invoices")).scalar_one()
    engine.dispose()
    ministry = new_page(browser, problems)
    sign_in(ministry, f"{reporting['national'].url}/dashboard/", token(ANALYST))
    ministry.select_option("#language", "en")
    fees = ministry.locator(f'#fees tbody tr[data-region="{REGION}"] td')
    fees.first.wait_for()
    assert as_number(fees.nth(1).inner_text()) == invoices >= 1
    assert as_number(fees.nth(3).inner_text()) >= 82_400  # paid, in so'm
    ministry.screenshot(path=str(ARTIFACTS / "dashboard-fees.png"), full_page=True)
    assert problems == []
