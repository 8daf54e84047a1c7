"""Reporting's use cases with a fake unit of work (as cosmicpython tests its handlers): no database, no
broker. test_reporting_projection.py runs the same rules against a real SQLite read model."""
from collections import Counter
from datetime import date, timedelta
from types import SimpleNamespace

import pytest
from marshmallow import ValidationError

from oss_common.unit_of_work import UnitOfWork
from services.reporting import use_cases
from services.reporting.commands import record_event
from tests.unit.test_reporting_projection import START, event, history

DAY = date(2026, 3, 2)


class FakeReadModel:
    def __init__(self):
        self.applied, self.states = set(), {}
        self.counts, self.decisions = Counter(), Counter()

    def first_delivery(self, event_id, event_type):
        if event_id in self.applied:
            return False
        self.applied.add(event_id)
        return True

    def claim(self, values):
        if values["tracking_number"] in self.states:
            return False
        self.states[values["tracking_number"]] = SimpleNamespace(**values, decided_at=None)
        return True

    def locked(self, tracking_number):
        return self.states[tracking_number]

    def count(self, day, changes):
        for dimension, value, delta in changes:
            self.counts[(day, dimension, value)] += delta

    def count_decision(self, day, values, deltas):
        for dimension, value in values.items():
            for name, delta in deltas.items():
                self.decisions[(day, dimension, value, name)] += delta

    def flush(self):
        pass

    def reset(self):
        self.__init__()


class FakeUnitOfWork(UnitOfWork):
    def __init__(self):
        super().__init__("national", "reporting")
        self.read_model = FakeReadModel()
        self.commits = 0

    def _commit(self):
        self.commits += 1

    def _rollback(self):
        pass


def record(uow, *envelopes):
    return [use_cases.record_event(uow, record_event(envelope)) for envelope in envelopes]


def test_a_new_application_is_counted_once_in_every_dimension():
    uow = FakeUnitOfWork()
    submitted = event("JI-2026-000001", "submitted", START)
    assert record(uow, submitted, submitted) == [True, False] and uow.commits == 2
    counts = uow.read_model.counts
    assert counts[(DAY, "all", "")] == 1 and counts[(DAY, "service", "photocopying")] == 1
    assert counts[(DAY, "status", "submitted")] == 1 and sum(counts.values()) == 6


def test_a_status_change_moves_the_application_between_status_buckets():
    uow = FakeUnitOfWork()
    record(uow, *history("JI-2026-000001", "submitted", "accepted"))
    counts = uow.read_model.counts
    assert (counts[(DAY, "status", "submitted")], counts[(DAY, "status", "accepted")]) == (0, 1)
    assert uow.read_model.states["JI-2026-000001"].status == "accepted"


def test_an_older_event_arriving_late_changes_nothing_and_a_decision_is_counted_once():
    uow = FakeUnitOfWork()
    events = history("JI-2026-000001", "submitted", "accepted", "approved", "issued")
    record(uow, *reversed(events))
    state = uow.read_model.states["JI-2026-000001"]
    assert (state.status, state.decision, state.decided_on_time, state.is_open) == ("issued", "approved", True, False)
    assert state.processing_seconds == 2 * 3600
    decisions = uow.read_model.decisions
    assert decisions[(DAY, "all", "", "approved")] == 1 and decisions[(DAY, "all", "", "on_time")] == 1
    assert uow.read_model.counts[(DAY, "status", "issued")] == 1 and uow.read_model.counts[(DAY, "all", "")] == 1


def test_a_decision_after_the_due_date_is_late():
    uow = FakeUnitOfWork()
    late = event("JI-2026-000001", "rejected", START + timedelta(days=10), "in_review", due=DAY, version=4)
    record(uow, late)
    assert uow.read_model.decisions[(date(2026, 3, 12), "district", "1708401", "late")] == 1


def test_a_rebuild_empties_the_read_model_and_applies_every_page():
    uow = FakeUnitOfWork()
    record(uow, event("JI-2026-000099", "submitted", START))
    pages = [history("JI-2026-000001", "submitted", "accepted"), history("JI-2026-000002", "submitted")]

    def export_page(after_id, limit):
        return {"items": pages[after_id], "next_after_id": after_id + 1, "more": after_id + 1 < len(pages)}

    assert use_cases.rebuild(uow, export_page, page_size=2) == {"events_read": 3, "events_applied": 3}
    assert set(uow.read_model.states) == {"JI-2026-000001", "JI-2026-000002"}


def test_events_the_read_model_does_not_use_are_no_command_and_a_malformed_body_is_refused():
    assert record_event({**event("JI-2026-000001", "submitted", START), "type": "application.comment_added"}) is None
    malformed = event("JI-2026-000001", "submitted", START)
    del malformed["data"]["due_date"]
    with pytest.raises(ValidationError, match="due_date"):
        record_event(malformed)
