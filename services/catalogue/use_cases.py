"""What the catalogue changes, one function per use case of `(unit of work, command)`: load a file, create
or change a service, publish or retire it. Each commits once, with the events it raises; no SQL, no nameko."""
from oss_common.events import utc_now
from services.catalogue import events
from services.catalogue.commands import ChangeServiceState, LoadCatalogue, SetBaseAmount, UpsertService
from services.catalogue.exceptions import ServiceNotFound, UnknownReference
from services.catalogue.unit_of_work import CatalogueUnitOfWork

KEPT_APART = ("code", "agency", "group", "public_interest")  # columns of their own, not part of the definition


def upsert(uow: CatalogueUnitOfWork, command: UpsertService):
    """Create or change one service; returns its row."""
    with uow:
        row, _changed = _upsert_service(uow, command.definition, command.actor)
        uow.commit()
    return row


def set_state(uow: CatalogueUnitOfWork, command: ChangeServiceState):
    """Publish, retire or draft a service; its version rises and the change is announced only when the state changes."""
    with uow:
        row = uow.services.get(command.code)
        if row is None:
            raise service_not_found(command.code)
        if row.state != command.state:
            _change(uow, row, {"state": command.state}, command.actor)
        uow.commit()
    return row


def load_catalogue(uow: CatalogueUnitOfWork, command: LoadCatalogue) -> dict:
    """Load a catalogue file, all of it or nothing; loading the same file again changes nothing."""
    document = command.document
    with uow:
        summary = {"groups": uow.groups.keep(document["groups"]), "agencies": uow.agencies.keep(document["agencies"]),
                   "base_amounts": uow.base_amounts.keep(document.get("base_amounts", []), command.actor, utc_now()),
                   "services_changed": 0, "services_unchanged": 0}
        announced = set()
        for service in document["services"]:
            row, changed = _upsert_service(uow, service, command.actor, state=service["state"])
            summary["services_changed" if changed else "services_unchanged"] += 1
            if changed:
                announced.add(row.code)
        if summary["base_amounts"]:
            _announce_new_fees(uow, command.actor, skip=announced)
        uow.commit()
    return summary


def set_base_amount(uow: CatalogueUnitOfWork, command: SetBaseAmount) -> None:
    """Record a value of the base calculation amount from the day it takes effect (a value already
    recorded for that day is replaced); every service whose fee follows it is announced again with its
    new amounts, so the regions' copies invoice by it."""
    with uow:
        if uow.base_amounts.keep([command.value], command.actor, utc_now()):
            _announce_new_fees(uow, command.actor)
        uow.commit()


def _announce_new_fees(uow, actor, skip=frozenset()):
    """A new version of every service whose fee is a multiple of the base amount (its amounts changed)."""
    for row in uow.services.listed(state="all"):
        if row.code not in skip and row.definition["fee"].get("bca_multiple") is not None:
            _change(uow, row, {}, actor)


def service_not_found(code: str) -> ServiceNotFound:
    return ServiceNotFound(f"no service {code!r}", fields={"code": ["unknown service"]})


def _upsert_service(uow, definition, actor, state=None):
    """Create or change a service; the version rises only when something really changed. A new service
    starts as a draft unless `state` says otherwise. Returns (row, changed)."""
    _check_references(uow, definition)
    content = {key: value for key, value in definition.items() if key not in KEPT_APART + ("state",)}
    values = {"definition": content, "public_interest": bool(definition.get("public_interest", False)),
              "group": definition["group"], "agency": definition["agency"]}
    row = uow.services.get(definition["code"])
    if row is None:
        row = uow.services.add({"code": definition["code"], **values, "state": state or "draft", "version": 1,
                                "updated_at": utc_now()})
        _announce(uow, row, actor)
        return row, True
    values["state"] = state or row.state
    if all(getattr(row, name) == value for name, value in values.items()):
        return row, False
    _change(uow, row, values, actor)
    return row, True


def _change(uow, row, values, actor):
    for name, value in values.items():
        setattr(row, name, value)
    row.version += 1
    row.updated_at = utc_now()
    uow.services.changed(row)
    _announce(uow, row, actor)


def _announce(uow, row, actor):
    """Publish the change (through the outbox) and write it to the audit trail."""
    uow.emit(events.EVENT_FOR_STATE[row.state], events.service_data(row, uow.agencies.names(), uow.base_amounts.all()))
    uow.changes.record(row, actor)


def _check_references(uow, definition):
    fields = {}
    if not uow.agencies.exists(definition["agency"]):
        fields["agency"] = ["unknown agency"]
    if not uow.groups.exists(definition["group"]):
        fields["group"] = ["unknown group"]
    if fields:
        raise UnknownReference("the service refers to an unknown agency or group", fields=fields)
