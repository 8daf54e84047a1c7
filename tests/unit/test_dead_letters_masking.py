"""`oss dead-letters show` and `list` mask personal data wherever it could be; a consumer trusts a
message's `x-original-routing-key` only when the message came back by its queue's requeue key."""
from types import SimpleNamespace

import pytest

from oss_common.consumers import original_routing_key
from oss_common.dead_letters import MASK, mask, mask_text


@pytest.mark.parametrize("text, masked", [
    ("DeadLetter: gateway refused +998901234567", "DeadLetter: gateway refused ***"),
    ("number 998901234567 refused", "number *** refused"),
    ("+998 (90) 123-45-67 is not a number", "*** is not a number"),
    ("PINFL 31234567890123.", "PINFL ***."),
    ("passport AB1234567 expired", "passport *** expired"),
    ("passport AB 1234567", "passport ***"),
    ("mail to vali.aliyev@example.uz refused (550)", "mail to *** refused (550)"),
])
def test_personal_values_in_any_text_are_masked(text, masked):
    assert mask_text(text) == masked


@pytest.mark.parametrize("text", [
    "JI-2026-000001", "b04f68ae-af66-44a2-ba2a-969daaab9bde", "12345678-1234-1234-1234-123456789012",
    "2026-01-05T10:00:00+00:00", "1708401", "ValueError after 5 deliveries", "envelope for jizzakh.application.submitted",
])
def test_what_an_operator_needs_is_left(text):
    assert mask_text(text) == text


def test_personal_fields_are_masked_by_name_at_any_depth_and_other_strings_by_value():
    body = {"event_id": "b04f68ae-af66-44a2-ba2a-969daaab9bde", "data": {
        "tracking_number": "JI-2026-000001", "contact": {"phone": "+998901234567", "email": None},
        "reason": "called +998 90 123 45 67", "service_name": {"uz": "Nusxa"},
        "kwargs": {"payload": {"applicant": {"pinfl": "31234567890123", "full_name": "Vali Aliyev", "phone": "x"},
                               "attributes": {"person_full_name": "Ali Valiyev", "child_birth_date": "2020-01-01",
                                              "previous_address": "Jizzakh", "planned_floors": 2}},
                   "first_name": "Vali", "last_name": "Aliyev", "description": "leaking pipe"}}}
    masked = mask(body)
    data = masked["data"]
    assert masked["event_id"] == body["event_id"] and data["tracking_number"] == "JI-2026-000001"
    assert data["contact"] == {"phone": MASK, "email": None}
    assert data["reason"] == f"called {MASK}" and data["service_name"] == {"uz": "Nusxa"}
    assert data["kwargs"]["payload"]["applicant"] == {"pinfl": MASK, "full_name": MASK, "phone": MASK}
    assert data["kwargs"]["payload"]["attributes"] == {"person_full_name": MASK, "child_birth_date": MASK,
                                                       "previous_address": MASK, "planned_floors": 2}
    assert (data["kwargs"]["first_name"], data["kwargs"]["last_name"], data["kwargs"]["description"]) == (MASK,) * 3


def message(routing_key, headers=None):
    return SimpleNamespace(delivery_info={"routing_key": routing_key}, headers=headers)


def test_the_original_routing_key_comes_from_the_header_only_by_the_requeue_key():
    queue = "notifications_jizzakh.applications"
    forged = {"x-original-routing-key": "jizzakh.application.submitted"}
    # Back from its retry queue or a replay: the key recorded when it left.
    assert original_routing_key(message(f"{queue}.requeue", forged), queue) == "jizzakh.application.submitted"
    # Any other way in (a publisher's own header): the key it was delivered by, whatever the header says.
    assert original_routing_key(message("namangan.application.submitted", forged), queue) == "namangan.application.submitted"
    assert original_routing_key(message("jizzakh.application.submitted"), queue) == "jizzakh.application.submitted"
