"""The catalogue's use cases with a fake unit of work (as cosmicpython tests its handlers): no database, no broker."""
from types import SimpleNamespace

from datetime import date

import pytest

from oss_common.unit_of_work import UnitOfWork
from services.catalogue import use_cases
from services.catalogue.commands import SetBaseAmount, ChangeServiceState, LoadCatalogue, UpsertService
from services.catalogue.exceptions import ServiceNotFound, UnknownReference

L = {"uz": "x", "ru": "x", "en": "x"}
ADMIN = "catalogue-admin:editor"


class FakeServices:
    def __init__(self):
        self.rows = {}

    def get(self, code):
        return self.rows.get(code)

    def listed(self, state="published"):
        return [row for code, row in sorted(self.rows.items()) if state == "all" or row.state == state]

    def add(self, values):
        self.rows[values["code"]] = SimpleNamespace(**values)
        return self.rows[values["code"]]

    def changed(self, row):
        pass


class FakeNamedCodes:
    def __init__(self, **names):
        self.rows = dict(names)

    def exists(self, code):
        return code in self.rows

    def names(self):
        return dict(self.rows)

    def keep(self, items):
        changed = [item for item in items if self.rows.get(item["code"]) != item["names"]]
        self.rows.update((item["code"], item["names"]) for item in changed)
        return len(changed)


class FakeChanges:
    def __init__(self):
        self.trail = []

    def record(self, row, actor):
        self.trail.append((row.code, row.version, row.state, actor))


class FakeBaseAmounts:
    def __init__(self):
        self.values = {}

    def all(self):
        return sorted(self.values.items())

    def keep(self, values, actor, now):
        changed = [value for value in values if self.values.get(value["effective_from"]) != value["amount_tiyin"]]
        self.values.update((value["effective_from"], value["amount_tiyin"]) for value in changed)
        return len(changed)


class FakeUnitOfWork(UnitOfWork):
    def __init__(self):
        super().__init__("national", "catalogue")
        self.services = FakeServices()
        self.agencies = FakeNamedCodes(**{"oss-centre": L})
        self.groups = FakeNamedCodes(**{"office-services": L})
        self.changes = FakeChanges()
        self.base_amounts = FakeBaseAmounts()
        self.published = []
        self.commits = 0

    def _commit(self):
        self.published.extend(self.events)
        self.commits += 1

    def _rollback(self):
        pass

    def again(self):
        """A new unit of work on the same state (the next request)."""
        self.committed, self.events = False, []
        return self


def definition(code="photocopying", **overrides):
    return {"code": code, "group": "office-services", "agency": "oss-centre", "names": L, "descriptions": L,
            "fee": {"free": True}, "deadline_working_days": 1, "regions": ["jizzakh"], **overrides}


def test_a_new_service_is_a_draft_announced_and_audited_in_one_commit():
    uow = FakeUnitOfWork()
    row = use_cases.upsert(uow, UpsertService(definition(), ADMIN))
    assert (row.state, row.version, uow.commits) == ("draft", 1, 1)
    (event,) = uow.published
    assert event["type"] == "catalogue.service_drafted" and event["region"] == "national"
    assert event["data"]["agency"] == {"code": "oss-centre", "names": L} and event["data"]["code"] == "photocopying"
    assert uow.changes.trail == [("photocopying", 1, "draft", ADMIN)]


def test_the_same_definition_again_changes_nothing_and_announces_nothing():
    uow = FakeUnitOfWork()
    use_cases.upsert(uow, UpsertService(definition(), ADMIN))
    row = use_cases.upsert(uow.again(), UpsertService(definition(), ADMIN))
    assert row.version == 1 and len(uow.published) == 1 and len(uow.changes.trail) == 1


def test_a_change_raises_the_version_and_keeps_the_state():
    uow = FakeUnitOfWork()
    use_cases.upsert(uow, UpsertService(definition(), ADMIN))
    row = use_cases.upsert(uow.again(), UpsertService(definition(deadline_working_days=3), ADMIN))
    assert (row.version, row.state, row.definition["deadline_working_days"]) == (2, "draft", 3)
    assert [event["data"]["version"] for event in uow.published] == [1, 2]


def test_publishing_announces_once_and_publishing_again_changes_nothing():
    uow = FakeUnitOfWork()
    use_cases.upsert(uow, UpsertService(definition(), ADMIN))
    use_cases.set_state(uow.again(), ChangeServiceState("photocopying", "published", ADMIN))
    row = use_cases.set_state(uow.again(), ChangeServiceState("photocopying", "published", ADMIN))
    assert (row.state, row.version) == ("published", 2)
    assert [event["type"] for event in uow.published] == ["catalogue.service_drafted", "catalogue.service_published"]


def test_an_unknown_service_cannot_change_state():
    uow = FakeUnitOfWork()
    with pytest.raises(ServiceNotFound) as refused:
        use_cases.set_state(uow, ChangeServiceState("nothing-here", "retired", ADMIN))
    assert refused.value.fields == {"code": ["unknown service"]} and uow.commits == 0


def test_unknown_references_are_refused_naming_each_field_and_nothing_is_announced():
    uow = FakeUnitOfWork()
    with pytest.raises(UnknownReference) as refused:
        use_cases.upsert(uow, UpsertService(definition(agency="nobody", group="nothing"), ADMIN))
    assert set(refused.value.fields) == {"agency", "group"}
    assert uow.services.rows == {} and uow.published == [] and uow.commits == 0


def test_a_catalogue_file_loads_once_and_again_changes_nothing():
    uow = FakeUnitOfWork()
    document = {"groups": [{"code": "civil-registry", "names": L}], "agencies": [{"code": "oss-centre", "names": L}],
                "services": [definition(state="published"), definition("notary", state="retired")]}
    first = use_cases.load_catalogue(uow, LoadCatalogue(document, ADMIN))
    again = use_cases.load_catalogue(uow.again(), LoadCatalogue(document, ADMIN))
    assert first == {"groups": 1, "agencies": 0, "base_amounts": 0, "services_changed": 2, "services_unchanged": 0}
    assert again == {"groups": 0, "agencies": 0, "base_amounts": 0, "services_changed": 0, "services_unchanged": 2}
    assert [event["type"] for event in uow.published] == ["catalogue.service_published", "catalogue.service_retired"]


def test_a_new_base_amount_announces_every_service_whose_fee_follows_it_with_its_amounts_in_tiyin():
    uow = FakeUnitOfWork()
    document = {"groups": [], "agencies": [], "services": [
        definition("copying", state="published", fee={"free": False, "bca_multiple": 0.002, "collection": "desk"}),
        definition("notary", state="published", fee={"free": False, "fixed_tiyin": 500_000}),
        definition("free-one", state="published")],
        "base_amounts": [{"effective_from": date(2024, 10, 1), "amount_tiyin": 37_500_000}]}
    use_cases.load_catalogue(uow, LoadCatalogue(document, ADMIN))
    before = len(uow.published)
    use_cases.set_base_amount(uow.again(), SetBaseAmount({"effective_from": date(2025, 8, 1), "amount_tiyin": 41_200_000}, ADMIN))
    (announced,) = uow.published[before:]  # the fixed and the free fee do not follow the base amount
    assert announced["data"]["code"] == "copying" and announced["data"]["version"] == 2
    assert announced["data"]["fee_amounts"] == [{"effective_from": "2024-10-01", "amount_tiyin": 75_000},
                                                {"effective_from": "2025-08-01", "amount_tiyin": 82_400}]
    use_cases.set_base_amount(uow.again(), SetBaseAmount({"effective_from": date(2025, 8, 1), "amount_tiyin": 41_200_000}, ADMIN))
    assert len(uow.published) == before + 1  # the same value again changes nothing
