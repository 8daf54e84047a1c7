"""Tracking numbers and the validation messages an operator sees."""
import pytest
from marshmallow import ValidationError

from oss_common.errors import flatten_messages, from_validation_error
from oss_common.events import load_envelope, make_event, routing_key
from services.intake.domain import TRACKING_NUMBER, missing_documents, tracking_number, validate_attributes
from services.intake.schemas import SubmissionSchema, mask_phone, mask_pinfl


def test_tracking_number_format():
    assert tracking_number("JI", 2026, 1) == "JI-2026-000001"
    assert tracking_number("NG", 2027, 123456) == "NG-2027-123456"
    assert TRACKING_NUMBER.match(tracking_number("FA", 2026, 42))
    assert not TRACKING_NUMBER.match("JI-26-1")


ATTRIBUTES = [
    {"code": "pages", "datatype": "number", "required": True, "variable": True, "order": 1},
    {"code": "paper_size", "datatype": "singlevaluelist", "required": False, "variable": True, "order": 2,
     "values": [{"key": "a4"}, {"key": "a3"}]},
    {"code": "extras", "datatype": "multivaluelist", "required": False, "variable": True, "order": 3,
     "values": [{"key": "staple"}, {"key": "bind"}]},
    {"code": "visit_date", "datatype": "datetime", "required": False, "variable": True, "order": 4},
    {"code": "note", "datatype": "string", "required": False, "variable": True, "order": 5},
]


def test_valid_attributes_pass_clean():
    clean, errors = validate_attributes(ATTRIBUTES, {"pages": 3, "paper_size": "a4", "extras": ["bind"],
                                                    "visit_date": "2026-11-30T10:00:00Z", "note": "x"})
    assert errors == {}
    assert clean["pages"] == 3 and clean["extras"] == ["bind"]


@pytest.mark.parametrize("values,field,message", [
    ({}, "pages", "required"),
    ({"pages": "three"}, "pages", "must be a number"),
    ({"pages": True}, "pages", "must be a number"),
    ({"pages": 1, "paper_size": "a5"}, "paper_size", "must be one of: a4, a3"),
    ({"pages": 1, "extras": ["bind", "bind"]}, "extras", "distinct keys"),
    ({"pages": 1, "extras": "bind"}, "extras", "must be a list of keys"),
    ({"pages": 1, "visit_date": "tomorrow"}, "visit_date", "ISO 8601"),
    ({"pages": 1, "note": "x" * 256}, "note", "at most 255"),
    ({"pages": 1, "colour": "red"}, "colour", "unknown attribute"),
])
def test_attribute_errors_name_the_attribute(values, field, message):
    _, errors = validate_attributes(ATTRIBUTES, values)
    assert field in errors
    assert message in errors[field][0]


def test_missing_documents_in_catalogue_order():
    required = [{"code": "passport"}, {"code": "birth-certificate"}, {"code": "photo"}]
    assert missing_documents(required, ["photo"]) == ["passport", "birth-certificate"]
    assert missing_documents(required, ["passport", "birth-certificate", "photo", "extra"]) == []


def test_schema_errors_are_flattened_to_field_paths():
    with pytest.raises(ValidationError) as error:
        SubmissionSchema().load({"service_code": "x!", "applicant": {"pinfl": "123", "phone": "998"}, "colour": 1})
    fields = flatten_messages(error.value.messages)
    assert "must be exactly 14 digits" in fields["applicant.pinfl"][0]
    assert "applicant.phone" in fields
    assert "applicant.full_name" in fields
    assert "district" in fields
    assert "colour" in fields
    api_error = from_validation_error(error.value)
    assert api_error.status == 400
    assert "applicant.pinfl" in api_error.message
    assert "123" not in api_error.message  # the offending value is never echoed


def test_email_channel_requires_email():
    with pytest.raises(ValidationError) as error:
        SubmissionSchema().load({"service_code": "abc", "district": "1708401",
                                 "applicant": {"pinfl": "12345678901234", "full_name": "A B", "phone": "+998901234567",
                                               "language": "ru", "channel": "email"}})
    assert "email" in error.value.messages["applicant"]


def test_masks_hide_most_digits():
    assert mask_pinfl("31234567890123") == "31**********23"
    assert mask_phone("+998901234567") == "+998*****4567"


@pytest.mark.parametrize("event_type,region,producer,data,problem", [
    ("application submitted", "jizzakh", "intake_jizzakh", {}, "type"),
    ("application.submitted", "Jizzakh.x", "intake_jizzakh", {}, "region"),
    ("application.submitted", "jizzakh", "", {}, "producer"),
    ("application.submitted", "jizzakh", "intake_jizzakh", ["not", "a", "dict"], "data"),
])
def test_an_event_with_a_bad_part_is_refused_naming_it(event_type, region, producer, data, problem):
    with pytest.raises(ValueError, match=problem):
        make_event(event_type, region, producer, data)


def test_what_make_event_builds_passes_the_envelope_schema():
    envelope = make_event("application.submitted", "jizzakh", "intake_jizzakh", {"tracking_number": "JI-2026-000001"})
    assert load_envelope(envelope) is envelope and routing_key(envelope) == "jizzakh.application.submitted"
