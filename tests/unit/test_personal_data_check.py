"""The personal-data check of the integration and fault tests can fail: a value in a log or in a
metric is found, wherever in the line it sits and however the phone is written."""
import random
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from types import SimpleNamespace

import pytest

from tests.integration.personal_data import assert_no_personal_data, personal_values, unique_applicant


class Running:
    """Stands for a live process: poll() is None."""

    @staticmethod
    def poll():
        return None


def process(tmp_path, log_text=None, metrics_port=None):
    log_path = tmp_path / f"service-{random.randrange(10**6)}.log"
    if log_text is not None:
        log_path.write_text(log_text, encoding="utf-8")
    return SimpleNamespace(name="intake_jizzakh", log_path=log_path, metrics_port=metrics_port,
                           process=Running() if metrics_port else None)


@pytest.fixture
def metrics_server():
    pages = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body = pages.get("text", "").encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield SimpleNamespace(port=server.server_address[1], pages=pages)
    server.shutdown()
    server.server_close()


def test_clean_logs_pass(tmp_path):
    applicant = unique_applicant()
    clean = process(tmp_path, "INFO intake_jizzakh up: http on 127.0.0.1:8104\nINFO submitted JI-2026-000001\n")
    assert assert_no_personal_data([clean], personal_values(applicant)) == 1


@pytest.mark.parametrize("key", ["pinfl", "phone", "full_name"])
def test_a_value_in_a_log_fails_naming_it(tmp_path, key):
    applicant = unique_applicant()
    leaky = process(tmp_path, f"INFO ok\nWARNING refused {{'applicant': {applicant[key]!r}}} for some reason\n")
    with pytest.raises(AssertionError, match="personal data in logs") as failure:
        assert_no_personal_data([process(tmp_path, "INFO ok\n"), leaky], personal_values(applicant))
    assert f"{leaky.log_path.name}:2" in str(failure.value)


def test_a_phone_without_its_plus_is_found_too(tmp_path):
    applicant = unique_applicant()
    leaky = process(tmp_path, f"sms to {applicant['phone'][1:]} failed\n")
    with pytest.raises(AssertionError, match="personal data"):
        assert_no_personal_data([leaky], personal_values(applicant))


def test_a_value_in_a_metric_label_fails(tmp_path, metrics_server):
    applicant = unique_applicant()
    live = process(tmp_path, "INFO ok\n", metrics_port=metrics_server.port)
    metrics_server.pages["text"] = 'oss_http_requests_total{path="/x"} 1.0\n'
    assert assert_no_personal_data([live], personal_values(applicant)) == 2
    metrics_server.pages["text"] += f'oss_sms_sent_total{{to="{applicant["phone"]}"}} 1.0\n'
    with pytest.raises(AssertionError, match="/metrics"):
        assert_no_personal_data([live], personal_values(applicant))


def test_applicants_differ():
    first, second = unique_applicant(), unique_applicant()
    assert first["pinfl"] != second["pinfl"] and first["phone"] != second["phone"]
    assert first["full_name"] != second["full_name"]
    assert len(first["pinfl"]) == 14 and first["phone"].startswith("+998") and len(first["phone"]) == 13
