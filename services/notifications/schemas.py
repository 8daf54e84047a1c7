"""What notifications reads from callers and answers them: delivery queries and views (application events
are read by their contract, oss_common.application_events)."""
from marshmallow import fields, validate

from oss_common.schemas import StrictSchema, Timestamp

TRACKING_NUMBER = validate.Regexp(r"^[A-Z]{2}-\d{4}-\d{6,}$", error="must be a tracking number such as JI-2026-000123")


class DeliveryQuerySchema(StrictSchema):
    tracking = fields.String(required=True, validate=TRACKING_NUMBER)


# What the HTTP API answers: views.py dumps these, and the OpenAPI document is built from them.

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
    created_at = Timestamp(required=True)
    updated_at = Timestamp(required=True)
    sent_at = Timestamp(required=True, allow_none=True)


class DeliveryListSchema(StrictSchema):
    tracking_number = fields.String(required=True)
    items = fields.List(fields.Nested(DeliveryViewSchema), required=True)
