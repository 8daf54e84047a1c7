"""What crosses the Open311 GeoReport v2 wire: query arguments, the POST form, and the documents
answered (the latter describe the JSON format for the OpenAPI document)."""
import re
from datetime import date, datetime, time, timedelta, timezone

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate, validates_schema

from oss_common.calendar import TASHKENT
from oss_common.schemas import CODE, CONTROL, CONTROL_MESSAGE, Language, StrictSchema
from services.intake.schemas import CHANNELS, PINFL

OPEN311_STATUSES = ("open", "closed")
REQUEST_TYPES = ("realtime", "batch", "blackbox")
MAX_SPAN = timedelta(days=90)
MAX_LIST_ITEMS = 100
TRACKING_NUMBER = re.compile(r"^[A-Z]{2}-\d{4}-\d{6,}$")
TOKEN = re.compile(r"^[0-9a-f]{32}$")
# `+998 90 123-45-67` and `(90) 1234567` are written forms of the same number.
PHONE_PUNCTUATION = re.compile(r"[\s\-()]")


class Text(fields.String):
    """A string with no control characters (line breaks only where `multiline`)."""

    def __init__(self, *, multiline=False, **kwargs):
        super().__init__(**kwargs)
        self.multiline = multiline

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        if CONTROL.search(text) or (not self.multiline and ("\n" in text or "\r" in text)):
            raise ValidationError(CONTROL_MESSAGE)
        return text


class CommaList(fields.String):
    """`a,b,c`: GeoReport's way of giving several values for one argument."""

    def __init__(self, item=None, **kwargs):
        super().__init__(**kwargs)
        self.item = item or Text()

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        items = [part.strip() for part in text.split(",") if part.strip()]
        if len(items) > MAX_LIST_ITEMS:
            raise ValidationError(f"at most {MAX_LIST_ITEMS} values")
        return [self.item.deserialize(item) for item in items]


class W3DateTime(fields.DateTime):
    """A date or date-time in the W3C profile of ISO 8601; without a zone it is Tashkent time."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str) or len(value) > 64:
            raise ValidationError("must be an ISO 8601 date-time, e.g. 2026-01-01T00:00:00Z")
        text = value.strip()
        try:
            if len(text) == 10:
                moment = datetime.combine(date.fromisoformat(text), time.min)
            else:
                moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError as exc:
            raise ValidationError("must be an ISO 8601 date-time, e.g. 2026-01-01T00:00:00Z") from exc
        if not 1970 <= moment.year <= 2999:
            raise ValidationError("must be between the years 1970 and 2999")
        return moment if moment.tzinfo else moment.replace(tzinfo=TASHKENT)


class Open311QuerySchema(Schema):
    """Arguments every GeoReport GET takes. Unknown arguments are ignored, as clients send their own."""

    class Meta:
        unknown = EXCLUDE

    jurisdiction_id = Text(validate=validate.Length(max=200), metadata={
        "description": "the region's slug; may be left out, as each intake serves one region"})
    lang = Language(metadata={
        "description": "extension: uz, ru or en for names and descriptions (else Accept-Language, else uz)"})
    api_key = fields.String(validate=validate.Length(max=200), metadata={
        "description": "a partner's key: service requests of the services it was given too (without one, "
                       "only those of public-interest services); a key no partner holds is 403"})


class RequestsQuerySchema(Open311QuerySchema):
    service_request_id = CommaList(Text(validate=validate.Length(max=32)), metadata={
        "description": "tracking numbers, comma-separated; overrides every other argument"})
    service_code = CommaList(Text(validate=CODE), metadata={"description": "service codes, comma-separated"})
    start_date = W3DateTime(metadata={"description": "requested on or after; the range spans at most 90 days"})
    end_date = W3DateTime(metadata={"description": "requested on or before; the range spans at most 90 days"})
    status = CommaList(Text(validate=validate.OneOf(OPEN311_STATUSES)), metadata={
        "description": "open, closed or both, comma-separated"})
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=100_000), metadata={
        "description": "extension (pagination)"})
    page_size = fields.Integer(validate=validate.Range(min=1, max=1000), metadata={
        "description": "extension (pagination); at most 1000 (the GeoReport default) with an api_key, "
                       "OPEN311_ANONYMOUS_PAGE_SIZE (50 unless configured) without one, and that many when left out"})

    @validates_schema
    def within_ninety_days(self, data, **kwargs):
        start, end = data.get("start_date"), data.get("end_date")
        if start and end and start > end:
            raise ValidationError("must not be after end_date", "start_date")
        if start and end and end - start > MAX_SPAN:
            raise ValidationError("start_date to end_date may span at most 90 days", "end_date")


class RequestFormSchema(Schema):
    """The POST requests form. `attribute[<code>]` fields (and `attribute[<code>][]` for several
    values) answer the service definition; they are read separately. Unknown fields are ignored."""

    class Meta:
        unknown = EXCLUDE

    api_key = fields.String(required=True, metadata={"description": "the partner's key"})
    jurisdiction_id = Text(validate=validate.Length(max=200))
    service_code = Text(required=True, validate=validate.Length(min=1, max=64))
    lat = fields.Float(validate=validate.Range(min=-90, max=90))
    long = fields.Float(validate=validate.Range(min=-180, max=180))
    address_string = Text(multiline=True, validate=validate.Length(max=1000))
    address_id = Text(required=True, validate=validate.Length(min=1, max=16), metadata={
        "description": "the district code (GET /api/v1/districts)"})
    email = fields.Email(validate=validate.Length(max=254))
    device_id = Text(validate=validate.Length(max=200))
    account_id = Text(validate=validate.Length(max=200))
    first_name = Text(required=True, validate=validate.Length(min=1, max=100))
    last_name = Text(required=True, validate=validate.Length(min=1, max=100))
    phone = Text(required=True, validate=validate.Length(max=32), metadata={"description": "+998 and 9 digits"})
    description = Text(multiline=True, validate=validate.Length(max=4000), metadata={
        "description": "accepted, not stored: the service's attributes carry the details"})
    media_url = Text(validate=validate.Length(max=2000))
    pinfl = Text(required=True, validate=PINFL, metadata={"description": "extension: the applicant's PINFL"})
    language = Language(load_default="uz", metadata={
        "description": "extension: the applicant's language for notifications (uz, ru, en)"})
    channel = Text(load_default="sms", validate=validate.OneOf(CHANNELS), metadata={
        "description": "extension: how the applicant is notified (sms, email, none)"})
    centre = Text(validate=CODE, metadata={
        "description": "extension: the OSS centre's code (default: the region's main centre)"})
    documents = CommaList(Text(validate=CODE), load_default=list, metadata={
        "description": "extension: codes of the documents presented, comma-separated"})

    @validates_schema
    def both_coordinates(self, data, **kwargs):
        if ("lat" in data) != ("long" in data):
            raise ValidationError("lat and long go together", "long" if "lat" in data else "lat")


def normal_phone(phone):
    """`+998 90 123-45-67`, `998901234567` and `90 123 45 67` as `+998901234567`."""
    digits = PHONE_PUNCTUATION.sub("", phone)
    if digits.isascii() and digits.isdigit() and len(digits) == 12 and digits.startswith("998"):
        return "+" + digits
    if digits.isascii() and digits.isdigit() and len(digits) == 9:
        return "+998" + digits
    return digits


# The documents answered, as their JSON looks (XML has the same names, by the Spark convention); the answers are
# dumped by these schemas.

def w3_datetime(moment):
    """An instant as GeoReport writes it: UTC, to the second, `Z` (a naive one is UTC)."""
    aware = moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
    return aware.astimezone(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


class W3Instant(fields.AwareDateTime):
    """A date-time as GeoReport answers it (see w3_datetime)."""

    def _serialize(self, value, attr, obj, **kwargs):
        return None if value is None else w3_datetime(value)


class Open311ServiceSchema(StrictSchema):
    service_code = fields.String(required=True)
    service_name = fields.String(required=True)
    description = fields.String(required=True)
    metadata = fields.Boolean(required=True)
    type = fields.String(required=True, validate=validate.OneOf(REQUEST_TYPES))
    keywords = fields.String(required=True)
    group = fields.String(required=True)


class Open311ValueSchema(StrictSchema):
    key = fields.String(required=True)
    name = fields.String(required=True)


class Open311AttributeSchema(StrictSchema):
    variable = fields.Boolean(required=True)
    code = fields.String(required=True)
    datatype = fields.String(required=True, validate=validate.OneOf(
        ("string", "number", "datetime", "text", "singlevaluelist", "multivaluelist")))
    required = fields.Boolean(required=True)
    datatype_description = fields.String(required=True, allow_none=True)
    order = fields.Integer(required=True)
    description = fields.String(required=True)
    values = fields.List(fields.Nested(Open311ValueSchema), metadata={"description": "list datatypes only"})

    def get_attribute(self, obj, attr, default):
        """Keys only: an attribute without `values` has none (not dict.values)."""
        return obj.get(attr, default)


class Open311ServiceDefinitionSchema(StrictSchema):
    service_code = fields.String(required=True)
    attributes = fields.List(fields.Nested(Open311AttributeSchema), required=True)


class Open311RequestSchema(StrictSchema):
    """An application as a service request: no name, PINFL or phone ever."""

    service_request_id = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(OPEN311_STATUSES))
    status_notes = fields.String(required=True, allow_none=True)
    service_name = fields.String(required=True, allow_none=True)
    service_code = fields.String(required=True)
    description = fields.String(required=True, allow_none=True)
    agency_responsible = fields.String(required=True, allow_none=True)
    service_notice = fields.String(required=True, allow_none=True)
    requested_datetime = W3Instant(required=True)
    updated_datetime = W3Instant(required=True)
    expected_datetime = W3Instant(required=True, allow_none=True)
    address = fields.String(required=True, allow_none=True)
    address_id = fields.String(required=True)
    zipcode = fields.String(required=True, allow_none=True)
    lat = fields.Float(required=True, allow_none=True)
    long = fields.Float(required=True, allow_none=True)
    media_url = fields.String(required=True, allow_none=True)


class Open311CreatedSchema(StrictSchema):
    """The POST answer: `service_request_id` when created at once, `token` when queued."""

    service_request_id = fields.String()
    token = fields.String()
    service_notice = fields.String(required=True, allow_none=True)
    account_id = fields.String(required=True, allow_none=True)


class Open311TokenSchema(StrictSchema):
    service_request_id = fields.String(required=True)
    token = fields.String(required=True)


class Open311ErrorSchema(StrictSchema):
    code = fields.Integer(required=True)
    description = fields.String(required=True)


class Open311EndpointSchema(StrictSchema):
    specification = fields.String(required=True)
    url = fields.String(required=True)
    changeset = fields.String(required=True)
    type = fields.String(required=True, validate=validate.OneOf(("production", "test")))
    formats = fields.List(fields.String(), required=True)


class Open311ExtensionSchema(StrictSchema):
    name = fields.String(required=True)
    applies_to = fields.String(required=True)
    required = fields.Boolean(required=True)
    description = fields.String(required=True)


class Open311DiscoverySchema(StrictSchema):
    changeset = fields.String(required=True)
    contact = fields.String(required=True)
    key_service = fields.String(required=True)
    endpoints = fields.List(fields.Nested(Open311EndpointSchema), required=True)
    extensions = fields.List(fields.Nested(Open311ExtensionSchema), required=True, metadata={
        "description": "this platform's documented extensions to GeoReport v2"})
