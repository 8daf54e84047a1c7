"""The application workflow: every allowed and every disallowed transition."""
import itertools

import pytest

from services.intake.domain import (
    FINAL, REASON_REQUIRED, TRANSITIONS, ApplicationWorkflow, ReasonRequired, Status, TransitionNotAllowed,
)

ALLOWED = [(source, target) for source, targets in TRANSITIONS.items() for target in targets]
DISALLOWED = [(source, target) for source, target in itertools.product(Status, Status)
              if target not in TRANSITIONS[source]]


def test_the_workflow_is_the_documented_one():
    assert TRANSITIONS[Status.SUBMITTED] == {Status.ACCEPTED, Status.RETURNED_FOR_CORRECTION, Status.WITHDRAWN}
    assert TRANSITIONS[Status.IN_REVIEW] >= {Status.APPROVED, Status.REJECTED}
    assert TRANSITIONS[Status.RETURNED_FOR_CORRECTION] >= {Status.RESUBMITTED}
    assert FINAL == {Status.ISSUED, Status.WITHDRAWN}
    # withdrawal is possible before a decision, never after
    for status in (Status.APPROVED, Status.REJECTED, Status.ISSUED):
        assert Status.WITHDRAWN not in TRANSITIONS[status]
    assert len(ALLOWED) + len(DISALLOWED) == len(Status) ** 2


@pytest.mark.parametrize("source,target", ALLOWED, ids=[f"{s}->{t}" for s, t in ALLOWED])
def test_allowed_transition_moves_and_returns_previous(source, target):
    workflow = ApplicationWorkflow(source)
    previous = workflow.transition(target, reason="documents incomplete")
    assert previous == source
    assert workflow.status == target


@pytest.mark.parametrize("source,target", DISALLOWED, ids=[f"{s}->{t}" for s, t in DISALLOWED])
def test_disallowed_transition_is_refused_and_changes_nothing(source, target):
    workflow = ApplicationWorkflow(source)
    with pytest.raises(TransitionNotAllowed) as error:
        workflow.transition(target, reason="any")
    assert workflow.status == source
    assert str(source) in str(error.value) and str(target) in str(error.value)


@pytest.mark.parametrize("target", sorted(REASON_REQUIRED))
def test_reason_is_required_for_negative_moves(target):
    source = next(status for status, targets in TRANSITIONS.items() if target in targets)
    workflow = ApplicationWorkflow(source)
    for blank in (None, "", "   "):
        with pytest.raises(ReasonRequired):
            workflow.transition(target, reason=blank)
    assert workflow.status == source


def test_unknown_status_is_a_value_error():
    with pytest.raises(ValueError):
        ApplicationWorkflow("lost")
