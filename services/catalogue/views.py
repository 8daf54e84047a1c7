"""The catalogue's read side: services, groups and agencies as the API shows them, and a service's audit trail."""
from sqlalchemy.orm import Session

from oss_common.schemas import localized
from services.catalogue.events import SERVICE_VIEW, service_values
from services.catalogue.models import Agency, Group
from services.catalogue.repository import BaseAmounts, Changes, NamedCodes, Services
from services.catalogue.schemas import BaseAmountSchema, ChangeViewSchema, NamedViewSchema
from services.catalogue.use_cases import service_not_found

CHANGES = ChangeViewSchema(many=True)
NAMED = NamedViewSchema(many=True)
BASE_AMOUNTS = BaseAmountSchema(many=True)


def service_view(row, agency_names: dict[str, dict], lang: str | None = None, base_amounts: list[tuple] = ()) -> dict:
    """A service as the API shows it; with `lang`, also its name and description in that language."""
    values = service_values(row, agency_names, base_amounts)
    if lang:
        values["name"] = localized(row.definition["names"], lang)
        values["description"] = localized(row.definition["descriptions"], lang)
    return SERVICE_VIEW.dump(values)


def get_service(session: Session, code: str, lang: str | None = None) -> dict:
    """One service (404 for an unknown code)."""
    return service_view(_existing(session, code), NamedCodes(session, Agency).names(), lang, BaseAmounts(session).all())


def list_services(session: Session, query: dict) -> list[dict]:
    """Services as ServiceQuerySchema asks for them (region, group, state, public_interest, lang)."""
    agencies = NamedCodes(session, Agency).names()
    rows = Services(session).listed(query["region"], query["group"], query["state"], query["public_interest"])
    amounts = BaseAmounts(session).all()
    return [service_view(row, agencies, query["lang"], amounts) for row in rows]


def changes(session: Session, code: str) -> list[dict]:
    """The service's audit trail, oldest first (404 for an unknown service)."""
    _existing(session, code)
    return CHANGES.dump(Changes(session).of(code))


def groups(session: Session, lang: str | None = None) -> list[dict]:
    return _named(NamedCodes(session, Group).all(), lang)


def agencies(session: Session, lang: str | None = None) -> list[dict]:
    return _named(NamedCodes(session, Agency).all(), lang)


def _existing(session, code):
    row = Services(session).get(code)
    if row is None:
        raise service_not_found(code)
    return row


def _named(rows, lang):
    return NAMED.dump([{"code": row.code, "names": row.names, **({"name": localized(row.names, lang)} if lang else {})}
                       for row in rows])


def agency_names(session: Session) -> dict[str, dict]:
    return NamedCodes(session, Agency).names()


def base_amounts(session: Session) -> list[dict]:
    """The base calculation amount in tiyin from each day it took effect, oldest first."""
    return BASE_AMOUNTS.dump([{"effective_from": day, "amount_tiyin": amount} for day, amount in BaseAmounts(session).all()])
