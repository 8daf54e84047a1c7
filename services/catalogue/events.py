"""The events the catalogue publishes (`national.catalogue.service_*`), declared once: their body is the
service as the API shows it, which intake keeps a copy of."""
from services.catalogue.domain import fee_schedule
from services.catalogue.schemas import CLOCK_DEFAULTS, ServiceViewSchema

PUBLISHED = "catalogue.service_published"
RETIRED = "catalogue.service_retired"
DRAFTED = "catalogue.service_drafted"
EVENT_FOR_STATE = {"published": PUBLISHED, "retired": RETIRED, "draft": DRAFTED}
SERVICE_VIEW = ServiceViewSchema()


def service_data(row, agency_names: dict[str, dict], base_amounts: list[tuple] = ()) -> dict:
    """A service as its events carry it and the API shows it (without a chosen language), dumped by
    ServiceViewSchema; `base_amounts` ((day, tiyin), oldest first) give a paid service's fee in tiyin from
    each of those days."""
    return SERVICE_VIEW.dump(service_values(row, agency_names, base_amounts))


def service_values(row, agency_names: dict[str, dict], base_amounts: list[tuple] = ()) -> dict:
    """What ServiceViewSchema dumps of a service."""
    definition = row.definition
    return {
        "code": row.code,
        "names": definition["names"],
        "descriptions": definition["descriptions"],
        "agency": {"code": row.agency, "names": agency_names.get(row.agency, {})},
        "group": row.group,
        "keywords": definition.get("keywords", []),
        "required_documents": definition.get("required_documents", []),
        "attributes": definition.get("attributes", []),
        "fee": definition["fee"],
        "fee_amounts": fee_schedule(definition["fee"], list(base_amounts)),
        "deadline_working_days": definition["deadline_working_days"],
        "clock": {**CLOCK_DEFAULTS, **definition.get("clock", {})},
        "regions": definition["regions"],
        "public_interest": row.public_interest,
        "state": row.state,
        "version": row.version,
        "updated_at": row.updated_at,
    }
