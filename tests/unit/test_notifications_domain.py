"""Notifications' rules without a broker or database: channel choice, language and template
fallback, back-off, deadline thresholds, agency addresses."""
from datetime import date

import pytest

from services.notifications.domain import (
    DUE_SOON, EMAIL, NONE, OVERDUE, SMS, Recipient, choose_channel, citizen_template, deadline_notice_id,
    deadline_threshold, message_language, needs_notice, parse_agency_addresses,
)
from oss_common.failures import retry_delay
from services.notifications.exceptions import TemplateProblem
from services.notifications.messages import TemplateBook, as_message

CONTACT = {"phone": "+998901234567", "email": "aziza@example.uz"}
VALUES = {"tracking_number": "JI-2026-000001", "service_code": "photocopying", "service_name": "Nusxa",
          "status": "rejected", "previous_status": "in_review", "reason": "photo missing", "is_open": False,
          "due_date": "02.03.2026", "due_date_iso": "2026-03-02"}


@pytest.mark.parametrize("preference,contact,expected", [
    ("sms", CONTACT, Recipient(SMS, "+998901234567")),
    ("email", CONTACT, Recipient(EMAIL, "aziza@example.uz")),
    ("none", CONTACT, Recipient(NONE, None)),
    ("pigeon", CONTACT, Recipient(NONE, None)),
    (None, CONTACT, Recipient(NONE, None)),
    ("email", {"phone": "+998901234567", "email": None}, Recipient(EMAIL, None)),
    ("sms", None, Recipient(SMS, None)),
])
def test_channel_is_the_applicants_choice_with_its_address(preference, contact, expected):
    assert choose_channel(preference, contact) == expected


@pytest.mark.parametrize("language,expected", [("uz", "uz"), ("ru", "ru"), ("en", "en"), ("kk", "uz"), (None, "uz")])
def test_language_falls_back_to_uzbek(language, expected):
    assert message_language(language) == expected


def test_back_off_doubles_from_the_base_up_to_the_cap():
    assert [retry_delay(attempt, 0.5) for attempt in range(1, 6)] == [0.5, 1.0, 2.0, 4.0, 8.0]
    assert retry_delay(20, 0.5) == 60.0
    assert retry_delay(3, 2.0, ceiling=5.0) == 5.0
    assert retry_delay(0, 0.5) == 0.5


def test_deadline_thresholds_count_working_days():
    friday = date(2026, 3, 13)
    assert deadline_threshold(friday, date(2026, 3, 12)) == OVERDUE
    assert deadline_threshold(friday, friday) == DUE_SOON
    assert deadline_threshold(friday, date(2026, 3, 16)) == DUE_SOON  # Monday: one working day away
    assert deadline_threshold(friday, date(2026, 3, 17)) is None
    # Around Navruz 2026 (20, 21 and 23 March off) Thursday's next working day is Tuesday.
    assert deadline_threshold(date(2026, 3, 19), date(2026, 3, 24)) == DUE_SOON
    assert deadline_threshold(date(2026, 3, 19), date(2026, 3, 25)) is None


def test_each_threshold_is_noticed_once_and_in_order():
    assert needs_notice(None, DUE_SOON) and needs_notice(None, OVERDUE) and needs_notice(DUE_SOON, OVERDUE)
    assert not needs_notice(DUE_SOON, DUE_SOON) and not needs_notice(OVERDUE, OVERDUE)
    assert not needs_notice(OVERDUE, DUE_SOON) and not needs_notice(None, None)


def test_deadline_notice_ids_are_stable_per_threshold_and_due_date():
    first = deadline_notice_id("JI-2026-000001", DUE_SOON, date(2026, 3, 16))
    assert first == deadline_notice_id("JI-2026-000001", DUE_SOON, date(2026, 3, 16))
    assert first != deadline_notice_id("JI-2026-000001", OVERDUE, date(2026, 3, 16))
    assert first != deadline_notice_id("JI-2026-000001", DUE_SOON, date(2026, 3, 17))


def test_agency_addresses_from_configuration():
    assert parse_agency_addresses(" khokimiyat = hokim@jizzakh.uz , cadastre-agency=kadastr@example.uz,") == {
        "khokimiyat": "hokim@jizzakh.uz", "cadastre-agency": "kadastr@example.uz"}
    assert parse_agency_addresses("") == {}
    with pytest.raises(ValueError):
        parse_agency_addresses("khokimiyat")


@pytest.mark.parametrize("language,subject,body", [
    ("uz", "Arizangiz holati: rad etildi (JI-2026-000001)", "Sabab: photo missing"),
    ("ru", "Статус заявки JI-2026-000001: отклонена", "Причина: photo missing"),
    ("en", "Application JI-2026-000001: rejected", "Reason: photo missing"),
    ("tg", "Arizangiz holati: rad etildi (JI-2026-000001)", "Sabab: photo missing"),
])
def test_built_in_templates_per_language_with_uzbek_fallback(language, subject, body):
    message = TemplateBook().render("application.status_changed", language, **VALUES)
    assert message.subject == subject
    assert body in message.body and "Nusxa" in message.body


def test_due_date_shows_while_the_application_is_open():
    open_values = dict(VALUES, status="accepted", reason=None, is_open=True)
    message = TemplateBook().render("application.status_changed", "en", **open_values)
    assert "Due date: 02.03.2026." in message.body and "Reason" not in message.body


def test_override_directory_comes_first_and_falls_back_per_file(tmp_path):
    (tmp_path / "ru").mkdir()
    (tmp_path / "ru" / "application.submitted.txt").write_text(
        "Джизак: {{ tracking_number }}\n\nУслуга {{ service_name }} до {{ due_date }}\n", encoding="utf-8")
    (tmp_path / "uz").mkdir()
    (tmp_path / "uz" / "statuses.yml").write_text("rejected: qaytarildi\n", encoding="utf-8")
    book = TemplateBook(tmp_path)
    assert book.render("application.submitted", "ru", **VALUES).subject == "Джизак: JI-2026-000001"
    # Not overridden: the built-in English one.
    assert book.render("application.submitted", "en", **VALUES).subject.startswith("Your application has been received")
    # A status name overridden in Uzbek only, used where the language has none of its own.
    assert book.render("application.status_changed", "uz", **VALUES).subject == "Arizangiz holati: qaytarildi (JI-2026-000001)"
    assert book.render("application.status_changed", "ru", **VALUES).subject.endswith("отклонена")
    assert book.names("application.submitted", "ru") == ["ru/application.submitted.txt", "uz/application.submitted.txt"]


def test_an_uzbek_only_template_serves_every_language(tmp_path):
    (tmp_path / "uz").mkdir()
    (tmp_path / "uz" / "application.comment_added.txt").write_text("Izoh: {{ tracking_number }}\n", encoding="utf-8")
    assert TemplateBook(tmp_path).render("application.comment_added", "en", **VALUES).subject == "Izoh: JI-2026-000001"


def test_missing_or_broken_templates_are_a_template_problem(tmp_path):
    with pytest.raises(TemplateProblem, match="no template"):
        TemplateBook().render("application.unknown", "ru", **VALUES)
    (tmp_path / "uz").mkdir()
    (tmp_path / "uz" / "application.submitted.txt").write_text("{{ no_such_value }}\n", encoding="utf-8")
    with pytest.raises(TemplateProblem, match="does not render"):
        TemplateBook(tmp_path).render("application.submitted", "uz", **VALUES)


def test_templates_are_sandboxed(tmp_path):
    (tmp_path / "uz").mkdir()
    (tmp_path / "uz" / "application.submitted.txt").write_text("{{ ''.__class__.__mro__[1].__subclasses__() }}\n",
                                                              encoding="utf-8")
    with pytest.raises(TemplateProblem):
        TemplateBook(tmp_path).render("application.submitted", "uz", **VALUES)


def test_subject_is_the_first_line_and_the_body_follows_the_blank_line():
    assert as_message("Subject\n\nLine one\nLine two\n") == as_message("  Subject\n\nLine one\nLine two")
    message = as_message("Subject\n\nLine one\nLine two\n")
    assert (message.subject, message.body) == ("Subject", "Line one\nLine two")
    assert as_message("Only one line").body == "Only one line"


CLOCK_VALUES = dict(VALUES, status="returned_for_correction", reason="no stamp", is_open=True, working_days_left=7,
                    extended_by=None, due_date="06.04.2026")


def test_a_status_change_that_stops_or_restarts_the_clock_has_its_own_message():
    assert citizen_template("application.status_changed", "paused") == "application.clock_paused"
    assert citizen_template("application.status_changed", "resumed") == "application.clock_resumed"
    assert citizen_template("application.status_changed", None) == "application.status_changed"
    assert citizen_template("application.deadline_extended", "extended") == "application.deadline_extended"


@pytest.mark.parametrize("language,paused,resumed,extended", [
    ("uz", ("muddat to‘xtatildi", "7 ish kuni qoldi", "Sabab: no stamp"), ("Yangi muddat: 06.04.2026.",),
     ("3 ish kuniga uzaytirildi", "Sabab: expert opinion", "Yangi muddat: 06.04.2026.")),
    ("ru", ("срок приостановлен", "осталось рабочих дней — 7", "Причина: no stamp"), ("Новый срок: 06.04.2026.",),
     ("продлён на рабочих дней: 3", "Причина: expert opinion", "Новый срок: 06.04.2026.")),
    ("en", ("time limit paused", "7 working day(s) remain", "Reason: no stamp"), ("New due date: 06.04.2026.",),
     ("extended by 3 working day(s)", "Reason: expert opinion", "New due date: 06.04.2026.")),
])
def test_citizens_hear_of_the_clock_paused_resumed_and_extended_in_their_language(language, paused, resumed, extended):
    book = TemplateBook()
    for template, values, expected in (
            ("application.clock_paused", CLOCK_VALUES, paused),
            ("application.clock_resumed", dict(CLOCK_VALUES, status="resubmitted", reason=None), resumed),
            ("application.deadline_extended", dict(CLOCK_VALUES, status="in_review", reason="expert opinion",
                                                   extended_by=3), extended)):
        message = book.render(template, language, **values)
        text = f"{message.subject}\n{message.body}"
        assert all(part in text for part in expected), (template, text)
        assert "JI-2026-000001" in message.subject
