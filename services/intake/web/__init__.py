"""Intake's web faces: the desk of operators and officers at /desk/, the citizen's status page at
/status/, and the JSON endpoints they need beyond the API: the region's published services as
forms, the public status of one application (for its tracking number and status code), and a
new status code for a lost receipt. A mixin of IntakeService (its database, catalogue copy and region)."""
from pathlib import Path

from oss_common.auth import OPERATOR
from oss_common.errors import TooManyRequests
from oss_common.http import api, json_body, principal, query_params
from oss_common.metrics import ANONYMOUS_REFUSED
from oss_common.web import static_pages
from services.intake import use_cases, views
from services.intake.commands import ReissueStatusCode
from services.intake.dependencies import StatusGuesses
from services.intake.domain import TRACKING_NUMBER
from services.intake.exceptions import ApplicationNotFound
from services.intake.metrics import STATUS_LOOKUPS
from services.intake.schemas import (
    PublicStatusSchema, ServiceListSchema, ServiceQuerySchema, StatusCodeSchema, StatusLookupSchema,
)

PAGES = Path(__file__).resolve().parent
SERVICE_QUERY = ServiceQuerySchema()
STATUS_LOOKUP = StatusLookupSchema()


class IntakeWebPages(static_pages("desk", PAGES / "desk", sign_in=True), static_pages("status", PAGES / "status")):
    """The pages, and the endpoints only they need."""

    @api("GET", "/api/v1/services", summary="The region's published services, as forms to file",
         query=ServiceQuerySchema, response=ServiceListSchema)
    def http_services(self, request):
        query = query_params(request, SERVICE_QUERY)
        definitions = views.offered_services(self.db, self.region.slug)
        return {"region": self.region.slug,
                "items": [views.service_form(definition) for definition in definitions
                          if query["group"] in (None, definition["group"])]}

    status_guesses = StatusGuesses()

    @api("POST", "/api/v1/status/<string:tracking_number>", public=True, summary="Where an application stands, "
         "for its tracking number and status code (public: no personal data; 404 alike for an unknown number and a "
         "wrong code; 429 with Retry-After after too many wrong codes)", body=StatusLookupSchema,
         response=PublicStatusSchema, errors=(404, 429))
    def http_public_status(self, request, tracking_number):
        code = STATUS_LOOKUP.load(json_body(request))["code"]
        guesses = self.status_guesses
        address = guesses.address(request)
        refusal = guesses.refusal(address, tracking_number)
        if refusal is not None:
            limit, wait = refusal
            STATUS_LOOKUPS.labels(self.region.slug, "refused").inc()
            ANONYMOUS_REFUSED.labels(self.name, self.region.slug, "http_public_status", limit).inc()
            raise TooManyRequests("too many wrong status codes; try again later", retry_after=wait)
        application = views.application_for_status(self.db, tracking_number, code) \
            if TRACKING_NUMBER.match(tracking_number) else None
        if application is None:
            guesses.wrong(address, tracking_number)
            STATUS_LOOKUPS.labels(self.region.slug, "not_found").inc()
            raise ApplicationNotFound("no application with this tracking number and status code",
                                      fields={"tracking_number": ["unknown, or not with this code"]})
        STATUS_LOOKUPS.labels(self.region.slug, "found").inc()
        return views.public_status(application, self.catalogue.get(application.service_code))

    @api("POST", "/api/v1/applications/<string:tracking_number>/status-code", roles=(OPERATOR,),
         summary="A new status code for the citizen (a lost receipt); the old one stops working",
         response=StatusCodeSchema, errors=(404,))
    def http_reissue_status_code(self, request, tracking_number):
        command = ReissueStatusCode(tracking_number, caller=principal(request))
        code = use_cases.reissue_status_code(self.unit_of_work(), command)
        return StatusCodeSchema().dump({"tracking_number": tracking_number, "status_code": code})
