"""What reporting reads from callers and answers them: report queries and reports (application events are
read by their contract, oss_common.application_events)."""
from datetime import date, timedelta

from marshmallow import ValidationError, fields, post_load, validate, validates_schema

from oss_common.calendar import local_date
from oss_common.events import utc_now
from oss_common.schemas import Day, StrictSchema
from services.reporting.domain import month_of

FORMATS = ("json", "csv", "xlsx")


class PeriodSchema(StrictSchema):
    """`from` and `to`: Tashkent calendar dates, both included; either may be left open."""

    start = Day(data_key="from", load_default=None, allow_none=True)
    end = Day(data_key="to", load_default=None, allow_none=True)

    @validates_schema
    def ordered(self, data, **kwargs):
        if data.get("start") and data.get("end") and data["start"] > data["end"]:
            raise ValidationError("must not be after to", "from")


class ReportQuerySchema(PeriodSchema):
    format = fields.String(load_default="json", validate=validate.OneOf(FORMATS))


class OverdueQuerySchema(StrictSchema):
    format = fields.String(load_default="json", validate=validate.OneOf(FORMATS))
    limit = fields.Integer(load_default=1000, validate=validate.Range(min=1, max=100_000))
    offset = fields.Integer(load_default=0, validate=validate.Range(min=0, max=2**31 - 1))


class OpenDataQuerySchema(StrictSchema):
    """One whole calendar month that has ended (Tashkent time); by default the last one.

    Fixed, closed periods only: with any `from`/`to`, two overlapping periods' difference would give
    away the small counts that each answer withholds, and a month still running would do the same
    between two readings of it.
    """

    month = fields.String(load_default=None, validate=validate.Regexp(r"^\d{4}-(0[1-9]|1[0-2])$", error="must be YYYY-MM"),
                          metadata={"description": "YYYY-MM, a month that has ended; default: the last one"})

    @post_load
    def whole_month(self, data, **kwargs):
        today = local_date(utc_now())
        this_month = today.replace(day=1)
        if data["month"] is None:
            start = (this_month - timedelta(days=1)).replace(day=1)
        else:
            year, month = int(data["month"][:4]), int(data["month"][5:])
            if year < 1970:  # also keeps year 0, which `date` cannot hold, from becoming a 500
                raise ValidationError("must not be before 1970-01", "month")
            start = date(year, month, 1)
            if start >= this_month:
                raise ValidationError(f"must be a month that has ended (before {month_of(today)})", "month")
        next_month = (start + timedelta(days=31)).replace(day=1)
        return {"month": month_of(start), "start": start, "end": next_month - timedelta(days=1)}


# What the HTTP API answers: views.py dumps the summary, SLA, overdue and open-data reports with these, and the
# OpenAPI document is built from them.

class ServiceCountSchema(StrictSchema):
    service_code = fields.String(required=True)
    applications = fields.Integer(required=True)


class DistrictCountSchema(StrictSchema):
    district = fields.String(required=True)
    applications = fields.Integer(required=True)


class CentreCountSchema(StrictSchema):
    centre = fields.String(required=True)
    applications = fields.Integer(required=True)


class ChannelCountSchema(StrictSchema):
    channel = fields.String(required=True)
    applications = fields.Integer(required=True)


class StatusCountSchema(StrictSchema):
    status = fields.String(required=True)
    applications = fields.Integer(required=True)


class DayCountSchema(StrictSchema):
    day = fields.Date(required=True)
    applications = fields.Integer(required=True)


class SummaryTotalsSchema(StrictSchema):
    applications = fields.Integer(required=True)
    open = fields.Integer(required=True)


class SummaryReportSchema(StrictSchema):
    start = fields.Date(data_key="from", required=True, allow_none=True)
    end = fields.Date(data_key="to", required=True, allow_none=True)
    totals = fields.Nested(SummaryTotalsSchema, required=True)
    by_day = fields.List(fields.Nested(DayCountSchema), required=True)
    by_service = fields.List(fields.Nested(ServiceCountSchema), required=True)
    by_district = fields.List(fields.Nested(DistrictCountSchema), required=True)
    by_centre = fields.List(fields.Nested(CentreCountSchema), required=True)
    by_channel = fields.List(fields.Nested(ChannelCountSchema), required=True)
    by_status = fields.List(fields.Nested(StatusCountSchema), required=True)


class ProcessingSchema(StrictSchema):
    decided = fields.Integer(required=True)
    median_seconds = fields.Float(required=True, allow_none=True)
    p90_seconds = fields.Float(required=True, allow_none=True)


class DecisionFiguresSchema(StrictSchema):
    decided = fields.Integer(required=True)
    approved = fields.Integer(required=True)
    rejected = fields.Integer(required=True)
    on_time = fields.Integer(required=True)
    late = fields.Integer(required=True)
    compliance = fields.Float(required=True, allow_none=True)


class SlaTotalsSchema(DecisionFiguresSchema):
    processing = fields.Nested(ProcessingSchema, required=True)


class SlaServiceSchema(SlaTotalsSchema):
    service_code = fields.String(required=True)


class SlaDistrictSchema(DecisionFiguresSchema):
    district = fields.String(required=True)


class SlaReportSchema(StrictSchema):
    start = fields.Date(data_key="from", required=True, allow_none=True)
    end = fields.Date(data_key="to", required=True, allow_none=True)
    totals = fields.Nested(SlaTotalsSchema, required=True)
    by_service = fields.List(fields.Nested(SlaServiceSchema), required=True)
    by_district = fields.List(fields.Nested(SlaDistrictSchema), required=True)


class OverdueItemSchema(StrictSchema):
    tracking_number = fields.String(required=True)
    service_code = fields.String(required=True)
    district = fields.String(required=True)
    centre = fields.String(required=True)
    status = fields.String(required=True)
    due_date = fields.Date(required=True)
    days_overdue = fields.Integer(required=True)


class OverdueReportSchema(StrictSchema):
    as_of = fields.Date(required=True)
    open_backlog = fields.Integer(required=True)
    overdue = fields.Integer(required=True)
    items = fields.List(fields.Nested(OverdueItemSchema), required=True)


class OpenDataTotalsSchema(StrictSchema):
    applications = fields.Integer(required=True, allow_none=True)


class OpenDataServiceSchema(StrictSchema):
    service_code = fields.String(required=True)
    applications = fields.Integer(required=True, allow_none=True)
    suppressed = fields.Boolean(required=True)


class OpenDataDistrictSchema(StrictSchema):
    district = fields.String(required=True)
    applications = fields.Integer(required=True, allow_none=True)
    suppressed = fields.Boolean(required=True)


class OpenDataChannelSchema(StrictSchema):
    channel = fields.String(required=True)
    applications = fields.Integer(required=True, allow_none=True)
    suppressed = fields.Boolean(required=True)


class OpenDataStatusSchema(StrictSchema):
    status = fields.String(required=True)
    applications = fields.Integer(required=True, allow_none=True)
    suppressed = fields.Boolean(required=True)


class FeeFiguresSchema(StrictSchema):
    """Money in tiyin (integers) of the invoices issued in the period's months."""

    invoices = fields.Integer()
    invoiced_tiyin = fields.Integer(required=True, allow_none=True)
    paid_tiyin = fields.Integer(required=True, allow_none=True, metadata={"description": "every payment"})
    refunded_tiyin = fields.Integer(required=True, allow_none=True, metadata={"description": "every refund"})
    outstanding_tiyin = fields.Integer(required=True, allow_none=True, metadata={"description": "invoices still unpaid"})


class FeeLineSchema(FeeFiguresSchema):
    region = fields.String()
    month = fields.String(required=True, metadata={"description": "YYYY-MM of the invoice"})
    centre = fields.String(required=True)
    service_code = fields.String(required=True)


class FeeRegionSchema(FeeFiguresSchema):
    region = fields.String(required=True)


class FeeReportSchema(StrictSchema):
    start = fields.Date(data_key="from", required=True, allow_none=True)
    end = fields.Date(data_key="to", required=True, allow_none=True)
    currency = fields.String(required=True)
    totals = fields.Nested(FeeFiguresSchema, required=True)
    rows = fields.List(fields.Nested(FeeLineSchema), required=True)


class NationalFeesSchema(StrictSchema):
    totals = fields.Nested(FeeFiguresSchema, required=True)
    by_region = fields.List(fields.Nested(FeeRegionSchema), required=True)
    rows = fields.List(fields.Nested(FeeLineSchema), required=True)


class OpenDataReportSchema(StrictSchema):
    """Counts under `suppressed_below` are withheld: `applications` null and `suppressed` true."""

    month = fields.String(required=True)
    start = fields.Date(data_key="from", required=True, allow_none=True)
    end = fields.Date(data_key="to", required=True, allow_none=True)
    suppressed_below = fields.Integer(required=True)
    totals = fields.Nested(OpenDataTotalsSchema, required=True)
    by_service = fields.List(fields.Nested(OpenDataServiceSchema), required=True)
    by_district = fields.List(fields.Nested(OpenDataDistrictSchema), required=True)
    by_channel = fields.List(fields.Nested(OpenDataChannelSchema), required=True)
    by_status = fields.List(fields.Nested(OpenDataStatusSchema), required=True)
    fees = fields.Nested(FeeFiguresSchema, required=True, metadata={
        "description": "the month's totals only (null under 5 invoices); never per centre or service"})


class NationalTotalsSchema(StrictSchema):
    """The sums of the regions that answered; without any, applications only."""

    applications = fields.Integer(required=True)
    open = fields.Integer()
    decided = fields.Integer()
    approved = fields.Integer()
    rejected = fields.Integer()
    on_time = fields.Integer()
    late = fields.Integer()
    sla_compliance = fields.Float(required=True, allow_none=True)


class RegionFiguresSchema(StrictSchema):
    region = fields.String(required=True)
    applications = fields.Integer(required=True)
    open = fields.Integer(required=True)
    decided = fields.Integer(required=True)
    approved = fields.Integer(required=True)
    rejected = fields.Integer(required=True)
    on_time = fields.Integer(required=True)
    late = fields.Integer(required=True)
    sla_compliance = fields.Float(required=True, allow_none=True)
    median_processing_seconds = fields.Float(required=True, allow_none=True)
    p90_processing_seconds = fields.Float(required=True, allow_none=True)


class RegionServiceMonthSchema(StrictSchema):
    region = fields.String(required=True)
    service_code = fields.String(required=True)
    month = fields.String(required=True, metadata={"description": "YYYY-MM"})
    applications = fields.Integer(required=True)


class NationalSummarySchema(StrictSchema):
    start = fields.Date(data_key="from", required=True, allow_none=True)
    end = fields.Date(data_key="to", required=True, allow_none=True)
    partial = fields.Boolean(required=True)
    missing = fields.List(fields.String(), required=True)
    regions_asked = fields.List(fields.String(), required=True)
    totals = fields.Nested(NationalTotalsSchema, required=True)
    by_service = fields.List(fields.Nested(ServiceCountSchema), required=True)
    by_status = fields.List(fields.Nested(StatusCountSchema), required=True)
    regions = fields.List(fields.Nested(RegionFiguresSchema), required=True)
    by_region_service_month = fields.List(fields.Nested(RegionServiceMonthSchema), required=True)
    fees = fields.Nested(NationalFeesSchema, required=True)


class MonthFiguresSchema(StrictSchema):
    month = fields.String(required=True, metadata={"description": "YYYY-MM"})
    submitted = fields.Integer(required=True)
    decided = fields.Integer(required=True)
    approved = fields.Integer(required=True)
    rejected = fields.Integer(required=True)
    on_time = fields.Integer(required=True)
    late = fields.Integer(required=True)
    sla_compliance = fields.Float(required=True, allow_none=True)
    backlog = fields.Integer(required=True, metadata={"description": "open applications at the month's end (today for this month)"})


class RegionMonthFiguresSchema(MonthFiguresSchema):
    median_processing_seconds = fields.Float(required=True, allow_none=True)


class RegionMonthlySchema(StrictSchema):
    region = fields.String(required=True)
    names = fields.Dict(keys=fields.String(), values=fields.String(), required=True)
    months = fields.List(fields.Nested(RegionMonthFiguresSchema), required=True)


class NationalMonthlySchema(StrictSchema):
    start = fields.Date(data_key="from", required=True, allow_none=True)
    end = fields.Date(data_key="to", required=True, allow_none=True)
    partial = fields.Boolean(required=True)
    missing = fields.List(fields.String(), required=True)
    regions_asked = fields.List(fields.String(), required=True)
    regions = fields.List(fields.Nested(RegionMonthlySchema), required=True)
    totals = fields.List(fields.Nested(MonthFiguresSchema), required=True)
