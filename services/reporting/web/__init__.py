"""The ministry's dashboard at /dashboard/ on national reporting, and the monthly series it draws:
every region's months asked for at once. A mixin of NationalReportingService (its `regions`)."""
from pathlib import Path

from oss_common.auth import ANALYST
from oss_common.http import api, query_params
from oss_common.regions import get_region
from oss_common.web import static_pages
from services.reporting.domain import merge_monthly
from services.reporting.metrics import REPORTING_REGIONS_MISSING
from services.reporting.views import iso_date
from services.reporting.schemas import NationalMonthlySchema, PeriodSchema

PAGES = Path(__file__).resolve().parent
PERIOD = PeriodSchema()
NATIONAL_MONTHLY = NationalMonthlySchema()


class DashboardPages(static_pages("dashboard", PAGES / "dashboard", sign_in=True)):
    """The dashboard, and the national endpoint only it needs."""

    @api("GET", "/api/v1/reports/monthly", summary="Every region's figures month by month, asked for at once",
         query=PeriodSchema, response=NationalMonthlySchema, roles=(ANALYST,))
    def http_monthly(self, request):
        query = query_params(request, PERIOD)
        start, end = iso_date(query["start"]), iso_date(query["end"])
        answers, missing = self.regions("monthly", start, end)
        for slug in missing:
            REPORTING_REGIONS_MISSING.labels(slug).inc()
        report = merge_monthly(answers, missing, self.regions.slugs)
        for region in report["regions"]:
            region["names"] = get_region(region["region"]).names
        return NATIONAL_MONTHLY.dump({"start": query["start"], "end": query["end"], **report})
