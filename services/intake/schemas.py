"""What crosses intake's wire: submissions, transitions, queries and application views (over 300 lines
because each request and answer of intake's faces is declared here once, and the OpenAPI document is built
from them)."""
from marshmallow import ValidationError, fields, validate, validates_schema

from oss_common.schemas import CODE, Day, Language, StrictSchema, Timestamp
from services.intake.domain import CLOSURE, EXTENDED, PAUSED, RESUMED, STARTED, Status

CLOCK_CHANGES = (STARTED, PAUSED, RESUMED, EXTENDED, CLOSURE)

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


class SubmissionHeadersSchema(StrictSchema):
    """Headers a submission may carry (the HTTP face checks them itself; this documents them)."""

    idempotency_key = fields.String(data_key="Idempotency-Key", validate=validate.Length(min=1, max=128), metadata={
        "description": "the same key again answers 200 with the application it first created"})


class TransitionRequestSchema(StrictSchema):
    """A transition over HTTP: the actor is the officer whose token made the request."""

    to = fields.String(required=True, validate=validate.OneOf([status.value for status in Status]))
    reason = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=2000))


class TransitionSchema(TransitionRequestSchema):
    """A transition over RPC, where the caller names the actor for the audit trail."""

    actor = fields.String(required=True, validate=validate.Length(min=1, max=128))


class ExtensionRequestSchema(StrictSchema):
    """An officer's extension of an application's deadline (the actor is the officer whose token made it)."""

    working_days = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=365), metadata={
        "description": "working days added to the due date, at most what the service's clock allows"})
    reason = fields.String(required=True, validate=validate.Length(min=1, max=2000))


class ClosureRequestSchema(StrictSchema):
    """A day the centre could not work (a power cut), declared by a region administrator or the centre's head."""

    day = Day(required=True)
    reason = fields.String(required=True, validate=validate.Length(min=1, max=2000))


class ClosureQuerySchema(StrictSchema):
    date_from = Day(data_key="from", load_default=None)
    date_to = Day(data_key="to", load_default=None)


class ApplicationQuerySchema(StrictSchema):
    status = fields.String(load_default=None, validate=validate.OneOf([status.value for status in Status]))
    service = fields.String(load_default=None, validate=CODE)
    district = fields.String(load_default=None, validate=validate.Length(max=16))
    centre = fields.String(load_default=None, validate=CODE)
    agency = fields.String(load_default=None, validate=CODE)
    active = fields.Boolean(load_default=None, metadata={
        "description": "true: only applications still moving (not issued or withdrawn); false: only those"})
    order = fields.String(load_default="newest", validate=validate.OneOf(["newest", "due"]), metadata={
        "description": "newest: newest first; due: earliest due date first (an officer's queue)"})
    submitted_from = Day(load_default=None)
    submitted_to = Day(load_default=None)
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


# What the HTTP API answers: views.py dumps the applications' views with these, and the OpenAPI document is built
# from them.

class ApplicantViewSchema(StrictSchema):
    """The applicant; in lists the PINFL and phone are masked and the name left out."""

    pinfl = fields.String(required=True)
    full_name = fields.String(required=True, allow_none=True)
    phone = fields.String(required=True)
    language = fields.String(required=True)
    channel = fields.String(required=True)
    email = fields.String(allow_none=True)


class StatusChangeViewSchema(StrictSchema):
    from_status = fields.String(data_key="from", required=True, allow_none=True)
    to_status = fields.String(data_key="to", required=True)
    actor = fields.String(required=True)
    reason = fields.String(required=True, allow_none=True)
    at = Timestamp(required=True, attribute="occurred_at")
    clock = fields.String(required=True, allow_none=True, validate=validate.OneOf(CLOCK_CHANGES), metadata={
        "description": "what the entry did to the legal clock (an extension or a closure keeps the status)"})
    working_days = fields.Integer(required=True, allow_none=True, metadata={
        "description": "started: the service's deadline; paused: the working days left; extended: the days added"})
    due_date = fields.Date(required=True, allow_none=True, metadata={"description": "the due date after this entry"})


class ClockViewSchema(StrictSchema):
    """The application's legal clock."""

    paused = fields.Boolean(required=True, metadata={"description": "returned for correction: the clock is stopped"})
    working_days_left = fields.Integer(required=True, allow_none=True, metadata={
        "description": "while paused: the working days it resumes with (negative: overdue by as many)"})
    started_on = fields.Date(required=True, metadata={"description": "filed or last resumed on (that day does not count)"})
    extensions = fields.Integer(required=True)


class ApplicationViewSchema(StrictSchema):
    tracking_number = fields.String(required=True)
    service_code = fields.String(required=True)
    service_version = fields.Integer(required=True)
    agency = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf([status.value for status in Status]))
    allowed_transitions = fields.List(fields.String(), required=True)
    district = fields.String(required=True)
    centre = fields.String(required=True)
    applicant = fields.Nested(ApplicantViewSchema, required=True)
    documents = fields.List(fields.String(), required=True)
    attributes = fields.Dict(keys=fields.String(), values=fields.Raw(), required=True)
    submitted_at = Timestamp(required=True)
    updated_at = Timestamp(required=True)
    due_date = fields.Date(required=True)
    clock = fields.Nested(ClockViewSchema, required=True)
    history = fields.List(fields.Nested(StatusChangeViewSchema), metadata={"description": "not in lists"})
    invoice = fields.Nested(lambda: InvoiceViewSchema(), allow_none=True, metadata={
        "description": "a paid service's invoice (amounts in tiyin); none for a free service"})
    status_code = fields.String(metadata={
        "description": "the citizen's status code, only in the answer that filed the application (201): print it "
                       "on the receipt; it cannot be shown again, only reissued"})


class ApplicationPageSchema(StrictSchema):
    items = fields.List(fields.Nested(ApplicationViewSchema), required=True)
    total = fields.Integer(required=True)
    page = fields.Integer(required=True)
    page_size = fields.Integer(required=True)


class DistrictViewSchema(StrictSchema):
    code = fields.String(required=True)
    slug = fields.String(required=True)
    names = fields.Dict(keys=fields.String(), values=fields.String(), required=True)
    name = fields.String(metadata={"description": "in the language asked for with `lang`"})


class DistrictListSchema(StrictSchema):
    region = fields.String(required=True)
    items = fields.List(fields.Nested(DistrictViewSchema), required=True)


class ServiceQuerySchema(StrictSchema):
    group = fields.String(load_default=None, validate=CODE)


class ServiceDocumentSchema(StrictSchema):
    code = fields.String(required=True)
    names = fields.Dict(keys=fields.String(), values=fields.String(), required=True)


class ServiceAttributeValueSchema(StrictSchema):
    key = fields.String(required=True)
    name = fields.Dict(keys=fields.String(), values=fields.String(), required=True)


class ServiceAttributeSchema(StrictSchema):
    code = fields.String(required=True)
    datatype = fields.String(required=True, validate=validate.OneOf(
        ["string", "text", "number", "datetime", "singlevaluelist", "multivaluelist"]))
    required = fields.Boolean(required=True)
    description = fields.Dict(keys=fields.String(), values=fields.String(), required=True)
    values = fields.List(fields.Nested(ServiceAttributeValueSchema), required=True)


class ServiceAgencySchema(StrictSchema):
    code = fields.String(required=True)
    names = fields.Dict(keys=fields.String(), values=fields.String(), required=True)


class ServiceFormSchema(StrictSchema):
    code = fields.String(required=True)
    version = fields.Integer(required=True)
    group = fields.String(required=True)
    names = fields.Dict(keys=fields.String(), values=fields.String(), required=True)
    agency = fields.Nested(ServiceAgencySchema, required=True)
    deadline_working_days = fields.Integer(required=True)
    fee = fields.Dict(keys=fields.String(), values=fields.Raw(), required=True, allow_none=True)
    fee_today_tiyin = fields.Integer(allow_none=True, metadata={"description": "a paid service's fee in force today"})
    required_documents = fields.List(fields.Nested(ServiceDocumentSchema), required=True)
    attributes = fields.List(fields.Nested(ServiceAttributeSchema), required=True)


class ServiceListSchema(StrictSchema):
    region = fields.String(required=True)
    items = fields.List(fields.Nested(ServiceFormSchema), required=True)


class StatusLookupSchema(StrictSchema):
    """What a citizen gives to see where an application stands, beside its tracking number."""

    code = fields.String(required=True, validate=validate.Length(min=1, max=32), metadata={
        "description": "the status code on the receipt and in the first message, e.g. K7QP-4MZX (case, spaces and "
                       "dashes do not matter)"})


class StatusCodeSchema(StrictSchema):
    tracking_number = fields.String(required=True)
    status_code = fields.String(required=True, metadata={"description": "the new code; the old one no longer works"})


class PublicStatusChangeSchema(StrictSchema):
    status = fields.String(required=True)
    on = fields.Date(required=True)


class PublicStatusSchema(StrictSchema):
    """An application's status for the citizen holding its tracking number and status code: nothing personal."""

    tracking_number = fields.String(required=True)
    service_code = fields.String(required=True)
    service_name = fields.Dict(keys=fields.String(), values=fields.String(), required=True, allow_none=True)
    status = fields.String(required=True, validate=validate.OneOf([status.value for status in Status]))
    final = fields.Boolean(required=True)
    submitted_on = fields.Date(required=True)
    due_date = fields.Date(required=True)
    clock_paused = fields.Boolean(required=True, metadata={
        "description": "returned for correction: the time limit is stopped until the application is resubmitted"})
    history = fields.List(fields.Nested(PublicStatusChangeSchema), required=True, metadata={
        "description": "status changes (an extension or a closure day moves the due date, not the status)"})


PAYMENT_METHODS = ("cash", "card")
RECEIPT = validate.Regexp(r"^[A-Za-z0-9][A-Za-z0-9/_.-]{0,63}$", error="1 to 64 letters, digits, / _ . -")


class InvoiceViewSchema(StrictSchema):
    invoice_number = fields.String(required=True)
    amount_tiyin = fields.Integer(required=True)
    currency = fields.String(required=True)
    due_date = fields.Date(required=True)
    state = fields.String(required=True, validate=validate.OneOf(("issued", "paid", "refunded", "cancelled")))
    issued_at = Timestamp(required=True)
    method = fields.String(allow_none=True)
    receipt_number = fields.String(allow_none=True)
    paid_at = Timestamp(allow_none=True)
    refunded_at = Timestamp(allow_none=True)
    refund_reason = fields.String(allow_none=True)


class DeskPaymentSchema(StrictSchema):
    """The fee taken at the desk: the method, the till's or card terminal's receipt number, and the
    amount in tiyin (it must be the invoice's)."""

    method = fields.String(required=True, validate=validate.OneOf(PAYMENT_METHODS))
    receipt_number = fields.String(required=True, validate=RECEIPT)
    amount_tiyin = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=10**13))


class RefundRequestSchema(StrictSchema):
    reason = fields.String(required=True, validate=validate.Length(min=1, max=2000))


class ReceiptSchema(StrictSchema):
    """What the desk prints: the application, the service, the centre and the invoice."""

    region = fields.String(required=True)
    tracking_number = fields.String(required=True)
    service_code = fields.String(required=True)
    service_name = fields.Dict(keys=fields.String(), values=fields.String(), allow_none=True)
    centre = fields.String(required=True)
    invoice = fields.Nested(InvoiceViewSchema, required=True)


class OfficeSaleRequestSchema(StrictSchema):
    service_code = fields.String(required=True, validate=CODE)
    quantity = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=10000))
    method = fields.String(required=True, validate=validate.OneOf(PAYMENT_METHODS))
    centre = fields.String(load_default=None, allow_none=True, validate=CODE)


class OfficeSaleViewSchema(StrictSchema):
    receipt_number = fields.String(required=True)
    centre = fields.String(required=True)
    service_code = fields.String(required=True)
    service_name = fields.Dict(keys=fields.String(), values=fields.String(), allow_none=True)
    quantity = fields.Integer(required=True)
    unit_tiyin = fields.Integer(required=True)
    amount_tiyin = fields.Integer(required=True)
    currency = fields.String(required=True)
    method = fields.String(required=True)
    sold_at = Timestamp(required=True)


class TakingsQuerySchema(StrictSchema):
    centre = fields.String(load_default=None, validate=CODE)
    day = Day(load_default=None, metadata={"description": "a Tashkent day; today by default"})


class TakingsLineSchema(StrictSchema):
    service_code = fields.String(required=True)
    method = fields.String(required=True)
    sales = fields.Integer(required=True)
    amount_tiyin = fields.Integer(required=True)


class TakingsSchema(StrictSchema):
    """A centre's takings of a day: office sales and application fees taken at its desks, in tiyin."""

    centre = fields.String(required=True)
    day = fields.Date(required=True)
    office_sales = fields.List(fields.Nested(TakingsLineSchema), required=True)
    fees = fields.List(fields.Nested(TakingsLineSchema), required=True)
    total_tiyin = fields.Integer(required=True)


class PaymeRequestSchema(StrictSchema):
    """A JSON-RPC 2.0 call from Payme (CheckPerformTransaction, CreateTransaction, PerformTransaction,
    CancelTransaction, CheckTransaction, GetStatement); account field `invoice`, amounts in tiyin."""

    jsonrpc = fields.String(load_default="2.0")
    id = fields.Raw(required=True)
    method = fields.String(required=True)
    params = fields.Dict(required=True)


class PaymeAnswerSchema(StrictSchema):
    """Always HTTP 200: `result`, or `error` with Payme's code, a message in ru/uz/en and the field it concerns."""

    jsonrpc = fields.String(required=True)
    id = fields.Raw(required=True, allow_none=True)
    result = fields.Dict()
    error = fields.Dict()


class ClosureViewSchema(StrictSchema):
    centre = fields.String(required=True)
    day = fields.Date(required=True)
    reason = fields.String(required=True)
    declared_by = fields.String(required=True)
    declared_at = Timestamp(required=True)
    applications_moved = fields.Integer(metadata={"description": "in the answer to a declaration: the open "
                                                                 "applications whose due date it moved"})


class ClosureListSchema(StrictSchema):
    items = fields.List(fields.Nested(ClosureViewSchema), required=True)
