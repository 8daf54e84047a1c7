"""Regional intake's nameko service: RPC `intake_<region>` and the HTTP API on port 8100 + n."""
import json

from nameko.rpc import rpc

from oss_common.auth import CENTRE_HEAD, OFFICER, OPERATOR, REGION_ADMIN
from oss_common.callers import RpcCaller
from oss_common.calendar import local_date
from oss_common.consumers import event_handler
from oss_common.database import Database
from oss_common.errors import BadRequest
from oss_common.http import HealthCheck, api, json_body, principal, query_params
from oss_common.metrics import Metrics
from oss_common.openapi import OpenApiDocs
from oss_common.timers import configured_timer
from oss_common.outbox import OutboxRelay
from oss_common.schemas import localized
from services.intake import payme, use_cases, views
from services.intake.commands import (
    DeclareClosure, ExpireUnpaidInvoices, ExtendDeadline, PayAtDesk, RefundFee, SellOfficeService, SubmitApplication, Transition,
)
from services.intake.dependencies import CatalogueCache, Clock, Payments
from services.intake.models import OutboxEvent
from services.intake.open311 import Open311
from services.intake.web import IntakeWebPages
from services.intake.exceptions import NoInvoice
from services.intake.scope import filing_centre, list_limits, require_centre, require_scope
from services.intake.unit_of_work import IntakeUnitOfWork
from services.intake.schemas import (
    ApplicationPageSchema, ApplicationQuerySchema, ApplicationViewSchema, ClosureListSchema, ClosureQuerySchema,
    ClosureRequestSchema, ClosureViewSchema, DeskPaymentSchema, DistrictListSchema, ExportQuerySchema,
    ExtensionRequestSchema, OfficeSaleRequestSchema, OfficeSaleViewSchema, PaymeAnswerSchema, PaymeRequestSchema,
    ReceiptSchema, RefundRequestSchema, SubmissionHeadersSchema, SubmissionSchema, TakingsQuerySchema, TakingsSchema,
    TransitionRequestSchema, TransitionSchema,
)

SUBMISSION = SubmissionSchema()
TRANSITION = TransitionSchema()
TRANSITION_REQUEST = TransitionRequestSchema()
EXTENSION = ExtensionRequestSchema()
CLOSURE = ClosureRequestSchema()
CLOSURE_QUERY = ClosureQuerySchema()
APPLICATION_QUERY = ApplicationQuerySchema()
EXPORT_QUERY = ExportQuerySchema()
DESK_PAYMENT = DeskPaymentSchema()
REFUND_REQUEST = RefundRequestSchema()
OFFICE_SALE = OfficeSaleRequestSchema()
TAKINGS_QUERY = TakingsQuerySchema()
MAX_IDEMPOTENCY_KEY = 128
DEFAULT_INVOICE_EXPIRY_CHECK_SECONDS = 900  # an invoice expires within a quarter of an hour after its due date


class IntakeService(HealthCheck, Open311, OpenApiDocs, IntakeWebPages):
    """Runs once per region; the runner names it `intake_<slug>` from the REGION setting."""

    name = "intake"

    db = Database()
    outbox_relay = OutboxRelay(OutboxEvent)
    catalogue = CatalogueCache()
    clock = Clock()
    payments = Payments()
    metrics = Metrics()
    caller = RpcCaller()

    @property
    def region(self):
        # Looked up once per process (the service instance is new for every worker).
        return self.catalogue.region_record

    def readiness_problems(self):
        return [] if self.catalogue.has_entries() else ["no copy of the catalogue yet (is the catalogue reachable?)"]

    # RPC: the caller's token travels in the call's context (oss_common.callers), checked as HTTP checks it

    @rpc
    def submit_application(self, submission, idempotency_key=None):
        caller = self.caller.require(OPERATOR)
        command = SubmitApplication(SUBMISSION.load(submission), idempotency_key, actor=caller.actor, caller=caller,
                                    submitted_at=self.clock())
        application, created = use_cases.submit(self.unit_of_work(), command)
        return views.filed_view(application, created)

    @rpc
    def get_application(self, tracking_number):
        caller = self.caller.require(OPERATOR, OFFICER)
        application = views.get_application(self.db, tracking_number)
        require_scope(caller, application)
        return views.application_view(application)

    @rpc
    def list_applications(self, **filters):
        caller = self.caller.require(OPERATOR, OFFICER)
        return views.list_applications(self.db, {**APPLICATION_QUERY.load(filters), **list_limits(caller)})

    @rpc
    def transition(self, tracking_number, to, reason=None):
        caller = self.caller.require(OFFICER)
        request = TRANSITION.load({"to": to, "actor": caller.actor, "reason": reason})
        command = Transition(tracking_number, request["to"], request["actor"], request["reason"], caller=caller,
                             at=self.clock())
        return views.application_view(use_cases.transition(self.unit_of_work(), command))

    @rpc
    def extend_deadline(self, tracking_number, working_days, reason):
        caller = self.caller.require(OFFICER)
        body = EXTENSION.load({"working_days": working_days, "reason": reason})
        return self._extend(tracking_number, body, caller)

    @rpc
    def declare_closure(self, centre, day, reason):
        caller = self.caller.require(REGION_ADMIN, CENTRE_HEAD)
        return self._declare_closure(centre, CLOSURE.load({"day": day, "reason": reason}), caller)

    @rpc
    def export_events(self, after_id=0, limit=500):
        """The region's event history (it holds applicants' contacts): its administrators only."""
        self.caller.require(REGION_ADMIN)
        query = EXPORT_QUERY.load({"after_id": after_id, "limit": limit})
        return views.export_events(self.db, query["after_id"], query["limit"])

    @rpc
    def list_districts(self, lang=None):
        return self._districts(lang)

    @rpc
    def catalogue_entry(self, code):
        """The region's cached copy of a catalogue service (None when it has none)."""
        return self.catalogue.get(code)

    # Events

    @event_handler("national.catalogue.*", queue_suffix="catalogue")
    def on_catalogue_changed(self, event):
        use_cases.copy_catalogue_change(self.unit_of_work(), event)
        self.catalogue.invalidate()

    # Timer

    @configured_timer("INVOICE_EXPIRY_CHECK_SECONDS", DEFAULT_INVOICE_EXPIRY_CHECK_SECONDS)
    def expire_unpaid_invoices(self):
        """Invoices unpaid after their due date: cancelled, their applications withdrawn."""
        use_cases.expire_unpaid_invoices(self.unit_of_work(), ExpireUnpaidInvoices(at=self.clock()))

    # HTTP

    @api("GET", "/api/v1/districts", summary="The region's districts", response=DistrictListSchema)
    def http_districts(self, request):
        lang = request.args.get("lang")
        return {"region": self.region.slug, "items": self._districts(lang)}

    @api("POST", "/api/v1/applications", summary="File an application (201; 200 when the Idempotency-Key replays one)",
         roles=(OPERATOR,), headers=SubmissionHeadersSchema, body=SubmissionSchema, response=ApplicationViewSchema,
         status=(201, 200), errors=(422,))
    def http_submit(self, request):
        """An operator files at one of its centres: when the body names none, the region's main
        centre if it is one of them, else the operator's first."""
        key = request.headers.get("Idempotency-Key")
        if key is not None and not (0 < len(key) <= MAX_IDEMPOTENCY_KEY and key.isprintable()):
            raise BadRequest("Idempotency-Key must be 1 to 128 printable characters",
                             fields={"Idempotency-Key": ["1 to 128 printable characters"]})
        caller = principal(request)
        command = SubmitApplication(SUBMISSION.load(json_body(request)), key, actor=caller.actor, caller=caller,
                                    submitted_at=self.clock())
        application, created = use_cases.submit(self.unit_of_work(), command)
        view = views.filed_view(application, created)
        return (201 if created else 200), {"Location": f"/api/v1/applications/{application.tracking_number}"}, view

    @api("GET", "/api/v1/applications", summary="Applications, newest first (an operator's centres, an officer's agencies)",
         roles=(OPERATOR, OFFICER), query=ApplicationQuerySchema, response=ApplicationPageSchema)
    def http_list(self, request):
        query = query_params(request, APPLICATION_QUERY)
        return views.list_applications(self.db, {**query, **list_limits(principal(request))})

    @api("GET", "/api/v1/applications/<string:tracking_number>", summary="One application with its history",
         roles=(OPERATOR, OFFICER), response=ApplicationViewSchema, errors=(404,))
    def http_get(self, request, tracking_number):
        application = views.get_application(self.db, tracking_number)
        require_scope(principal(request), application)
        return views.application_view(application)

    @api("POST", "/api/v1/applications/<string:tracking_number>/transitions", summary="Move an application on",
         roles=(OFFICER,), body=TransitionRequestSchema, response=ApplicationViewSchema, errors=(404, 409, 422))
    def http_transition(self, request, tracking_number):
        caller = principal(request)
        body = TRANSITION_REQUEST.load(json_body(request))
        command = Transition(tracking_number, body["to"], caller.actor, body["reason"], caller=caller, at=self.clock())
        return views.application_view(use_cases.transition(self.unit_of_work(), command))

    # Fees

    @api("POST", "/api/v1/applications/<string:tracking_number>/payments", roles=(OPERATOR,),
         summary="The desk takes an application's fee in cash or by card (an invoice is paid once: 409 after)",
         body=DeskPaymentSchema, response=ApplicationViewSchema, status=201, errors=(404, 409, 422))
    def http_pay_at_desk(self, request, tracking_number):
        caller = principal(request)
        body = DESK_PAYMENT.load(json_body(request))
        command = PayAtDesk(tracking_number, body["method"], body["receipt_number"], body["amount_tiyin"], caller.actor,
                            caller=caller, at=self.clock())
        application, _invoice = use_cases.pay_at_desk(self.unit_of_work(), command)
        return 201, views.application_view(views.get_application(self.db, application.tracking_number))

    @api("POST", "/api/v1/applications/<string:tracking_number>/refund", roles=(OFFICER,),
         summary="Refund the fee of a refusal the agency got wrong", body=RefundRequestSchema,
         response=ApplicationViewSchema, errors=(404, 409, 422))
    def http_refund(self, request, tracking_number):
        caller = principal(request)
        body = REFUND_REQUEST.load(json_body(request))
        command = RefundFee(tracking_number, body["reason"], caller.actor, caller=caller, at=self.clock())
        application, _invoice = use_cases.refund_fee(self.unit_of_work(), command)
        return views.application_view(views.get_application(self.db, application.tracking_number))

    @api("GET", "/api/v1/applications/<string:tracking_number>/receipt", roles=(OPERATOR, OFFICER),
         summary="What the desk prints for an application's fee", response=ReceiptSchema, errors=(404, 422))
    def http_receipt(self, request, tracking_number):
        application = views.get_application(self.db, tracking_number)
        require_scope(principal(request), application)
        if application.invoice is None:
            raise NoInvoice("this application has no invoice", fields={"tracking_number": ["no invoice"]})
        return views.receipt_view(self.region.slug, application, self.catalogue.get(application.service_code))

    @api("POST", "/api/v1/office-sales", roles=(OPERATOR,), summary="Sell one of the centre's office services at the desk",
         body=OfficeSaleRequestSchema, response=OfficeSaleViewSchema, status=201, errors=(403, 422))
    def http_sell(self, request):
        caller = principal(request)
        body = OFFICE_SALE.load(json_body(request))
        command = SellOfficeService(body["service_code"], body["quantity"], body["method"], body["centre"], caller.actor,
                                    caller=caller, at=self.clock())
        sale = use_cases.sell_office_service(self.unit_of_work(), command)
        return 201, views.sale_view(sale, self.catalogue.get(sale.service_code))

    @api("GET", "/api/v1/office-sales/takings", roles=(OPERATOR,), query=TakingsQuerySchema, response=TakingsSchema,
         summary="A centre's takings of a day (office sales and fees taken at its desks), in tiyin", errors=(403,))
    def http_takings(self, request):
        caller = principal(request)
        query = query_params(request, TAKINGS_QUERY)
        centre = filing_centre(self.region, query["centre"], caller)
        require_centre(caller, centre)
        return views.takings(self.db, centre, query["day"] or local_date(self.clock()))

    @api("POST", "/api/v1/payme", public=True, summary="Payme's merchant API (JSON-RPC 2.0; Basic auth with the merchant key)",
         body=PaymeRequestSchema, response=PaymeAnswerSchema, unlimited_when=payme.authenticated_caller)
    def http_payme(self, request):
        """Always HTTP 200 with a JSON-RPC answer, as Payme expects; errors are its codes."""
        try:
            payload = json.loads(request.get_data(cache=False) or b"null")
        except (ValueError, RecursionError):
            return payme.answer(None, error=payme.PaymeError(-32700, "Ошибка разбора JSON", "JSON tahlil xatosi", "Parse error"))
        return payme.handle(self.unit_of_work, self.payments, request.headers.get("Authorization"), payload,
                            int(self.clock().timestamp() * 1000))

    @api("POST", "/api/v1/applications/<string:tracking_number>/extensions",
         summary="Extend an application's deadline (working days within its service's limits, with a reason)",
         roles=(OFFICER,), body=ExtensionRequestSchema, response=ApplicationViewSchema, errors=(404, 409, 422))
    def http_extend(self, request, tracking_number):
        return self._extend(tracking_number, EXTENSION.load(json_body(request)), principal(request))

    @api("POST", "/api/v1/centres/<string:centre>/closures",
         summary="Declare a day the centre could not work: its applications' clocks skip it",
         roles=(REGION_ADMIN, CENTRE_HEAD), body=ClosureRequestSchema, response=ClosureViewSchema, status=(201,),
         errors=(409, 422))
    def http_declare_closure(self, request, centre):
        return 201, self._declare_closure(centre, CLOSURE.load(json_body(request)), principal(request))

    @api("GET", "/api/v1/closures", summary="Closure days of the region's centres (a centre head's or operator's own)",
         roles=(REGION_ADMIN, CENTRE_HEAD, OPERATOR, OFFICER), query=ClosureQuerySchema, response=ClosureListSchema)
    def http_closures(self, request):
        query = query_params(request, CLOSURE_QUERY)
        caller = principal(request)
        centres = list(caller.centres) if caller.role in (CENTRE_HEAD, OPERATOR) else None
        return {"items": views.closures(self.db, centres, query["date_from"], query["date_to"])}

    # helpers shared by the RPC, HTTP, Open311 and web faces

    def _extend(self, tracking_number, body, caller):
        command = ExtendDeadline(tracking_number, body["working_days"], body["reason"], caller.actor, caller=caller,
                                 at=self.clock())
        return views.application_view(use_cases.extend_deadline(self.unit_of_work(), command))

    def _declare_closure(self, centre, body, caller):
        command = DeclareClosure(centre, body["day"], body["reason"], caller.actor, caller=caller, at=self.clock())
        closure, moved = use_cases.declare_closure(self.unit_of_work(), command)
        return views.closure_view(closure, moved)

    def unit_of_work(self):
        """This worker's unit of work: its session, the region's catalogue copy and the region."""
        return IntakeUnitOfWork(self.db, self.catalogue, self.region, self.payments.pay_url)

    def _districts(self, lang):
        return [
            {"code": district.code, "slug": district.slug, "names": district.names,
             **({"name": localized(district.names, lang)} if lang else {})}
            for district in self.region.districts
        ]
