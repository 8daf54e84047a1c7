"""The events intake publishes (`application.submitted`, `application.status_changed`) and their body."""
from oss_common.calendar import local_date
from oss_common.events import rfc3339
from services.intake.domain import DECISIONS

SUBMITTED = "application.submitted"
STATUS_CHANGED = "application.status_changed"


def event_data(application, definition, actor):
    """What others need to react to an application event: no PINFL, no name.

    The contact the applicant chose travels in the body (never in a routing key) so that
    notifications need not call back.
    """
    data = {
        "tracking_number": application.tracking_number,
        "service_code": application.service_code,
        "service_version": application.service_version,
        "agency": application.agency,
        "district": application.district,
        "centre": application.centre,
        "status": application.status,
        "previous_status": None,
        "reason": None,
        "actor": actor,
        "submitted_at": rfc3339(application.submitted_at),
        "changed_at": rfc3339(application.updated_at),
        "due_date": application.due_date.isoformat(),
        "language": application.language,
        "channel": application.channel,
        "contact": {"phone": application.applicant_phone, "email": application.applicant_email},
    }
    if definition is not None:
        data["service_name"] = definition["names"]
    if application.decided_at is not None and application.status in {s.value for s in DECISIONS}:
        data["decided_on_time"] = local_date(application.decided_at) <= application.due_date
    return data
