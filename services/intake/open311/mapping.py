"""How intake's world reads in GeoReport v2, in plain Python: a catalogue service is an Open311
service, an application a service request; the POST form becomes a submission. No personal data
(name, PINFL, phone) ever goes into an Open311 record."""
import re
from datetime import datetime, time, timezone

from oss_common.calendar import TASHKENT
from oss_common.schemas import localized
from services.intake.domain import Status
from services.intake.open311.schemas import (
    MAX_SPAN, Open311RequestSchema, Open311ServiceDefinitionSchema, Open311ServiceSchema, w3_datetime,
)

SPECIFICATION = "http://wiki.open311.org/GeoReport_v2"
LIST_DATATYPES = ("singlevaluelist", "multivaluelist")
# The records as the answers carry them (the OpenAPI document is built from these schemas).
SERVICE_RECORD, DEFINITION_RECORD = Open311ServiceSchema(), Open311ServiceDefinitionSchema()
REQUEST_RECORD = Open311RequestSchema()
CLOSED_STATUSES = frozenset({Status.APPROVED, Status.REJECTED, Status.ISSUED, Status.WITHDRAWN})
OPEN_STATUSES = frozenset(Status) - CLOSED_STATUSES
STATUS_NOTES = {
    Status.AWAITING_PAYMENT: "Filed; waiting for the fee to be paid.",
    Status.SUBMITTED: "Submitted; waiting for the agency to accept it.",
    Status.ACCEPTED: "Accepted by the agency.",
    Status.IN_REVIEW: "Under review by the agency.",
    Status.RETURNED_FOR_CORRECTION: "Returned to the applicant for correction.",
    Status.RESUBMITTED: "Resubmitted after correction.",
    Status.APPROVED: "Approved; the result can be collected.",
    Status.REJECTED: "Rejected; the decision can be collected.",
    Status.ISSUED: "The decision was handed to the applicant.",
    Status.WITHDRAWN: "Withdrawn by the applicant.",
}
ATTRIBUTE_FIELD = re.compile(r"^attribute\[([^\[\]]{1,64})\](\[\])?$")
# Fields beyond GeoReport v2, or stricter than it, of the POST form and GET arguments (discovery lists them).
EXTENSIONS = (
    {"name": "pinfl", "applies_to": "POST requests", "required": True,
     "description": "The applicant's PINFL (14 digits). Never returned by any Open311 response."},
    {"name": "phone", "applies_to": "POST requests", "required": True,
     "description": "GeoReport's phone field, required here: +998 and 9 digits (spaces, dashes and "
                    "brackets are ignored). Never returned."},
    {"name": "language", "applies_to": "POST requests", "required": False,
     "description": "The applicant's language for notifications: uz (default), ru or en."},
    {"name": "channel", "applies_to": "POST requests", "required": False,
     "description": "How the applicant is notified: sms (default), email (needs email) or none."},
    {"name": "address_id", "applies_to": "POST requests", "required": True,
     "description": "GeoReport's address_id, required here: the district code (see /api/v1/districts)."},
    {"name": "first_name, last_name", "applies_to": "POST requests", "required": True,
     "description": "GeoReport's name fields, required here. Never returned."},
    {"name": "documents", "applies_to": "POST requests", "required": False,
     "description": "Codes of the documents presented, comma-separated; a service's required documents "
                    "are listed by GET /api/v1/services/<code> on the catalogue."},
    {"name": "centre", "applies_to": "POST requests", "required": False,
     "description": "The OSS centre's code; the region's main centre by default."},
    {"name": "lang", "applies_to": "every GET", "required": False,
     "description": "uz, ru or en for names and descriptions; otherwise Accept-Language, otherwise uz."},
    {"name": "page, page_size", "applies_to": "GET requests", "required": False,
     "description": "Pagination: page from 1, page_size at most 1000 (the default)."},
)


def is_offered(definition, region_slug):
    return definition is not None and definition["state"] == "published" and region_slug in definition["regions"]


def open311_status(status):
    return "closed" if Status(status) in CLOSED_STATUSES else "open"


def intake_statuses(open311_statuses):
    """The workflow statuses that read as the given GeoReport statuses (open, closed)."""
    wanted = set()
    if "open" in open311_statuses:
        wanted |= OPEN_STATUSES
    if "closed" in open311_statuses:
        wanted |= CLOSED_STATUSES
    return sorted(status.value for status in wanted)


def request_window(start, end, now):
    """GeoReport's default period: the most recent 90 days, or 90 days from whichever end is given."""
    if start is None and end is None:
        return now - MAX_SPAN, now
    if start is None:
        return end - MAX_SPAN, end
    if end is None:
        return start, start + MAX_SPAN
    return start, end


def expected_datetime(due_date):
    """The legal deadline is a Tashkent date; the request is expected by the end of that day."""
    return datetime.combine(due_date, time(23, 59, 59), tzinfo=TASHKENT)


def changeset(definitions):
    """When the service list or a definition last changed: the newest catalogue update, W3C style."""
    newest = None
    for definition in definitions:
        try:
            moment = datetime.fromisoformat(str(definition.get("updated_at")).replace("Z", "+00:00"))
        except ValueError:
            continue
        moment = moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
        newest = moment if newest is None or moment > newest else newest
    return w3_datetime(newest or datetime(1970, 1, 1, tzinfo=timezone.utc))


def service_record(definition, lang, request_type):
    return SERVICE_RECORD.dump({
        "service_code": definition["code"],
        "service_name": localized(definition["names"], lang),
        "description": localized(definition["descriptions"], lang),
        "metadata": bool(definition.get("attributes")),
        "type": request_type,
        "keywords": ", ".join(definition.get("keywords") or ()),
        "group": definition["group"],
    })


def attribute_record(attribute, lang):
    record = {
        "variable": attribute.get("variable", True),
        "code": attribute["code"],
        "datatype": attribute["datatype"],
        "required": attribute.get("required", False),
        "datatype_description": attribute.get("datatype_description"),
        "order": attribute["order"],
        "description": localized(attribute["description"], lang),
    }
    if attribute["datatype"] in LIST_DATATYPES:
        record["values"] = [{"key": value["key"], "name": localized(value["name"], lang)}
                            for value in attribute.get("values", ())]
    return record


def definition_record(definition, lang):
    attributes = sorted(definition.get("attributes") or (), key=lambda attribute: attribute["order"])
    return DEFINITION_RECORD.dump({"service_code": definition["code"],
                            "attributes": [attribute_record(a, lang) for a in attributes]})


def request_record(application, definition, region, lang):
    """An application as a GeoReport service request. It names the service, the agency, the
    district and the workflow state; never the applicant."""
    district = region.district(application.district)
    agency = (definition or {}).get("agency") or {}
    return REQUEST_RECORD.dump({
        "service_request_id": application.tracking_number,
        "status": open311_status(application.status),
        "status_notes": STATUS_NOTES[Status(application.status)],
        "service_name": localized(definition["names"], lang) if definition else None,
        "service_code": application.service_code,
        "description": None,
        "agency_responsible": localized(agency["names"], lang) if agency.get("names") else application.agency,
        "service_notice": None,
        "requested_datetime": application.submitted_at,
        "updated_datetime": application.updated_at,
        "expected_datetime": expected_datetime(application.due_date),
        "address": ", ".join(filter(None, (localized(district.names, lang) if district else None,
                                           localized(region.names, lang)))),
        "address_id": application.district,
        "zipcode": None,
        "lat": None,
        "long": None,
        "media_url": None,
    })


def attribute_fields(form_items):
    """`attribute[<code>]` and `attribute[<code>][]` form fields as {code: [values]}, and the
    names of fields that start like an attribute but are not one."""
    values, malformed = {}, []
    for name, value in form_items:
        if not name.startswith("attribute"):
            continue
        match = ATTRIBUTE_FIELD.match(name)
        if match is None:
            malformed.append(name)
            continue
        values.setdefault(match[1], []).append(value)
    return values, malformed


def attribute_values(definition, raw):
    """Form strings typed as the service definition says (numbers as numbers, multi-value lists
    as lists); whether the values are acceptable is the intake domain's to judge."""
    by_code = {attribute["code"]: attribute for attribute in definition.get("attributes") or ()}
    values, problems = {}, {}
    for code, given in raw.items():
        datatype = by_code.get(code, {}).get("datatype")
        if datatype == "multivaluelist":
            values[code] = [item for item in given if item != ""]
        elif len(given) > 1:
            problems[code] = ["takes one value"]
        elif datatype == "number":
            values[code] = _number(given[0])
        else:
            values[code] = given[0]
    return values, problems


def _number(text):
    stripped = text.strip()
    if re.fullmatch(r"[+-]?\d{1,15}", stripped):
        return int(stripped)
    if re.fullmatch(r"[+-]?(\d{1,15}(\.\d{0,15})?|\.\d{1,15})([eE][+-]?\d{1,3})?", stripped):
        return float(stripped)
    return text


def submission(form, attributes):
    """The intake submission a loaded POST form stands for."""
    return {
        "service_code": form["service_code"],
        "applicant": {
            "pinfl": form["pinfl"],
            "full_name": f"{form['first_name'].strip()} {form['last_name'].strip()}".strip(),
            "phone": form["phone"],
            "language": form["language"],
            "channel": form["channel"],
            "email": form.get("email"),
        },
        "district": form["address_id"],
        "centre": form.get("centre"),
        "documents": form["documents"],
        "attributes": attributes,
    }


def open311_field(name):
    """A field named in an intake error as the POST form calls it."""
    if name.startswith("attributes."):
        return f"attribute[{name.removeprefix('attributes.')}]"
    if name == "applicant.full_name":
        return "first_name, last_name"
    if name.startswith("applicant."):
        return name.removeprefix("applicant.")
    return {"district": "address_id"}.get(name, name)


def service_notice(application, definition):
    days = definition["deadline_working_days"] if definition else None
    deadline = f" ({days} working day{'' if days == 1 else 's'})" if days else ""
    return f"Expected by {application.due_date.isoformat()}{deadline}."
