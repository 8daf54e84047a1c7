"""What notifications reads from the bus and from callers: application event bodies, delivery queries."""
from datetime import timezone

from marshmallow import EXCLUDE, Schema, fields, validate

from oss_common.schemas import StrictSchema

TRACKING_NUMBER = validate.Regexp(r"^[A-Z]{2}-\d{4}-\d{6,}$", error="must be a tracking number such as JI-2026-000123")


class ContactSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    phone = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=32))
    email = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=254))


class ApplicationEventSchema(Schema):
    """The part of an application event a message and the deadline watch need; the rest is dropped."""

    class Meta:
        unknown = EXCLUDE

    tracking_number = fields.String(required=True, validate=validate.Length(min=1, max=32))
    service_code = fields.String(required=True, validate=validate.Length(min=1, max=64))
    service_name = fields.Dict(keys=fields.String(), values=fields.String(), load_default=None, allow_none=True)
    agency = fields.String(required=True, validate=validate.Length(min=1, max=64))
    status = fields.String(required=True, validate=validate.Length(min=1, max=32))
    previous_status = fields.String(load_default=None, allow_none=True)
    reason = fields.String(load_default=None, allow_none=True)
    changed_at = fields.AwareDateTime(required=True, format="iso", default_timezone=timezone.utc)
    due_date = fields.Date(required=True)
    language = fields.String(load_default=None, allow_none=True)
    channel = fields.String(load_default=None, allow_none=True)
    contact = fields.Nested(ContactSchema, load_default=dict)


class DeliveryQuerySchema(StrictSchema):
    tracking = fields.String(required=True, validate=TRACKING_NUMBER)



# What the HTTP API answers (documentation for the OpenAPI document; the views are built in operations).

class DeliveryViewSchema(StrictSchema):
    """One delivery: no address and no message text."""

    event_id = fields.String(required=True)
    event_type = fields.String(required=True)
    audience = fields.String(required=True, validate=validate.OneOf(["citizen", "agency"]))
    channel = fields.String(required=True, validate=validate.OneOf(["sms", "email", "none"]))
    language = fields.String(required=True, allow_none=True)
    status = fields.String(required=True, validate=validate.OneOf(["pending", "sent", "failed", "skipped"]))
    attempts = fields.Integer(required=True)
    last_error = fields.String(required=True, allow_none=True)
    created_at = fields.String(required=True, metadata={"format": "date-time"})
    updated_at = fields.String(required=True, metadata={"format": "date-time"})
    sent_at = fields.String(required=True, allow_none=True, metadata={"format": "date-time"})


class DeliveryListSchema(StrictSchema):
    tracking_number = fields.String(required=True)
    items = fields.List(fields.Nested(DeliveryViewSchema), required=True)
