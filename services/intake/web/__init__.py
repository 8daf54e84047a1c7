"""Intake's web faces: the desk of operators and officers at /desk/, the citizen's status page at
/status/, and the two JSON endpoints they need beyond the API: the region's published services
as forms, and the public status of one application. A mixin of IntakeService (its database,
catalogue copy and region)."""
from pathlib import Path

from oss_common.http import api, query_params
from oss_common.web import static_pages
from services.intake import views
from services.intake.domain import TRACKING_NUMBER
from services.intake.exceptions import ApplicationNotFound
from services.intake.schemas import PublicStatusSchema, ServiceListSchema, ServiceQuerySchema

PAGES = Path(__file__).resolve().parent
SERVICE_QUERY = ServiceQuerySchema()


class IntakeWebPages(static_pages("desk", PAGES / "desk"), static_pages("status", PAGES / "status")):
    """The pages, and the endpoints only they need."""

    @api("GET", "/api/v1/services", summary="The region's published services, as forms to file",
         query=ServiceQuerySchema, response=ServiceListSchema)
    def http_services(self, request):
        query = query_params(request, SERVICE_QUERY)
        definitions = views.offered_services(self.db, self.region.slug)
        return {"region": self.region.slug,
                "items": [views.service_form(definition) for definition in definitions
                          if query["group"] in (None, definition["group"])]}

    @api("GET", "/api/v1/status/<string:tracking_number>", public=True, summary="Where an application stands "
         "(public: no personal data)", response=PublicStatusSchema, errors=(404,))
    def http_public_status(self, request, tracking_number):
        if not TRACKING_NUMBER.match(tracking_number):
            raise ApplicationNotFound("no such application", fields={"tracking_number": ["unknown"]})
        application = views.get_application(self.db, tracking_number)
        return views.public_status(application, self.catalogue.get(application.service_code))
