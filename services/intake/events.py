"""The events intake publishes, dumped by their contract (oss_common.application_events), which every
consumer loads."""
from oss_common import application_events
from oss_common.calendar import local_date
from services.intake.domain import AWAITING_DECISION, DECISIONS, FINAL

SUBMITTED = application_events.SUBMITTED
STATUS_CHANGED = application_events.STATUS_CHANGED
VERSION = application_events.VERSION


def event_data(application, definition, actor: str, previous_status: str | None = None, reason: str | None = None,
               status_code: str | None = None) -> dict:
    """What others need to react to an application event, where it stands included: no PINFL, no name.

    The contact the applicant chose travels in the body (never in a routing key) so that
    notifications need not call back; so does the citizen's status code, in `application.submitted`,
    for the first message.
    """
    data = {
        "tracking_number": application.tracking_number,
        "service_code": application.service_code,
        "service_version": application.service_version,
        "agency": application.agency,
        "district": application.district,
        "centre": application.centre,
        "status": application.status,
        "version": application.version,
        "previous_status": previous_status,
        "reason": reason,
        "actor": actor,
        "open": application.status in AWAITING_DECISION,
        "decided": application.status in DECISIONS,
        "final": application.status in FINAL,
        "submitted_at": application.submitted_at,
        "changed_at": application.updated_at,
        "due_date": application.due_date,
        "language": application.language,
        "channel": application.channel,
        "contact": {"phone": application.applicant_phone, "email": application.applicant_email},
    }
    if definition is not None:
        data["service_name"] = definition["names"]
    if status_code is not None:
        data["status_code"] = status_code
    if application.decided_at is not None and application.status in DECISIONS:
        data["decided_on_time"] = local_date(application.decided_at) <= application.due_date
    return application_events.dump(data)
