"""What intake does, one function per use case of `(unit of work, command)`: no SQL, no bus, no HTTP.
Every face (RPC, the HTTP API, Open311, the desk) calls these."""
import hashlib
import json

from oss_common.calendar import add_working_days, local_date
from oss_common.events import utc_now
from services.intake import events
from services.intake.commands import ReissueStatusCode, SubmitApplication, Transition
from services.intake.domain import (
    DECISIONS, ApplicationWorkflow, ReasonRequired, Status, TransitionNotAllowed, check_against_catalogue,
    new_status_code, status_code_digest, tracking_number,
)
from services.intake.exceptions import ApplicationInvalid, IdempotencyKeyReused, TransitionRejected, application_not_found
from services.intake.metrics import count_decision, count_submission
from services.intake.repository import IdempotencyKeyTaken
from services.intake.scope import filing_centre, require_centre, require_scope
from services.intake.unit_of_work import IntakeUnitOfWork


def submit(uow: IntakeUnitOfWork, command: SubmitApplication):
    """File an application; returns (application, created). Nothing is written when it fails; the
    same Idempotency-Key with the same body gives the application it first created. A created
    application carries its citizen's `status_code`, which nothing can show again."""
    submission, key = command.submission, command.idempotency_key
    fingerprint = request_fingerprint(submission)
    with uow:
        centre = filing_centre(uow.region, submission["centre"], command.caller)
        if command.caller is not None and uow.region.centre(centre) is not None:  # an unknown one is a 422 below
            require_centre(command.caller, centre)
        if key and uow.applications.key_taken(key):
            return _replay(uow.applications.by_idempotency_key(key), fingerprint), False
        definition = uow.catalogue.get(submission["service_code"])
        attributes = check_against_catalogue(uow.region, definition, submission, centre)
        now = command.submitted_at or utc_now()
        actor = command.actor or f"centre:{centre}"
        year = local_date(now).year
        number = tracking_number(uow.region.prefix, year, uow.tracking_numbers.take(year))
        status_code = new_status_code()
        application = uow.applications.add(
            {**_application_values(submission, definition, centre, attributes, number, key, fingerprint, now),
             "status_code_digest": status_code_digest(number, status_code)},
            {"from_status": None, "to_status": Status.SUBMITTED.value, "actor": actor, "reason": None, "occurred_at": now},
        )
        # The code travels to notifications, which sends it with the first message (in the body, as the contact does).
        uow.emit(events.SUBMITTED, events.event_data(application, definition, actor=actor, status_code=status_code), now,
                 events.VERSION)
        try:
            uow.commit()
        except IdempotencyKeyTaken:
            return _replay(uow.applications.by_idempotency_key(key), fingerprint), False
    count_submission(uow.region.slug, application)
    application.status_code = status_code
    return application, True


def transition(uow: IntakeUnitOfWork, command: Transition):
    """Move an application on (409 when the workflow does not allow it, 422 without a reason it needs)."""
    with uow:
        application = _in_scope(uow, command.tracking_number, command.caller)
        workflow = ApplicationWorkflow(application.status)
        previous = _move(workflow, command.to, command.reason)
        now = command.at or utc_now()
        application.status = workflow.status.value
        application.updated_at = now
        application.version += 1  # under the row's lock: the order of this application's events
        if workflow.status in DECISIONS:
            application.decided_at = now
        uow.applications.append_history(application, from_status=previous.value, to_status=workflow.status.value,
                                        actor=command.actor, reason=command.reason, occurred_at=now)
        definition = uow.catalogue.get(application.service_code)
        data = events.event_data(application, definition, command.actor, previous.value, command.reason)
        uow.emit(events.STATUS_CHANGED, data, now, events.VERSION)
        uow.commit()
    count_decision(uow.region.slug, application)
    return application


def reissue_status_code(uow: IntakeUnitOfWork, command: ReissueStatusCode) -> str:
    """Replace an application's status code; returns the new code, which only this answer shows."""
    with uow:
        application = _in_scope(uow, command.tracking_number, command.caller)
        code = new_status_code()
        application.status_code_digest = status_code_digest(application.tracking_number, code)
        uow.commit()
    return code


def copy_catalogue_change(uow: IntakeUnitOfWork, envelope: dict) -> None:
    """Keep the region's copy of a catalogue service current (a `national.catalogue.*` event), once per event."""
    with uow:
        if uow.processed_events.first_delivery(envelope):
            uow.catalogue_copy.keep(envelope["data"])
        uow.commit()


def _in_scope(uow, tracking_number, caller):
    """The application, locked for the change, once the caller (None over RPC) may change it; 404 or 403 otherwise."""
    application = uow.applications.get(tracking_number, for_update=True)
    if application is None:
        raise application_not_found(tracking_number)
    if caller is not None:
        require_scope(caller, application)
    return application


def request_fingerprint(submission: dict) -> str:
    """What tells a replay (the same body again) from a different application under the same key."""
    return hashlib.sha256(json.dumps(submission, sort_keys=True, default=str).encode()).hexdigest()


def _replay(existing, fingerprint):
    if existing.request_fingerprint != fingerprint:
        raise IdempotencyKeyReused("this Idempotency-Key was used for a different application",
                                   fields={"idempotency_key": ["already used with a different body"]})
    return existing


def _move(workflow, target, reason):
    """The workflow's step, its refusals as the API's errors (naming the field); returns the status left."""
    try:
        return workflow.transition(target, reason)
    except TransitionNotAllowed as exc:
        allowed = ", ".join(ApplicationWorkflow(exc.current).allowed) or "none"
        raise TransitionRejected(str(exc), fields={"to": [f"allowed from {exc.current}: {allowed}"]}) from exc
    except ReasonRequired as exc:
        raise ApplicationInvalid(str(exc), fields={"reason": [f"required for {exc.target}"]}) from exc


def _application_values(submission, definition, centre, attributes, number, key, fingerprint, now):
    applicant = submission["applicant"]
    return {
        "tracking_number": number,
        "idempotency_key": key,
        "request_fingerprint": fingerprint,
        "service_code": definition["code"],
        "service_version": definition["version"],
        "agency": definition["agency"]["code"],
        "district": submission["district"],
        "centre": centre,
        "status": Status.SUBMITTED.value,
        "applicant_pinfl": applicant["pinfl"],
        "applicant_name": applicant["full_name"],
        "applicant_phone": applicant["phone"],
        "applicant_email": applicant.get("email"),
        "language": applicant["language"],
        "channel": applicant["channel"],
        "documents": sorted(set(submission["documents"])),
        "attributes": attributes,
        "submitted_at": now,
        "due_date": add_working_days(local_date(now), definition["deadline_working_days"]),
        "updated_at": now,
        "decided_at": None,
        "version": 1,
    }
