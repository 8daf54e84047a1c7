"""The Open311 face's plain parts: GeoReport JSON/XML rendering (against the specification's own
examples), the mapping of applications and catalogue services, the POST form's attribute fields,
query arguments, partners' API keys and the error format."""
from datetime import date, datetime, timedelta, timezone
from types import SimpleNamespace

import defusedxml.ElementTree as SafeXML
import pytest
from hypothesis import given, settings, strategies as st
from marshmallow import ValidationError

from oss_common.config import ConfigurationError
from oss_common.regions import get_region
from services.intake.domain import Status
from services.intake.open311 import mapping
from services.intake.open311.dependencies import Open311Settings, key_digest, parse_partner_keys
from services.intake.open311.formats import ITEM_ELEMENTS, NOT_XML, XML_DECLARATION, format_of, render, to_xml
from services.intake.open311.http import Open311Handler, open311_errors
from services.intake.open311.schemas import (
    RequestFormSchema, RequestsQuerySchema, W3DateTime, normal_phone,
)

# Example responses from the GeoReport v2 specification (wiki.open311.org/GeoReport_v2 and
# /Service_Discovery), as published.
SPEC_SERVICES_XML = """<?xml version="1.0" encoding="utf-8"?>
<services>
    <service>
        <service_code>001</service_code>
        <service_name>Cans left out 24x7</service_name>
        <description>Garbage or recycling cans that have been left out for more than 24 hours after collection. Violators will be cited.</description>
        <metadata>true</metadata>
        <type>realtime</type>
        <keywords>lorem, ipsum, dolor</keywords>
        <group>sanitation</group>
    </service>
    <service>
        <service_code>002</service_code>
        <metadata>true</metadata>
        <type>realtime</type>
        <keywords>lorem, ipsum, dolor</keywords>
        <group>street</group>
        <service_name>Construction plate shifted</service_name>
        <description>Metal construction plate covering the street or sidewalk has been moved.</description>
    </service>
</services>"""
SPEC_DEFINITION_XML = """<?xml version="1.0" encoding="utf-8"?>
<service_definition>
    <service_code>DMV66</service_code>
    <attributes>
        <attribute>
            <variable>true</variable>
            <code>WHISHETN</code>
            <datatype>singlevaluelist</datatype>
            <required>true</required>
            <datatype_description></datatype_description>
            <order>1</order>
            <description>What is the ticket/tag/DL number?</description>
            <values>
                <value>
                    <key>123</key>
                    <name>Ford</name>
                </value>
                <value>
                    <key>124</key>
                    <name>Chrysler</name>
                </value>
            </values>
        </attribute>
    </attributes>
</service_definition>"""
SPEC_CREATED_XML = """<?xml version="1.0" encoding="utf-8"?>
<service_requests>
    <request>
        <service_request_id>293944</service_request_id>
        <service_notice>The City will inspect and require the responsible party to correct within 24 hours and/or issue a Correction Notice or Notice of Violation of the Public Works Code</service_notice>
        <account_id/>
    </request>
</service_requests>"""
SPEC_TOKEN_XML = """<?xml version="1.0" encoding="utf-8"?>
<service_requests>
    <request>
        <service_request_id>638344</service_request_id>
        <token>12345</token>
    </request>
</service_requests>"""
SPEC_REQUESTS_XML = """<?xml version="1.0" encoding="utf-8"?>
<service_requests>
    <request>
        <service_request_id>638344</service_request_id>
        <status>closed</status>
        <status_notes>Duplicate request.</status_notes>
        <service_name>Sidewalk and Curb Issues</service_name>
        <service_code>006</service_code>
        <description></description>
        <agency_responsible></agency_responsible>
        <service_notice></service_notice>
        <requested_datetime>2010-04-14T06:37:38-08:00</requested_datetime>
        <updated_datetime>2010-04-14T06:37:38-08:00</updated_datetime>
        <expected_datetime>2010-04-15T06:37:38-08:00</expected_datetime>
        <address>8TH AVE and JUDAH ST</address>
        <address_id>545483</address_id>
        <zipcode>94122</zipcode>
        <lat>37.762221815</lat>
        <long>-122.4651145</long>
        <media_url>http://city.gov.s3.amazonaws.com/requests/media/638344.jpg </media_url>
    </request>
</service_requests>"""
SPEC_ERRORS_XML = """<?xml version="1.0" encoding="utf-8"?>
<errors>
    <error>
        <code>403</code>
        <description>Invalid api_key received -- can't proceed with create_request.</description>
    </error>
</errors>"""
SPEC_DISCOVERY_XML = """<?xml version="1.0" encoding="UTF-8"?>
<discovery>
    <changeset>2011-02-03 14:18</changeset>
    <contact>You can email or call for assistance api@mycity.org +1 (555) 555-5555</contact>
    <key_service>You can request a key here: http://api.mycity.gov/api_key/request</key_service>
    <endpoints>
        <endpoint>
            <specification>http://wiki.open311.org/GeoReport_v2</specification>
            <url>http://open311.mycity.gov/v2</url>
            <changeset>2010-11-23 09:01</changeset>
            <type>production</type>
            <formats>
                <format>text/xml</format>
            </formats>
        </endpoint>
        <endpoint>
            <specification>http://wiki.open311.org/GeoReport_v2</specification>
            <url>http://open311.mycity.gov/test/v2</url>
            <changeset>2010-10-02 09:01</changeset>
            <type>test</type>
            <formats>
                <format>text/xml</format>
                <format>application/json</format>
            </formats>
        </endpoint>
    </endpoints>
</discovery>"""
SPEC_EXAMPLES = [SPEC_SERVICES_XML, SPEC_DEFINITION_XML, SPEC_CREATED_XML, SPEC_TOKEN_XML, SPEC_REQUESTS_XML,
                 SPEC_ERRORS_XML, SPEC_DISCOVERY_XML]


def spark(element):
    """An XML element as the Spark convention reads it: lists for the specification's list
    elements, dicts for records, text (None when empty) for leaves."""
    if element.tag in ITEM_ELEMENTS:
        return [spark(child) for child in element]
    if len(element):
        return {child.tag: spark(child) for child in element}
    text = (element.text or "").strip()
    return text or None


def tree(element):
    return (element.tag, (element.text or "").strip(), [tree(child) for child in element])


@pytest.mark.parametrize("example", SPEC_EXAMPLES, ids=lambda example: SafeXML.fromstring(example.encode()).tag)
def test_our_xml_writes_the_specifications_examples_back_element_for_element(example):
    root = SafeXML.fromstring(example.encode())
    ours = to_xml(root.tag, spark(root))
    assert ours.startswith(XML_DECLARATION)
    assert tree(SafeXML.fromstring(ours.encode("utf-8"))) == tree(root)


def test_json_has_the_shape_of_the_specifications_json_examples():
    services = spark(SafeXML.fromstring(SPEC_SERVICES_XML.encode()))
    assert isinstance(services, list) and services[0]["service_name"] == "Cans left out 24x7"
    definition = spark(SafeXML.fromstring(SPEC_DEFINITION_XML.encode()))
    assert definition["attributes"][0]["values"][1] == {"key": "124", "name": "Chrysler"}
    created = spark(SafeXML.fromstring(SPEC_CREATED_XML.encode()))
    assert created == [{"service_request_id": "293944", "service_notice": created[0]["service_notice"], "account_id": None}]


@pytest.mark.parametrize("fmt,mimetype", [("json", "application/json"), ("xml", "text/xml")])
def test_responses_are_utf8_with_the_formats_content_type(fmt, mimetype):
    response = render(fmt, "services", [{"service_code": "x", "service_name": "Ko‘chmas mulk", "metadata": False}])
    assert response.headers["Content-Type"] == f"{mimetype}; charset=utf-8"
    assert "Ko‘chmas mulk" in response.get_data().decode("utf-8")


def test_booleans_and_nulls_follow_the_spark_convention():
    xml = to_xml("services", [{"metadata": True, "description": None, "order": 3, "lat": 41.5}])
    service = SafeXML.fromstring(xml.encode())[0]
    assert [(child.tag, child.text) for child in service] == [
        ("metadata", "true"), ("description", None), ("order", "3"), ("lat", "41.5")]


@settings(max_examples=300, deadline=None)
@given(st.text(st.characters(codec="utf-8")))
def test_any_text_gives_well_formed_xml_that_reads_back(text):
    xml = to_xml("errors", [{"code": 400, "description": text}])
    description = SafeXML.fromstring(xml.encode("utf-8"))[0].find("description").text or ""
    # What XML 1.0 cannot carry becomes U+FFFD; parsers read every line end as \n.
    expected = NOT_XML.sub("\ufffd", text).replace("\r\n", "\n").replace("\r", "\n")
    assert description == expected


def test_the_url_extension_decides_the_format():
    assert format_of("/open311/v2/services.xml") == "xml"
    assert format_of("/open311/v2/services.json") == "json"
    assert format_of("/open311/v2/whatever") == "json"


# Mapping

REGION = get_region("jizzakh")
DISTRICT = REGION.districts[0]
DEFINITION = {
    "code": "photocopying", "state": "published", "regions": ["jizzakh"], "group": "office-services",
    "keywords": ["copy", "print"], "deadline_working_days": 1, "updated_at": "2026-01-02T03:04:05.678Z",
    "names": {"uz": "Nusxa", "ru": "Копия", "en": "Copies"},
    "descriptions": {"uz": "Nusxa ko‘chirish", "ru": "Копирование", "en": "Photocopying"},
    "agency": {"code": "oss-centre", "names": {"uz": "Markaz", "ru": "Центр", "en": "Centre"}},
    "attributes": [
        {"code": "paper_size", "variable": True, "datatype": "singlevaluelist", "required": True, "order": 2,
         "datatype_description": None, "description": {"uz": "O‘lcham", "ru": "Размер", "en": "Size"},
         "values": [{"key": "A4", "name": {"uz": "A4", "ru": "A4", "en": "A4"}}]},
        {"code": "pages", "variable": True, "datatype": "number", "required": True, "order": 1,
         "datatype_description": "1 to 500", "description": {"uz": "Sahifalar", "ru": "Страницы", "en": "Pages"},
         "values": []},
        {"code": "sides", "variable": True, "datatype": "multivaluelist", "required": False, "order": 3,
         "datatype_description": None, "description": {"uz": "Tomon", "ru": "Сторона", "en": "Side"},
         "values": [{"key": "front", "name": {"uz": "Old", "ru": "Лицо", "en": "Front"}},
                    {"key": "back", "name": {"uz": "Orqa", "ru": "Оборот", "en": "Back"}}]},
    ],
}


def application(status="submitted", **overrides):
    values = dict(
        tracking_number="JI-2026-000042", service_code="photocopying", agency="oss-centre", district=DISTRICT.code,
        status=status, submitted_at=datetime(2026, 3, 2, 5, 6, 7, 891011, tzinfo=timezone.utc),
        updated_at=datetime(2026, 3, 3, 5, 6, 7, tzinfo=timezone.utc), due_date=date(2026, 3, 4),
        applicant_pinfl="31234567890123", applicant_name="Aziza Karimova", applicant_phone="+998901234567",
        applicant_email="aziza@example.uz")
    values.update(overrides)
    return SimpleNamespace(**values)


def test_a_catalogue_service_is_an_open311_service():
    record = mapping.service_record(DEFINITION, "en", "realtime")
    assert record == {"service_code": "photocopying", "service_name": "Copies", "description": "Photocopying",
                      "metadata": True, "type": "realtime", "keywords": "copy, print", "group": "office-services"}
    assert mapping.service_record(dict(DEFINITION, attributes=[]), "uz", "batch")["metadata"] is False


def test_a_service_definition_lists_attributes_in_order_with_values_for_lists_only():
    record = mapping.definition_record(DEFINITION, "ru")
    assert [attribute["code"] for attribute in record["attributes"]] == ["pages", "paper_size", "sides"]
    pages, paper, _sides = record["attributes"]
    assert "values" not in pages and pages["datatype_description"] == "1 to 500"
    assert paper == {"variable": True, "code": "paper_size", "datatype": "singlevaluelist", "required": True,
                     "datatype_description": None, "order": 2, "description": "Размер",
                     "values": [{"key": "A4", "name": "A4"}]}


@pytest.mark.parametrize("status", list(Status))
def test_every_workflow_status_reads_open_or_closed(status):
    expected = "closed" if status in {Status.APPROVED, Status.REJECTED, Status.ISSUED, Status.WITHDRAWN} else "open"
    assert mapping.open311_status(status.value) == expected
    assert status.value in mapping.intake_statuses([expected])
    assert status.value not in mapping.intake_statuses(["open" if expected == "closed" else "closed"])


def test_an_application_is_a_service_request_without_personal_data():
    record = mapping.request_record(application(), DEFINITION, REGION, "en")
    assert record["service_request_id"] == "JI-2026-000042"
    assert record["status"] == "open" and record["status_notes"]
    assert record["requested_datetime"] == "2026-03-02T05:06:07Z"
    assert record["updated_datetime"] == "2026-03-03T05:06:07Z"
    assert record["expected_datetime"] == "2026-03-04T18:59:59Z"  # end of the due date in Tashkent
    assert record["agency_responsible"] == "Centre" and record["address_id"] == DISTRICT.code
    assert list(record) == ["service_request_id", "status", "status_notes", "service_name", "service_code",
                            "description", "agency_responsible", "service_notice", "requested_datetime",
                            "updated_datetime", "expected_datetime", "address", "address_id", "zipcode", "lat",
                            "long", "media_url"]
    text = render("json", "service_requests", [record]).get_data(as_text=True) + to_xml("service_requests", [record])
    for personal in ("31234567890123", "Aziza", "Karimova", "901234567", "aziza@"):
        assert personal not in text


def test_a_request_whose_service_left_the_catalogue_still_reads():
    record = mapping.request_record(application(status="issued"), None, REGION, "uz")
    assert record["service_name"] is None and record["agency_responsible"] == "oss-centre"
    assert record["status"] == "closed"


def test_the_changeset_is_the_newest_catalogue_update():
    older = dict(DEFINITION, updated_at="2025-12-31T23:00:00")
    assert mapping.changeset([older, DEFINITION]) == "2026-01-02T03:04:05Z"
    assert mapping.changeset([]) == "1970-01-01T00:00:00Z"


def test_the_default_window_is_the_last_ninety_days():
    now = datetime(2026, 5, 1, tzinfo=timezone.utc)
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert mapping.request_window(None, None, now) == (now - timedelta(days=90), now)
    assert mapping.request_window(start, None, now) == (start, start + timedelta(days=90))
    assert mapping.request_window(None, now, now) == (now - timedelta(days=90), now)
    assert mapping.request_window(start, now, now) == (start, now)


def test_attribute_fields_are_read_from_the_form():
    items = [("attribute[pages]", "3"), ("attribute[sides][]", "front"), ("attribute[sides][]", "back"),
             ("service_code", "photocopying"), ("attribute", "x"), ("attribute[a][b]", "y")]
    values, malformed = mapping.attribute_fields(items)
    assert values == {"pages": ["3"], "sides": ["front", "back"]}
    assert malformed == ["attribute", "attribute[a][b]"]


def test_attribute_values_are_typed_by_the_definition():
    values, problems = mapping.attribute_values(
        DEFINITION, {"pages": ["12"], "paper_size": ["A4"], "sides": ["back"], "colour": ["red"]})
    assert values == {"pages": 12, "paper_size": "A4", "sides": ["back"], "colour": "red"} and problems == {}
    values, problems = mapping.attribute_values(DEFINITION, {"pages": ["1.5e2"], "paper_size": ["A4", "A3"]})
    assert values == {"pages": 150.0} and problems == {"paper_size": ["takes one value"]}
    assert mapping.attribute_values(DEFINITION, {"pages": ["many"]})[0] == {"pages": "many"}


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["pages", "paper_size", "sides", "other"]),
                       st.lists(st.text(max_size=30), min_size=1, max_size=3)))
def test_attribute_values_never_raise_and_keep_every_code(raw):
    values, problems = mapping.attribute_values(DEFINITION, raw)
    assert set(values) | set(problems) == set(raw)
    for code, value in values.items():
        if code == "sides":
            assert isinstance(value, list)
        elif code == "pages":
            assert isinstance(value, (int, float, str))


def test_intake_field_names_read_as_the_form_names_them():
    assert mapping.open311_field("attributes.pages") == "attribute[pages]"
    assert mapping.open311_field("applicant.pinfl") == "pinfl"
    assert mapping.open311_field("applicant.full_name") == "first_name, last_name"
    assert mapping.open311_field("district") == "address_id"
    assert mapping.open311_field("service_code") == "service_code"


def test_a_form_becomes_a_submission():
    form = RequestFormSchema().load({
        "api_key": "k", "service_code": "photocopying", "address_id": DISTRICT.code, "first_name": " Aziza ",
        "last_name": "Karimova", "phone": "+998 90 123-45-67", "pinfl": "31234567890123", "documents": "a-b, c-d"})
    submission = mapping.submission(dict(form, phone=normal_phone(form["phone"])), {"pages": 2})
    assert submission == {
        "service_code": "photocopying", "district": DISTRICT.code, "centre": None, "documents": ["a-b", "c-d"],
        "attributes": {"pages": 2},
        "applicant": {"pinfl": "31234567890123", "full_name": "Aziza Karimova", "phone": "+998901234567",
                      "language": "uz", "channel": "sms", "email": None}}


@pytest.mark.parametrize("written,normal", [
    ("+998 90 123-45-67", "+998901234567"), ("998901234567", "+998901234567"), ("(90) 123 45 67", "+998901234567"),
    ("+7 900 123 45 67", "+79001234567"), ("٩٠١٢٣٤٥٦٧", "٩٠١٢٣٤٥٦٧"),
])
def test_phone_numbers_are_normalised(written, normal):
    assert normal_phone(written) == normal


@pytest.mark.parametrize("field,value", [
    ("pinfl", "1234"), ("first_name", "a\x00b"), ("last_name", "a\nb"), ("lat", "nan"), ("lat", "91"),
    ("email", "not-an-email"), ("language", "de"), ("channel", "pigeon"), ("documents", "Not A Code"),
])
def test_the_form_refuses_bad_fields(field, value):
    good = {"api_key": "k", "service_code": "x", "address_id": "1", "first_name": "a", "last_name": "b",
            "phone": "+998901234567", "pinfl": "31234567890123", "long": "1"}
    with pytest.raises(ValidationError) as caught:
        RequestFormSchema().load(dict(good, **{field: value}))
    assert field in caught.value.messages


def test_lat_and_long_go_together():
    with pytest.raises(ValidationError) as caught:
        RequestFormSchema().load({"api_key": "k", "service_code": "x", "address_id": "1", "first_name": "a",
                                  "last_name": "b", "phone": "1", "pinfl": "31234567890123", "lat": "41"})
    assert "long" in caught.value.messages


# Query arguments

@pytest.mark.parametrize("text,expected", [
    ("2010-05-24T00:00:00Z", datetime(2010, 5, 24, tzinfo=timezone.utc)),
    ("1994-11-05T08:15:30-05:00", datetime(1994, 11, 5, 13, 15, 30, tzinfo=timezone.utc)),
    ("1994-11-05T13:15:30Z", datetime(1994, 11, 5, 13, 15, 30, tzinfo=timezone.utc)),
    ("2026-01-01", datetime(2025, 12, 31, 19, tzinfo=timezone.utc)),  # midnight in Tashkent
])
def test_w3c_datetimes_from_the_specification_are_read(text, expected):
    assert W3DateTime().deserialize(text) == expected


@pytest.mark.parametrize("text", ["yesterday", "2010-13-01", "0001-01-01T00:00:00Z", "9999-12-31", "x" * 100])
def test_other_datetimes_are_refused(text):
    with pytest.raises(ValidationError):
        W3DateTime().deserialize(text)


def test_a_request_query_spans_at_most_ninety_days_and_lists_are_comma_separated():
    query = RequestsQuerySchema().load({"start_date": "2026-01-01T00:00:00Z", "end_date": "2026-03-31T00:00:00Z",
                                        "status": "open,closed", "service_code": "a-b, c-d", "utm_source": "x"})
    assert query["status"] == ["open", "closed"] and query["service_code"] == ["a-b", "c-d"]
    assert query["page"] == 1 and "page_size" not in query  # the handler picks the caller's largest
    with pytest.raises(ValidationError) as caught:
        RequestsQuerySchema().load({"start_date": "2026-01-01T00:00:00Z", "end_date": "2026-04-02T00:00:00Z"})
    assert "end_date" in caught.value.messages
    with pytest.raises(ValidationError):
        RequestsQuerySchema().load({"status": "pending"})


# Partners and errors

def test_partner_keys_are_kept_as_digests_and_matched_exactly():
    settings_ = Open311Settings({"OPEN311_API_KEYS": f"fixmystreet:{key_digest('s3cret')}, civic-app:{key_digest('other')}"})
    assert settings_.partner("s3cret").name == "fixmystreet"
    assert settings_.partner("other").name == "civic-app"
    assert settings_.partner("s3cret ") is None and settings_.partner("") is None and settings_.partner(None) is None
    assert "s3cret" not in repr(settings_.partners)


def test_a_partner_key_names_the_services_it_may_see():
    settings_ = Open311Settings({"OPEN311_API_KEYS": [
        f"fixmystreet:{key_digest('a')}", f"insurer:{key_digest('b')}:disability-allowance|photocopying",
        f"ministry-audit:{key_digest('c')}:*"]})
    public_only, insurer, audit = settings_.partner("a"), settings_.partner("b"), settings_.partner("c")
    assert not public_only.sees("photocopying") and not public_only.all_services
    assert insurer.sees("photocopying") and insurer.sees("disability-allowance") and not insurer.sees("printing")
    assert audit.all_services and audit.sees("anything")


def test_anonymous_pages_are_smaller_than_a_partners():
    settings_ = Open311Settings({"OPEN311_API_KEYS": f"p:{key_digest('k')}"})
    assert settings_.max_page_size(None) == 50 and settings_.max_page_size(settings_.partner("k")) == 1000
    assert Open311Settings({"OPEN311_ANONYMOUS_PAGE_SIZE": "20"}).max_page_size(None) == 20
    for wrong in ("0", "1001", "many"):
        with pytest.raises(ConfigurationError):
            Open311Settings({"OPEN311_ANONYMOUS_PAGE_SIZE": wrong})


@pytest.mark.parametrize("value", ["partner", "partner:abc", f"bad name:{'a' * 64}", f":{'a' * 64}",
                                   f"p:{'a' * 64}:Not A Code", f"p:{'a' * 64}:ok|bad/code"])
def test_malformed_partner_keys_stop_the_service(value):
    with pytest.raises(ConfigurationError):
        parse_partner_keys(value)


def test_request_mode_is_realtime_or_batch():
    assert Open311Settings({}).request_mode == "realtime"
    with pytest.raises(ConfigurationError):
        Open311Settings({"OPEN311_REQUEST_MODE": "sometimes"})


@pytest.mark.parametrize("status,reported", [(400, 400), (403, 403), (404, 404), (409, 400), (413, 400),
                                             (415, 400), (422, 400), (429, 429), (500, 500), (503, 503)])
def test_statuses_as_georeport_reports_them(status, reported):
    assert Open311Handler.error_status(status) == reported


def test_platform_errors_become_georeport_errors():
    errors = open311_errors(422, {"error": "application_invalid", "message": "does not fit",
                                  "fields": {"attributes.pages": ["required"], "district": ["not a district"]}})
    assert errors == [{"code": 400, "description": "attribute[pages]: required"},
                      {"code": 400, "description": "address_id: not a district"}]
    assert open311_errors(404, {"error": "not_found", "message": "no such thing", "fields": {}}) == [
        {"code": 404, "description": "no such thing"}]
