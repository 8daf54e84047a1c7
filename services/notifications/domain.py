"""Notifications' rules in plain Python: which channel a message takes, in which language, when to
try again, and when an application's deadline calls for a notice to its agency."""
import uuid
from dataclasses import dataclass, field
from datetime import date, timedelta

from oss_common.calendar import working_days_between
from oss_common.schemas import LANGUAGES

SMS, EMAIL, NONE = "sms", "email", "none"
CHANNELS = (SMS, EMAIL, NONE)

# A delivery is pending until it is sent, failed for good, or skipped (channel `none`, or an
# agency without an address): nothing was sent, and that is recorded.
PENDING, SENT, FAILED, SKIPPED = "pending", "sent", "failed", "skipped"
FINISHED = frozenset({SENT, FAILED, SKIPPED})

CITIZEN, AGENCY = "citizen", "agency"

# The application events a citizen hears about; the deadline watch follows these and every other
# application event (a due date moved by a closure day), and ignores other types.
CITIZEN_EVENTS = frozenset({"application.submitted", "application.status_changed", "application.paid",
                            "application.refunded", "application.deadline_extended"})
# A status change that stopped or restarted the legal clock has a message of its own.
CLOCK_TEMPLATES = {"paused": "application.clock_paused", "resumed": "application.clock_resumed"}

DEFAULT_LANGUAGE = "uz"
DUE_SOON, OVERDUE = "due_soon", "overdue"
THRESHOLDS = (DUE_SOON, OVERDUE)  # in the order an application passes them

_NOTICE_NAMESPACE = uuid.UUID("5f0c8f0e-4f7a-4d8e-9a57-3c6f2a1b9d01")


@dataclass(frozen=True)
class Recipient:
    channel: str
    address: str | None


def choose_channel(preference, contact):
    """The channel the applicant chose and its address from the event's contact; an unknown
    preference counts as `none`. A missing address is left None: sending then fails at once."""
    if preference not in (SMS, EMAIL):
        return Recipient(NONE, None)
    address = (contact or {}).get("phone" if preference == SMS else "email")
    return Recipient(preference, address or None)


def message_language(language):
    """The applicant's language when there are templates for it, Uzbek otherwise."""
    return language if language in LANGUAGES else DEFAULT_LANGUAGE


def citizen_template(event_type, clock_change):
    """The template a citizen's message of an event is written with."""
    if event_type == "application.status_changed" and clock_change in CLOCK_TEMPLATES:
        return CLOCK_TEMPLATES[clock_change]
    return event_type


def deadline_threshold(today: date, due_date: date):
    """`overdue` once the due date has passed, `due_soon` when it is at most one working day
    away (today included), None before that."""
    if due_date < today:
        return OVERDUE
    if working_days_between(today, due_date) <= 1:
        return DUE_SOON
    return None


def needs_notice(already_noticed, threshold):
    """Whether an agency told about `already_noticed` (None: nothing yet) must now hear of `threshold`."""
    if threshold is None:
        return False
    return already_noticed is None or THRESHOLDS.index(threshold) > THRESHOLDS.index(already_noticed)


def deadline_notice_id(tracking_number, threshold, due_date):
    """A stable id for the agency's notice of one threshold of one due date of an application:
    it takes an event id's place, so the notice is made once however often the watch runs."""
    return str(uuid.uuid5(_NOTICE_NAMESPACE, f"{tracking_number}/{threshold}/{due_date.isoformat()}"))


def delivery_key(event_id, channel):
    """An id for one message, given to the SMTP server (Message-ID) and the SMS gateway, which
    lets a provider that deduplicates drop a copy."""
    return uuid.uuid5(_NOTICE_NAMESPACE, f"{event_id}/{channel}").hex


@dataclass(frozen=True)
class DeliveryPolicy:
    """How hard to try and whom to tell, from the service's settings."""

    region: str
    producer: str
    retry_base_seconds: float = 0.5
    retry_ceiling_seconds: float = 60.0
    abandon_after: timedelta = timedelta(seconds=30)
    # How long a worker whose channel has answered keeps trying to record the outcome through a
    # database that is away (abandon_after covers it, so the watch never takes such a claim for a crash).
    record_outcome_for: timedelta = timedelta(seconds=0)
    agency_addresses: dict = field(default_factory=dict)
    agency_default_address: str | None = None
    agency_language: str = DEFAULT_LANGUAGE

    def agency_address(self, agency):
        return self.agency_addresses.get(agency) or self.agency_default_address or None


def parse_agency_addresses(value):
    """`code=address,code=address` (AGENCY_EMAILS) as a dict; raises ValueError naming a bad item."""
    addresses = {}
    for item in (value or "").split(","):
        item = item.strip()
        if not item:
            continue
        code, separator, address = item.partition("=")
        if not separator or not code.strip() or "@" not in address:
            raise ValueError(f"expected agency-code=address, got {code.strip() or item[:20]!r}")
        addresses[code.strip()] = address.strip()
    return addresses
