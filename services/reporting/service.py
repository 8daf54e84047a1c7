"""Reporting's nameko services: `reporting_<region>` (read model, HTTP on 8300 + n) and the national
aggregator `reporting` (HTTP on 8300) that asks every region at once."""
from marshmallow import ValidationError
from nameko.rpc import rpc
from werkzeug.wrappers import Response

from oss_common.auth import ANALYST, OFFICER, OPERATOR
from oss_common.callers import RpcCaller
from oss_common.calendar import local_date
from oss_common.consumers import DeadLetter, event_handler
from oss_common.events import utc_now
from oss_common.http import HealthCheck, HealthSchema, api, query_params
from oss_common.metrics import Metrics
from oss_common.openapi import OpenApiDocs
from oss_common.database import Database
from services.reporting import exports, use_cases, views
from services.reporting.commands import record_event
from services.reporting.dependencies import ReadOnlyDatabase, RegionalReports
from services.reporting.metrics import REPORTING_REGIONS_MISSING
from services.reporting.unit_of_work import ReportingUnitOfWork
from services.reporting.domain import merge_regions
from services.reporting.views import iso_date
from services.reporting.web import DashboardPages
from services.reporting.schemas import (
    FeeReportSchema, NationalSummarySchema, OpenDataQuerySchema, OpenDataReportSchema, OverdueQuerySchema, OverdueReportSchema,
    PeriodSchema, ReportQuerySchema, SlaReportSchema, SummaryReportSchema,
)

PERIOD = PeriodSchema()
DOWNLOADS = ("text/csv", exports.XLSX_MIMETYPE)
REPORT_QUERY = ReportQuerySchema()
OVERDUE_QUERY = OverdueQuerySchema()
OPEN_DATA_QUERY = OpenDataQuerySchema()
NATIONAL_SUMMARY = NationalSummarySchema()
# A region's reports: the ministry's analysts and the region's own staff (a token of another region gets 403).
REGIONAL_READERS = (ANALYST, OPERATOR, OFFICER)


def period(start=None, end=None):
    loaded = PERIOD.load({"from": start, "to": end})
    return loaded["start"], loaded["end"]


def formatted(kind, report, fmt, filename):
    """The report as JSON, or as a CSV or XLSX download."""
    if fmt == "json":
        return report
    tables = exports.report_tables(kind, report)
    if fmt == "csv":
        body, mimetype = exports.to_csv(tables), "text/csv"
    else:
        body, mimetype = exports.to_xlsx(tables), exports.XLSX_MIMETYPE
    return Response(body, mimetype=mimetype, headers={"Content-Disposition": f'attachment; filename="{filename}.{fmt}"'})


class ReportingService(HealthCheck, OpenApiDocs):
    """Runs once per region; the runner names it `reporting_<slug>` from the REGION setting."""

    name = "reporting"

    db = Database()
    reader = ReadOnlyDatabase()
    metrics = Metrics()
    caller = RpcCaller()

    # Events

    @event_handler("{region}.application.*", queue_suffix="applications")
    def on_application_event(self, event):
        try:
            command = record_event(event)
        except ValidationError as exc:
            raise DeadLetter(f"application event body invalid: {', '.join(sorted(exc.messages))}") from exc
        if command is not None:
            use_cases.record_event(ReportingUnitOfWork(self.db), command)

    # RPC: the same readers as HTTP (the national view asks with its analyst's token)

    @rpc
    def summary(self, start=None, end=None):
        self.caller.require(*REGIONAL_READERS)
        return views.summary(self.reader, *period(start, end))

    @rpc
    def sla(self, start=None, end=None):
        self.caller.require(*REGIONAL_READERS)
        return views.sla(self.reader, *period(start, end))

    @rpc
    def overdue(self, limit=1000, offset=0):
        self.caller.require(*REGIONAL_READERS)
        query = OVERDUE_QUERY.load({"limit": limit, "offset": offset})
        return views.overdue(self.reader, local_date(utc_now()), query["limit"], query["offset"])

    @rpc
    def monthly(self, start=None, end=None):
        """The region's months for the national dashboard."""
        self.caller.require(*REGIONAL_READERS)
        return views.monthly(self.reader, *period(start, end), today=local_date(utc_now()))

    @rpc
    def fees(self, start=None, end=None):
        self.caller.require(*REGIONAL_READERS)
        return views.fees(self.reader, *period(start, end))

    @rpc
    def regional_summary(self, start=None, end=None):
        """The region's part of the national view."""
        self.caller.require(*REGIONAL_READERS)
        return views.regional_summary(self.reader, *period(start, end))

    # HTTP

    @api("GET", "/api/v1/reports/summary", summary="Applications submitted in the period", query=REPORT_QUERY,
         response=SummaryReportSchema, content=DOWNLOADS, roles=REGIONAL_READERS)
    def http_summary(self, request):
        query = query_params(request, REPORT_QUERY)
        report = views.summary(self.reader, query["start"], query["end"])
        return formatted("summary", report, query["format"], f"{self.name}-summary")

    @api("GET", "/api/v1/reports/sla", summary="Decisions within the legal deadline and late", query=REPORT_QUERY,
         response=SlaReportSchema, content=DOWNLOADS, roles=REGIONAL_READERS)
    def http_sla(self, request):
        query = query_params(request, REPORT_QUERY)
        report = views.sla(self.reader, query["start"], query["end"])
        return formatted("sla", report, query["format"], f"{self.name}-sla")

    @api("GET", "/api/v1/reports/overdue", summary="Open applications past their due date", query=OVERDUE_QUERY,
         response=OverdueReportSchema, content=DOWNLOADS, roles=REGIONAL_READERS)
    def http_overdue(self, request):
        query = query_params(request, OVERDUE_QUERY)
        report = views.overdue(self.reader, local_date(utc_now()), query["limit"], query["offset"])
        return formatted("overdue", report, query["format"], f"{self.name}-overdue")

    @api("GET", "/api/v1/reports/fees", summary="Invoiced, paid, refunded and outstanding amounts (tiyin) by month, "
         "centre and service", query=REPORT_QUERY, response=FeeReportSchema, content=DOWNLOADS, roles=REGIONAL_READERS)
    def http_fees(self, request):
        query = query_params(request, REPORT_QUERY)
        report = views.fees(self.reader, query["start"], query["end"])
        return formatted("fees", report, query["format"], f"{self.name}-fees")

    @api("GET", "/api/v1/open-data/summary", summary="Open data: aggregates with small counts withheld",
         query=OPEN_DATA_QUERY, response=OpenDataReportSchema, public=True)
    def http_open_data(self, request):
        query = query_params(request, OPEN_DATA_QUERY)
        return views.open_data(self.reader, query["month"], query["start"], query["end"])


class NationalReportingService(OpenApiDocs, DashboardPages):
    """The central ministry's view: every configured region's figures, asked for at once."""

    name = "reporting"

    regions = RegionalReports()
    metrics = Metrics()
    caller = RpcCaller()

    @rpc
    def national_summary(self, start=None, end=None):
        self.caller.require(ANALYST)
        return self._national_summary(*period(start, end))

    @api("GET", "/api/v1/reports/summary", summary="Every region's figures, asked for at once", query=REPORT_QUERY,
         response=NationalSummarySchema, content=DOWNLOADS, roles=(ANALYST,))
    def http_summary(self, request):
        query = query_params(request, REPORT_QUERY)
        report = self._national_summary(query["start"], query["end"])
        return formatted("national", report, query["format"], "reporting-national-summary")

    @api("GET", "/health", summary="Liveness", response=HealthSchema, public=True)
    def health(self, request):
        return {"status": "ok", "service": self.name}

    def _national_summary(self, start, end):
        answers, missing = self.regions("regional_summary", iso_date(start), iso_date(end))
        for slug in missing:
            REPORTING_REGIONS_MISSING.labels(slug).inc()
        return NATIONAL_SUMMARY.dump({"start": start, "end": end, **merge_regions(answers, missing, self.regions.slugs)})
