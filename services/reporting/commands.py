"""What reporting is asked to do, as plain data: entrypoints build these from the wire, use cases carry them out."""
from dataclasses import dataclass

from oss_common import application_events


@dataclass(frozen=True)
class RecordEvent:
    """Apply one application event to the read model."""

    event_id: str
    event_type: str
    fact: dict  # the event's body as oss_common.application_events loads it


def record_event(envelope: dict) -> RecordEvent | None:
    """The command for an application event the read model uses, None for the others; raises
    marshmallow.ValidationError for a malformed body."""
    if envelope["type"] not in application_events.TYPES:
        return None
    return RecordEvent(envelope["event_id"], envelope["type"], application_events.load(envelope))
