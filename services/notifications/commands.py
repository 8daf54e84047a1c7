"""What notifications is asked to do, as plain data: entrypoints build these from the wire, use cases carry them out."""
from dataclasses import dataclass
from datetime import datetime

from oss_common import application_events
from services.notifications.domain import CITIZEN_EVENTS


@dataclass(frozen=True)
class NotifyCitizen:
    """Tell the applicant about one application event."""

    event_id: str
    event_type: str
    region: str
    fact: dict  # the event's body as oss_common.application_events loads it
    tell_citizen: bool = True  # False: an event only the deadline watch follows (a due date moved by a closure day)


@dataclass(frozen=True)
class WatchDeadlines:
    """One round of the deadline watch."""

    now: datetime | None = None  # None: now


def citizen_notice(envelope: dict) -> NotifyCitizen | None:
    """The command for an application event (told to the citizen when it is one of CITIZEN_EVENTS), None for
    other types; raises marshmallow.ValidationError for a malformed body."""
    if envelope["type"] not in application_events.TYPES:
        return None
    return NotifyCitizen(envelope["event_id"], envelope["type"], envelope["region"], application_events.load(envelope),
                         tell_citizen=envelope["type"] in CITIZEN_EVENTS)
