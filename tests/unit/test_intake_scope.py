"""Intake's scoping rules (services/intake/scope.py): an operator's centres, an officer's agencies."""
from dataclasses import replace
from types import SimpleNamespace

import pytest

from oss_common.auth import OFFICER, OPERATOR, Forbidden, Principal
from oss_common.regions import get_region
from services.intake.scope import filing_centre, list_limits, require_agency, require_centre, require_scope

OPERATOR_AT_CITY = Principal(subject="o", role=OPERATOR, region="jizzakh", centres=("jizzakh-city", "arnasoy"))
OFFICER_OF_KHOKIMIYAT = Principal(subject="f", role=OFFICER, region="jizzakh", agencies=("khokimiyat",))


def test_staff_work_only_at_their_centres_and_agencies():
    require_centre(OPERATOR_AT_CITY, "jizzakh-city")
    with pytest.raises(Forbidden) as refused:
        require_centre(OPERATOR_AT_CITY, "zaamin")
    assert "centre" in refused.value.fields
    require_agency(OFFICER_OF_KHOKIMIYAT, "khokimiyat")
    with pytest.raises(Forbidden) as refused:
        require_agency(OFFICER_OF_KHOKIMIYAT, "cadastre-agency")
    assert "agency" in refused.value.fields
    # Each check concerns one role only.
    require_centre(OFFICER_OF_KHOKIMIYAT, "anywhere")
    require_agency(OPERATOR_AT_CITY, "anyone")


def test_an_application_is_in_scope_only_when_both_its_centre_and_its_agency_are():
    application = SimpleNamespace(centre="zaamin", agency="khokimiyat")
    require_scope(OFFICER_OF_KHOKIMIYAT, application)
    with pytest.raises(Forbidden):
        require_scope(OPERATOR_AT_CITY, application)


def test_an_application_naming_no_centre_goes_to_the_main_centre_if_the_operator_works_there():
    jizzakh = get_region("jizzakh")
    assert filing_centre(jizzakh, None, OPERATOR_AT_CITY) == "jizzakh-city" == jizzakh.main_centre
    elsewhere = replace(jizzakh, main_centre="zaamin")
    assert filing_centre(elsewhere, None, OPERATOR_AT_CITY) == "jizzakh-city"  # the operator's first
    assert filing_centre(elsewhere, None, OFFICER_OF_KHOKIMIYAT) == "zaamin"
    assert filing_centre(elsewhere, None) == "zaamin"  # an RPC or Open311 caller
    assert filing_centre(elsewhere, "arnasoy", OPERATOR_AT_CITY) == "arnasoy"  # named: require_centre decides


def test_lists_are_limited_to_the_callers_centres_or_agencies():
    assert list_limits(OPERATOR_AT_CITY) == {"centres": ["jizzakh-city", "arnasoy"]}
    assert list_limits(OFFICER_OF_KHOKIMIYAT) == {"agencies": ["khokimiyat"]}
