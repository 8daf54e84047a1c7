"""The catalogue's nameko service: RPC `catalogue` and the HTTP API on port 8000."""
from nameko.rpc import rpc

from oss_common.auth import ANALYST, CATALOGUE_ADMIN
from oss_common.callers import RpcCaller
from oss_common.database import Database
from oss_common.errors import BadRequest
from oss_common.http import HealthCheck, api, json_body, principal, query_params
from oss_common.metrics import Metrics
from oss_common.openapi import OpenApiDocs
from oss_common.outbox import OutboxRelay
from services.catalogue import use_cases, views
from services.catalogue.commands import ChangeServiceState, LoadCatalogue, SetBaseAmount, UpsertService
from services.catalogue.models import OutboxEvent
from services.catalogue.repository import BaseAmounts
from services.catalogue.unit_of_work import CatalogueUnitOfWork
from services.catalogue.schemas import (
    BaseAmountListSchema, BaseAmountSchema, CatalogueDocumentSchema, ChangeListSchema, LanguageQuerySchema, NamedListSchema, ServiceDefinitionSchema, ServiceListSchema,
    ServiceQuerySchema, ServiceViewSchema,
)

DEFINITION = ServiceDefinitionSchema()
DOCUMENT = CatalogueDocumentSchema()
SERVICE_QUERY = ServiceQuerySchema()
LANGUAGE_QUERY = LanguageQuerySchema()
BASE_AMOUNT = BaseAmountSchema()


class CatalogueService(HealthCheck, OpenApiDocs):
    name = "catalogue"

    db = Database()
    outbox_relay = OutboxRelay(OutboxEvent)
    metrics = Metrics()
    caller = RpcCaller()

    # RPC: reads are open to every service; writes need a catalogue admin's token

    @rpc
    def list_services(self, region=None, group=None, state="published", lang=None, public_interest=None):
        query = SERVICE_QUERY.load({key: value for key, value in dict(
            region=region, group=group, state=state, lang=lang, public_interest=public_interest).items() if value is not None})
        return views.list_services(self.db, query)

    @rpc
    def get_service(self, code, lang=None):
        lang = LANGUAGE_QUERY.load({"lang": lang} if lang else {})["lang"]
        return views.get_service(self.db, code, lang)

    @rpc
    def upsert_service(self, definition):
        actor = self.caller.require(CATALOGUE_ADMIN).actor
        return self._upsert(DEFINITION.load(definition), actor)

    @rpc
    def publish_service(self, code):
        return self._set_state(code, "published", self.caller.require(CATALOGUE_ADMIN).actor)

    @rpc
    def retire_service(self, code):
        return self._set_state(code, "retired", self.caller.require(CATALOGUE_ADMIN).actor)

    @rpc
    def load_catalogue(self, document):
        actor = self.caller.require(CATALOGUE_ADMIN).actor
        return use_cases.load_catalogue(CatalogueUnitOfWork(self.db), LoadCatalogue(DOCUMENT.load(document), actor))

    @rpc
    def list_base_amounts(self):
        return views.base_amounts(self.db)

    @rpc
    def set_base_amount(self, value):
        return self._set_base_amount(BASE_AMOUNT.load(value), self.caller.require(CATALOGUE_ADMIN).actor)

    # HTTP

    @api("GET", "/api/v1/base-amounts", summary="The base calculation amount (BHM) in tiyin from each day it took effect",
         response=BaseAmountListSchema)
    def http_base_amounts(self, request):
        return {"items": views.base_amounts(self.db)}

    @api("POST", "/api/v1/base-amounts", summary="Record a new base calculation amount; paid services' fees follow it",
         roles=(CATALOGUE_ADMIN,), body=BaseAmountSchema, response=BaseAmountListSchema, status=201)
    def http_set_base_amount(self, request):
        return 201, {"items": self._set_base_amount(BASE_AMOUNT.load(json_body(request)), principal(request).actor)}

    @api("GET", "/api/v1/services", summary="List public services", query=ServiceQuerySchema,
         response=ServiceListSchema)
    def http_list_services(self, request):
        items = views.list_services(self.db, query_params(request, SERVICE_QUERY))
        return {"items": items, "total": len(items)}

    @api("GET", "/api/v1/services/<string:code>", summary="One public service", query=LanguageQuerySchema,
         response=ServiceViewSchema, errors=(404,))
    def http_get_service(self, request, code):
        return views.get_service(self.db, code, query_params(request, LANGUAGE_QUERY)["lang"])

    @api("PUT", "/api/v1/services/<string:code>", summary="Create or change a public service", roles=(CATALOGUE_ADMIN,),
         body=ServiceDefinitionSchema, response=ServiceViewSchema, errors=(422,))
    def http_upsert_service(self, request, code):
        body = json_body(request)
        body.setdefault("code", code)
        definition = DEFINITION.load(body)
        if definition["code"] != code:
            raise BadRequest("the body's code differs from the URL's", fields={"code": ["must match the URL"]})
        return self._upsert(definition, principal(request).actor)

    @api("POST", "/api/v1/services/<string:code>/publish", summary="Publish a service", response=ServiceViewSchema,
         roles=(CATALOGUE_ADMIN,), errors=(404,))
    def http_publish(self, request, code):
        return self._set_state(code, "published", principal(request).actor)

    @api("POST", "/api/v1/services/<string:code>/retire", summary="Retire a service", response=ServiceViewSchema,
         roles=(CATALOGUE_ADMIN,), errors=(404,))
    def http_retire(self, request, code):
        return self._set_state(code, "retired", principal(request).actor)

    @api("GET", "/api/v1/services/<string:code>/changes", summary="Audit trail: every change of a service and who made it",
         roles=(CATALOGUE_ADMIN, ANALYST), response=ChangeListSchema, errors=(404,))
    def http_changes(self, request, code):
        return {"code": code, "items": views.changes(self.db, code)}

    @api("GET", "/api/v1/groups", summary="Service groups", query=LanguageQuerySchema, response=NamedListSchema)
    def http_groups(self, request):
        return {"items": views.groups(self.db, query_params(request, LANGUAGE_QUERY)["lang"])}

    @api("GET", "/api/v1/agencies", summary="Agencies", query=LanguageQuerySchema, response=NamedListSchema)
    def http_agencies(self, request):
        return {"items": views.agencies(self.db, query_params(request, LANGUAGE_QUERY)["lang"])}

    # helpers shared by the RPC and HTTP faces

    def _upsert(self, definition, actor):
        row = use_cases.upsert(CatalogueUnitOfWork(self.db), UpsertService(definition, actor))
        return views.service_view(row, views.agency_names(self.db), base_amounts=BaseAmounts(self.db).all())

    def _set_state(self, code, state, actor):
        row = use_cases.set_state(CatalogueUnitOfWork(self.db), ChangeServiceState(code, state, actor))
        return views.service_view(row, views.agency_names(self.db), base_amounts=BaseAmounts(self.db).all())

    def _set_base_amount(self, value, actor):
        use_cases.set_base_amount(CatalogueUnitOfWork(self.db), SetBaseAmount(value, actor))
        return views.base_amounts(self.db)
