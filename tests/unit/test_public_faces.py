"""What anonymous callers may ask: rate limits (token buckets on a fake clock), the client address
behind proxies, the citizen's status code, and the first message that carries it."""
import re
from types import SimpleNamespace

import pytest

from oss_common.config import ConfigurationError
from oss_common.ratelimit import Limiter, Rate, client_address
from services.intake.domain import CODE_SYMBOLS, new_status_code, status_code_digest
from services.intake.views import narrowed
from services.notifications.messages import TemplateBook


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_a_bucket_allows_its_burst_then_refills_evenly():
    clock = Clock()
    limiter = Limiter(Rate(3, 60), clock=clock)
    assert [limiter.take("a") for _ in range(3)] == [0, 0, 0]
    assert limiter.take("a") == pytest.approx(20)  # one request back every 20 s
    assert limiter.take("b") == 0  # another key has its own bucket
    clock.now += 19
    assert limiter.wait("a") == pytest.approx(1) and limiter.take("a") == pytest.approx(1)
    clock.now += 1
    assert limiter.take("a") == 0 and limiter.take("a") > 0
    clock.now += 3600
    assert [limiter.take("a") for _ in range(4)][:3] == [0, 0, 0]  # never more than the burst


def test_waiting_takes_nothing_and_forgotten_keys_start_full():
    clock = Clock()
    limiter = Limiter(Rate(1, 10), clock=clock, max_keys=2)
    assert limiter.wait("a") == 0 and limiter.wait("a") == 0
    limiter.take("a")
    limiter.take("b")
    limiter.take("c")  # "a" is forgotten, the least recently used
    assert limiter.wait("a") == 0 and limiter.wait("c") == pytest.approx(10)


@pytest.mark.parametrize("text", ["", "120", "0/60", "10/0", "ten/60", "10/100000", "-1/5"])
def test_a_malformed_rate_names_its_setting(text):
    with pytest.raises(ConfigurationError, match="ANONYMOUS_RATE_LIMIT"):
        Rate.parse(text, "ANONYMOUS_RATE_LIMIT")


def test_rates_parse():
    assert Rate.parse("120/60", "X") == Rate(120, 60.0) and Rate.parse("5/0.5", "X") == Rate(5, 0.5)


def request(peer, forwarded=None):
    return SimpleNamespace(remote_addr=peer, headers={"X-Forwarded-For": forwarded} if forwarded else {})


def test_the_client_address_is_the_peer_unless_proxies_are_configured():
    assert client_address(request("10.0.0.9", "1.2.3.4")) == "10.0.0.9"  # a client may write the header itself
    assert client_address(request("10.0.0.9", "6.6.6.6, 1.2.3.4"), forwarded_hops=1) == "1.2.3.4"
    assert client_address(request("10.0.0.9", "6.6.6.6, 1.2.3.4, 10.0.0.2"), forwarded_hops=2) == "1.2.3.4"
    assert client_address(request("10.0.0.9"), forwarded_hops=1) == "10.0.0.9"


def test_status_codes_are_random_unambiguous_and_kept_only_as_digests():
    codes = {new_status_code() for _ in range(200)}
    assert len(codes) == 200
    assert all(re.fullmatch(f"[{CODE_SYMBOLS}]{{4}}-[{CODE_SYMBOLS}]{{4}}", code) for code in codes)
    assert not set("01IO") & set(CODE_SYMBOLS)
    code = "K7QP-4MZX"
    digest = status_code_digest("JI-2026-000001", code)
    assert re.fullmatch("[0-9a-f]{64}", digest) and code not in digest
    assert status_code_digest("JI-2026-000001", "k7qp 4mzx") == digest  # as a citizen may type it
    assert status_code_digest("JI-2026-000002", code) != digest  # keyed by the tracking number


def test_visible_codes_narrow_what_is_asked():
    assert narrowed(None, None) is None and narrowed(["a"], None) == ["a"]
    assert narrowed(None, {"a", "b"}) == {"a", "b"} and narrowed(["a", "c"], {"a", "b"}) == {"a"}
    assert narrowed(["c"], {"a"}) == set()


@pytest.mark.parametrize("language,words", [("uz", "Holat kodi"), ("ru", "Код статуса"), ("en", "Status code")])
def test_the_first_message_carries_the_status_code_in_each_language(language, words):
    book = TemplateBook()
    values = dict(tracking_number="JI-2026-000001", service_code="s", service_name="S", status="submitted",
                  previous_status=None, reason=None, is_open=True, due_date="01.02.2026", due_date_iso="2026-02-01")
    with_code = book.render("application.submitted", language, **values, status_code="K7QP-4MZX")
    assert f"{words}: K7QP-4MZX" in with_code.body
    without = book.render("application.submitted", language, **values, status_code=None)
    assert words not in without.body and "JI-2026-000001" in without.body
