"""What reporting reads from the bus and from callers: the application event body and report queries."""
from datetime import timezone

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate, validates_schema

from oss_common.schemas import StrictSchema

FORMATS = ("json", "csv", "xlsx")


class ApplicationEventSchema(Schema):
    """The part of an application event the read model keeps; the contact and anything else is dropped."""

    class Meta:
        unknown = EXCLUDE

    tracking_number = fields.String(required=True, validate=validate.Length(min=1, max=32))
    service_code = fields.String(required=True, validate=validate.Length(min=1, max=64))
    agency = fields.String(required=True, validate=validate.Length(min=1, max=64))
    district = fields.String(required=True, validate=validate.Length(min=1, max=16))
    centre = fields.String(required=True, validate=validate.Length(min=1, max=64))
    channel = fields.String(required=True, validate=validate.Length(min=1, max=8))
    status = fields.String(required=True, validate=validate.Length(min=1, max=32))
    submitted_at = fields.AwareDateTime(required=True, format="iso", default_timezone=timezone.utc)
    changed_at = fields.AwareDateTime(required=True, format="iso", default_timezone=timezone.utc)
    due_date = fields.Date(required=True)
    decided_on_time = fields.Boolean(load_default=None, allow_none=True)


class PeriodSchema(StrictSchema):
    """`from` and `to`: Tashkent calendar dates, both included; either may be left open."""

    start = fields.Date(data_key="from", load_default=None, allow_none=True)
    end = fields.Date(data_key="to", load_default=None, allow_none=True)

    @validates_schema
    def ordered(self, data, **kwargs):
        if data.get("start") and data.get("end") and data["start"] > data["end"]:
            raise ValidationError("must not be after to", "from")


class ReportQuerySchema(PeriodSchema):
    format = fields.String(load_default="json", validate=validate.OneOf(FORMATS))


class OverdueQuerySchema(StrictSchema):
    format = fields.String(load_default="json", validate=validate.OneOf(FORMATS))
    limit = fields.Integer(load_default=1000, validate=validate.Range(min=1, max=100_000))
    offset = fields.Integer(load_default=0, validate=validate.Range(min=0))


class OpenDataQuerySchema(PeriodSchema):
    pass
