"""Regional intake's Open311 GeoReport v2 face under /open311/v2/: discovery, the service list,
service definitions, service requests (GET and POST) and tokens, each as .json and .xml.
A mixin of IntakeService: it uses the service's database, catalogue copy, region and unit of work."""
import logging
import uuid

from kombu.exceptions import KombuError
from marshmallow import ValidationError
from werkzeug.exceptions import HTTPException

from oss_common.errors import ApiError, BadRequest, NotFound, PayloadTooLarge, Unavailable
from oss_common.events import utc_now
from services.intake import use_cases, views
from services.intake.commands import SubmitApplication
from services.intake.domain import check_against_catalogue
from services.intake.open311 import mapping
from services.intake.open311.dependencies import Open311Config, OwnService, queued_rpc
from services.intake.open311.formats import render
from services.intake.open311.http import InvalidApiKey, open311, open311_fallback
from services.intake.open311.schemas import (
    TOKEN, TRACKING_NUMBER, Open311CreatedSchema, Open311DiscoverySchema, Open311QuerySchema,
    Open311RequestSchema, Open311ServiceDefinitionSchema, Open311ServiceSchema, Open311TokenSchema,
    RequestFormSchema, RequestsQuerySchema, normal_phone,
)
from services.intake.schemas import SubmissionSchema
from services.intake.scope import filing_centre

log = logging.getLogger(__name__)

BASE = "/open311/v2"
FORMAT = "<any(json, xml):format>"
LANGUAGES = ("uz", "ru", "en")
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
QUERY = Open311QuerySchema()
REQUESTS_QUERY = RequestsQuerySchema()
FORM = RequestFormSchema()
SUBMISSION = SubmissionSchema()
DISCOVERY, TOKENS, CREATED = Open311DiscoverySchema(), Open311TokenSchema(many=True), Open311CreatedSchema(many=True)


def queued_key(token):
    """The idempotency key a queued request is created under, so its token finds it."""
    return f"open311:{token}"


class Open311:
    """GeoReport v2 for existing Open311 clients; `jurisdiction_id` is the region's slug."""

    open311_settings = Open311Config()
    open311_queue = OwnService()

    @open311("GET", f"{BASE}/discovery.{FORMAT}", summary="GeoReport: service discovery", query=QUERY,
             response=Open311DiscoverySchema)
    def open311_discovery(self, request, format):
        self._open311_query(request, QUERY)
        settings = self.open311_settings
        changeset = mapping.changeset(views.offered_services(self.db, self.region.slug))
        region_name = self.region.names.get("en") or self.region.slug
        document = {
            "changeset": changeset,
            "contact": settings.contact or f"One-Stop-Shop public-service centres of {region_name}",
            "key_service": settings.key_service or (
                "Partners get an api_key from the region's OSS administration; only its SHA-256 is stored."),
            "endpoints": [{
                "specification": mapping.SPECIFICATION,
                "url": request.host_url.rstrip("/") + BASE,
                "changeset": changeset,
                "type": "production",
                "formats": ["text/xml", "application/json"],
            }],
            "extensions": [dict(extension) for extension in mapping.EXTENSIONS],
        }
        return render(format, "discovery", DISCOVERY.dump(document))

    @open311("GET", f"{BASE}/services.{FORMAT}", summary="GeoReport: the services offered in this region",
             query=QUERY, response=Open311ServiceSchema(many=True))
    def open311_services(self, request, format):
        lang = self._open311_language(request, self._open311_query(request, QUERY))
        records = [mapping.service_record(definition, lang, self.open311_settings.request_mode)
                   for definition in views.offered_services(self.db, self.region.slug)]
        return render(format, "services", records)

    @open311("GET", f"{BASE}/services/<string:service_code>.{FORMAT}", summary="GeoReport: a service definition",
             query=QUERY, response=Open311ServiceDefinitionSchema, errors=(404,))
    def open311_service_definition(self, request, service_code, format):
        lang = self._open311_language(request, self._open311_query(request, QUERY))
        return render(format, "service_definition", mapping.definition_record(self._offered(service_code), lang))

    @open311("GET", f"{BASE}/requests.{FORMAT}", summary="GeoReport: service requests, newest first (without an "
             "api_key, only those of public-interest services)", query=REQUESTS_QUERY,
             response=Open311RequestSchema(many=True), errors=(403,))
    def open311_requests(self, request, format):
        query = self._open311_query(request, REQUESTS_QUERY)
        lang = self._open311_language(request, query)
        partner = self._open311_partner(query)
        page_size = self._page_size(query.get("page_size"), partner)
        visible = views.visible_service_codes(self.db, partner)
        if query.get("service_request_id"):
            numbers = [number for number in query["service_request_id"] if TRACKING_NUMBER.match(number)]
            rows = views.open311_requests(self.db, tracking_numbers=numbers, service_codes=visible,
                                          limit=page_size) if numbers else []
        else:
            start, end = mapping.request_window(query.get("start_date"), query.get("end_date"), utc_now())
            rows = views.open311_requests(
                self.db, service_codes=views.narrowed(query.get("service_code") or None, visible),
                statuses=mapping.intake_statuses(query["status"]) if query.get("status") else None,
                start=start, end=end, limit=page_size, offset=(query["page"] - 1) * page_size)
        return render(format, "service_requests", [self._request_record(row, lang) for row in rows])

    @open311("GET", f"{BASE}/requests/<string:service_request_id>.{FORMAT}", summary="GeoReport: one service request "
             "(without an api_key, only one of a public-interest service)", query=QUERY,
             response=Open311RequestSchema(many=True), errors=(403, 404))
    def open311_request(self, request, service_request_id, format):
        query = self._open311_query(request, QUERY)
        lang = self._open311_language(request, query)
        visible = views.visible_service_codes(self.db, self._open311_partner(query))
        rows = views.open311_requests(self.db, tracking_numbers=[service_request_id], service_codes=visible) \
            if TRACKING_NUMBER.match(service_request_id) else []
        if not rows:  # the same answer for one that does not exist and one the caller may not see
            raise NotFound(f"service_request_id {service_request_id!r} not found")
        return render(format, "service_requests", [self._request_record(rows[0], lang)])

    @open311("GET", f"{BASE}/tokens/<string:token>.{FORMAT}", summary="GeoReport: the service_request_id of a token",
             query=QUERY, response=Open311TokenSchema(many=True), errors=(404,))
    def open311_token(self, request, token, format):
        self._open311_query(request, QUERY)
        application = views.find_by_key(self.db, queued_key(token)) if TOKEN.match(token) else None
        if application is None:
            raise NotFound(f"token {token!r} not found; a queued request gets its service_request_id within seconds")
        return render(format, "service_requests",
                      TOKENS.dump([{"service_request_id": application.tracking_number, "token": token}]))

    @open311("POST", f"{BASE}/requests.{FORMAT}", summary="GeoReport: file a service request (needs an api_key)",
             form=FORM, response=Open311CreatedSchema(many=True), errors=(403, 404))
    def open311_create_request(self, request, format):
        items = self._open311_form(request)
        data = {}
        for name, value in items:
            if not name.startswith("attribute"):
                data[name] = f"{data[name]},{value}" if name in data else value
        data.setdefault("api_key", request.args.get("api_key", ""))
        partner = self.open311_settings.partner(data["api_key"])
        if partner is None:
            raise InvalidApiKey("Invalid api_key received -- can't proceed with create_request")
        self._check_jurisdiction(data.get("jurisdiction_id") or request.args.get("jurisdiction_id"))
        form = FORM.load(data)
        raw_attributes, malformed = mapping.attribute_fields(items)
        if malformed:
            raise BadRequest("malformed attribute fields", fields={name: ["not an attribute[<code>] field"] for name in malformed})
        definition = self._offered(form["service_code"])
        attributes, problems = mapping.attribute_values(definition, raw_attributes)
        if problems:
            raise BadRequest("invalid attributes", fields={f"attributes.{code}": messages for code, messages in problems.items()})
        submission = SUBMISSION.load(mapping.submission(dict(form, phone=normal_phone(form["phone"])), attributes))
        if self.open311_settings.request_mode == "batch":
            check_against_catalogue(self.region, definition, submission, filing_centre(self.region, submission["centre"]))
            token = uuid.uuid4().hex
            try:
                self.open311_queue.create_queued_request.call_async(token, submission, f"open311:{partner.name}")
            except (KombuError, OSError) as exc:
                raise Unavailable("the request queue is unreachable; try again shortly") from exc
            record = {"token": token, "service_notice": "Queued: tokens/<token> gives its service_request_id.",
                      "account_id": None}
        else:
            command = SubmitApplication(submission, actor=f"open311:{partner.name}")
            application, _created = use_cases.submit(self.unit_of_work(), command)
            record = {"service_request_id": application.tracking_number,
                      "service_notice": mapping.service_notice(application, definition), "account_id": None}
        return render(format, "service_requests", CREATED.dump([record]))

    @open311_fallback("GET,POST,PUT,PATCH,DELETE", f"{BASE}/<path:resource>", hidden=True)
    def open311_unknown(self, request, resource):
        raise NotFound(f"no Open311 resource {request.method} {resource!r} here; see {BASE}/discovery.json")

    @queued_rpc
    def create_queued_request(self, token, submission, actor=None):
        """Create the application an Open311 POST queued (batch mode); its token is the idempotency key
        and `actor` the partner that posted it, for the audit trail. A database that is away puts the
        request back on the queue (see QueuedRpc); a request that does not fit is refused for good."""
        try:
            command = SubmitApplication(SUBMISSION.load(submission), queued_key(token), actor=actor)
            application, _created = use_cases.submit(self.unit_of_work(), command)
        except (ApiError, ValidationError) as exc:
            log.warning("queued Open311 request %s refused (%s)", token, type(exc).__name__)
            return None
        return application.tracking_number

    # helpers

    def _check_jurisdiction(self, jurisdiction_id):
        if jurisdiction_id and jurisdiction_id != self.region.slug:
            raise NotFound(f"jurisdiction_id {jurisdiction_id!r} not found; this endpoint serves {self.region.slug!r}")

    def _open311_query(self, request, schema):
        """GET arguments; one given several times counts as its values comma-separated."""
        query = schema.load({name: ",".join(values) for name, values in request.args.lists()})
        self._check_jurisdiction(query.get("jurisdiction_id"))
        return query

    def _open311_partner(self, query):
        """The partner whose api_key a GET carries (None without one); 403 for a key no partner holds."""
        if not query.get("api_key"):
            return None
        partner = self.open311_settings.partner(query["api_key"])
        if partner is None:
            raise InvalidApiKey("Invalid api_key received")
        return partner

    def _page_size(self, asked, partner):
        largest = self.open311_settings.max_page_size(partner)
        if asked is not None and asked > largest:
            whose = "with an api_key" if partner is not None else "without an api_key"
            raise BadRequest(f"page_size is at most {largest} {whose}", fields={"page_size": [f"at most {largest} {whose}"]})
        return asked or largest

    def _open311_language(self, request, query):
        return query.get("lang") or request.accept_languages.best_match(LANGUAGES) or "uz"

    def _open311_form(self, request):
        if request.mimetype not in FORM_TYPES:
            raise BadRequest("send the request as application/x-www-form-urlencoded",
                             fields={"body": ["must be application/x-www-form-urlencoded"]})
        try:
            return list(request.form.items(multi=True))
        except HTTPException as exc:  # werkzeug refuses a body over the size or field-count limits
            raise PayloadTooLarge("request body too large", fields={"body": ["too large"]}) from exc

    def _offered(self, service_code):
        definition = self.catalogue.get(service_code)
        if not mapping.is_offered(definition, self.region.slug):
            raise NotFound(f"service_code {service_code!r} not found in {self.region.slug}")
        return definition

    def _request_record(self, application, lang):
        return mapping.request_record(application, self.catalogue.get(application.service_code), self.region, lang)
