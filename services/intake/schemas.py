"""What crosses intake's wire: submissions, transitions, queries and application views."""
from marshmallow import ValidationError, fields, validate, validates_schema

from oss_common.schemas import CODE, Language, StrictSchema
from services.intake.domain import Status

PINFL = validate.Regexp(r"^\d{14}$", error="must be exactly 14 digits")
PHONE = validate.Regexp(r"^\+998\d{9}$", error="must be +998 followed by 9 digits")
CHANNELS = ("sms", "email", "none")


class ApplicantSchema(StrictSchema):
    pinfl = fields.String(required=True, validate=PINFL)
    full_name = fields.String(required=True, validate=validate.Length(min=2, max=200))
    phone = fields.String(required=True, validate=PHONE)
    language = Language(required=True)
    channel = fields.String(required=True, validate=validate.OneOf(CHANNELS))
    email = fields.Email(load_default=None, allow_none=True, validate=validate.Length(max=254))

    @validates_schema
    def email_for_email_channel(self, data, **kwargs):
        if data.get("channel") == "email" and not data.get("email"):
            raise ValidationError("required when channel is email", "email")


class SubmissionSchema(StrictSchema):
    service_code = fields.String(required=True, validate=CODE)
    applicant = fields.Nested(ApplicantSchema, required=True)
    district = fields.String(required=True, validate=validate.Regexp(r"^\d{4,10}$", error="must be a district code"))
    centre = fields.String(load_default=None, allow_none=True, validate=CODE)
    documents = fields.List(fields.String(validate=CODE), load_default=list, validate=validate.Length(max=50))
    attributes = fields.Dict(keys=fields.String(validate=validate.Length(min=1, max=64)), load_default=dict,
                             validate=validate.Length(max=100))


class TransitionSchema(StrictSchema):
    to = fields.String(required=True, validate=validate.OneOf([status.value for status in Status]))
    actor = fields.String(required=True, validate=validate.Length(min=1, max=128))
    reason = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=2000))


class ApplicationQuerySchema(StrictSchema):
    status = fields.String(load_default=None, validate=validate.OneOf([status.value for status in Status]))
    service = fields.String(load_default=None, validate=CODE)
    district = fields.String(load_default=None, validate=validate.Length(max=16))
    centre = fields.String(load_default=None, validate=CODE)
    submitted_from = fields.Date(load_default=None)
    submitted_to = fields.Date(load_default=None)
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=1_000_000))
    page_size = fields.Integer(load_default=50, validate=validate.Range(min=1, max=500))

    @validates_schema
    def ordered_range(self, data, **kwargs):
        if data.get("submitted_from") and data.get("submitted_to") and data["submitted_from"] > data["submitted_to"]:
            raise ValidationError("must not be after submitted_to", "submitted_from")


class ExportQuerySchema(StrictSchema):
    after_id = fields.Integer(load_default=0, validate=validate.Range(min=0))
    limit = fields.Integer(load_default=500, validate=validate.Range(min=1, max=5000))


def mask_pinfl(pinfl):
    return f"{pinfl[:2]}**********{pinfl[-2:]}"


def mask_phone(phone):
    return f"{phone[:4]}*****{phone[-4:]}"
