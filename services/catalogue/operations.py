"""The catalogue's use cases (load a file, upsert, publish, retire: each one unit of work, committed once)
and its questions (list, get, audit trail)."""

from sqlalchemy import select

from oss_common.events import rfc3339, utc_now
from oss_common.schemas import localized
from services.catalogue.exceptions import ServiceNotFound, UnknownReference
from services.catalogue.models import Agency, CatalogueChange, Group, PublicService
from services.catalogue.unit_of_work import CatalogueUnitOfWork

EVENT_FOR_STATE = {
    "published": "catalogue.service_published",
    "retired": "catalogue.service_retired",
    "draft": "catalogue.service_drafted",
}


def service_view(row, agency_names, lang=None):
    """A service as the API and the events show it."""
    definition = row.definition
    view = {
        "code": row.code,
        "names": definition["names"],
        "descriptions": definition["descriptions"],
        "agency": {"code": row.agency, "names": agency_names.get(row.agency, {})},
        "group": row.group,
        "keywords": definition.get("keywords", []),
        "required_documents": definition.get("required_documents", []),
        "attributes": definition.get("attributes", []),
        "fee": definition["fee"],
        "deadline_working_days": definition["deadline_working_days"],
        "regions": definition["regions"],
        "public_interest": row.public_interest,
        "state": row.state,
        "version": row.version,
        "updated_at": rfc3339(row.updated_at),
    }
    if lang:
        view["name"] = localized(definition["names"], lang)
        view["description"] = localized(definition["descriptions"], lang)
    return view


def agency_names(session):
    return {agency.code: agency.names for agency in session.scalars(select(Agency))}


def _announce(uow, row, actor):
    """Publish the change (through the outbox) and write it to the audit trail."""
    uow.emit(EVENT_FOR_STATE[row.state], service_view(row, agency_names(uow.session)))
    uow.session.add(CatalogueChange(code=row.code, version=row.version, state=row.state, actor=actor,
                                    occurred_at=row.updated_at))


def changes(session, code):
    """The service's audit trail, oldest first (404 for an unknown service)."""
    get_service(session, code)
    rows = session.scalars(select(CatalogueChange).where(CatalogueChange.code == code).order_by(CatalogueChange.id))
    return [{"version": row.version, "state": row.state, "actor": row.actor, "at": rfc3339(row.occurred_at)} for row in rows]


def _check_references(session, definition):
    fields = {}
    if session.get(Agency, definition["agency"]) is None:
        fields["agency"] = ["unknown agency"]
    if session.get(Group, definition["group"]) is None:
        fields["group"] = ["unknown group"]
    if fields:
        raise UnknownReference("the service refers to an unknown agency or group", fields=fields)


def upsert(uow: CatalogueUnitOfWork, definition: dict, actor: str) -> PublicService:
    """Create or change one service (a use case of its own)."""
    with uow:
        row, _changed = _upsert_service(uow, definition, actor)
        uow.commit()
    return row


def _upsert_service(uow, definition, actor, state=None):
    """Create or change a service; the version rises only when something really changed.

    A new service starts as a draft unless `state` says otherwise. Returns (row, changed).
    """
    session = uow.session
    _check_references(session, definition)
    definition = {key: value for key, value in definition.items() if key not in ("state",)}
    row = session.get(PublicService, definition["code"])
    content = {key: value for key, value in definition.items() if key not in ("code", "agency", "group", "public_interest")}
    public_interest = bool(definition.get("public_interest", False))
    if row is None:
        row = PublicService(
            code=definition["code"], group=definition["group"], agency=definition["agency"],
            public_interest=public_interest, definition=content, state=state or "draft", version=1, updated_at=utc_now(),
        )
        session.add(row)
        session.flush()
        _announce(uow, row, actor)
        return row, True
    new_state = state or row.state
    if (row.definition == content and row.group == definition["group"] and row.agency == definition["agency"]
            and row.public_interest == public_interest and row.state == new_state):
        return row, False
    row.definition = content
    row.public_interest = public_interest
    row.group = definition["group"]
    row.agency = definition["agency"]
    row.state = new_state
    row.version += 1
    row.updated_at = utc_now()
    session.flush()
    _announce(uow, row, actor)
    return row, True


def set_state(uow: CatalogueUnitOfWork, code: str, state: str, actor: str) -> PublicService:
    """Publish, retire or draft a service; its version rises and the change is announced only when the state changes."""
    with uow:
        row = get_service(uow.session, code)
        if row.state != state:
            row.state = state
            row.version += 1
            row.updated_at = utc_now()
            uow.session.flush()
            _announce(uow, row, actor)
        uow.commit()
    return row


def get_service(session, code):
    row = session.get(PublicService, code)
    if row is None:
        raise ServiceNotFound(f"no service {code!r}", fields={"code": ["unknown service"]})
    return row


def list_services(session, region=None, group=None, state="published", public_interest=None):
    query = select(PublicService).order_by(PublicService.group, PublicService.code)
    if group:
        query = query.where(PublicService.group == group)
    if public_interest is not None:
        query = query.where(PublicService.public_interest == public_interest)
    if state and state != "all":
        query = query.where(PublicService.state == state)
    rows = session.scalars(query).all()
    if region:
        rows = [row for row in rows if region in row.definition["regions"]]
    return rows


def upsert_named(session, model, items):
    changed = 0
    for item in items:
        row = session.get(model, item["code"])
        if row is None:
            session.add(model(code=item["code"], names=item["names"]))
            changed += 1
        elif row.names != item["names"]:
            row.names = item["names"]
            changed += 1
    session.flush()
    return changed


def load_document(uow: CatalogueUnitOfWork, document: dict, actor: str) -> dict:
    """Load a catalogue file, all of it or nothing; loading the same file again changes nothing."""
    with uow:
        summary = {"groups": upsert_named(uow.session, Group, document["groups"]),
                   "agencies": upsert_named(uow.session, Agency, document["agencies"]),
                   "services_changed": 0, "services_unchanged": 0}
        for service in document["services"]:
            _, changed = _upsert_service(uow, service, actor, state=service["state"])
            summary["services_changed" if changed else "services_unchanged"] += 1
        uow.commit()
    return summary


def named_view(rows, lang=None):
    return [
        dict({"code": row.code, "names": row.names}, **({"name": localized(row.names, lang)} if lang else {}))
        for row in rows
    ]
