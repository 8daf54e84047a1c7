"""oss_common.web: a service's pages served from its package, with the right content types and
nothing outside the page set reachable."""
import http.client
from urllib.parse import urlsplit

import pytest
import requests
from nameko.containers import ServiceContainer

from oss_common.web import content_type, page_files, static_pages
from tests.conftest import TEST_JWKS, free_port


@pytest.fixture
def pages_dir(tmp_path):
    root = tmp_path / "site"
    (root / "desk" / "img").mkdir(parents=True)
    (root / "desk" / "index.html").write_text("<!doctype html><title>Desk</title>", encoding="utf-8")
    (root / "desk" / "app.js").write_text("console.log('ok');", encoding="utf-8")
    (root / "desk" / "style.css").write_text("body{}", encoding="utf-8")
    (root / "desk" / "img" / "logo.svg").write_text("<svg/>", encoding="utf-8")
    (root / "desk" / ".secret").write_text("hidden", encoding="utf-8")
    (root / "secret.txt").write_text("outside", encoding="utf-8")
    return root / "desk"


@pytest.fixture
def served(pages_dir):
    class Pages:
        name = "pages_test"

    service_cls = type("PagesService", (static_pages("desk", pages_dir), Pages), {})
    port = free_port()
    container = ServiceContainer(service_cls, {"WEB_SERVER_ADDRESS": f"127.0.0.1:{port}",
                                               "AMQP_URI": "memory://", "AUTH_JWKS": TEST_JWKS})
    container.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        container.stop()


def test_page_files_leave_out_dot_files_and_nothing_outside(pages_dir):
    assert sorted(page_files(pages_dir)) == ["app.js", "img/logo.svg", "index.html", "style.css"]


def test_content_types():
    assert content_type("index.html") == "text/html; charset=utf-8"
    assert content_type("app.js") == "text/javascript; charset=utf-8"
    assert content_type("style.css") == "text/css; charset=utf-8"
    assert content_type("chart.svg") == "image/svg+xml"


def test_index_and_files_are_served_with_their_types_and_no_token(served):
    index = requests.get(f"{served}/desk/", timeout=5)
    assert index.status_code == 200
    assert index.headers["Content-Type"] == "text/html; charset=utf-8"
    assert "<title>Desk</title>" in index.text
    assert "script-src 'self'" in index.headers["Content-Security-Policy"]
    assert index.headers["X-Content-Type-Options"] == "nosniff"
    script = requests.get(f"{served}/desk/app.js", timeout=5)
    assert (script.status_code, script.headers["Content-Type"], script.text) == (
        200, "text/javascript; charset=utf-8", "console.log('ok');")
    assert requests.get(f"{served}/desk/style.css", timeout=5).headers["Content-Type"] == "text/css; charset=utf-8"
    assert requests.get(f"{served}/desk/img/logo.svg", timeout=5).headers["Content-Type"] == "image/svg+xml"
    assert requests.get(f"{served}/desk/index.html", timeout=5).text == index.text


def test_without_the_trailing_slash_redirects_to_the_page(served):
    answer = requests.get(f"{served}/desk", timeout=5, allow_redirects=False)
    assert answer.status_code in (301, 308)
    assert answer.headers["Location"].endswith("/desk/")


@pytest.mark.parametrize("path", [
    "/desk/missing.js", "/desk/../secret.txt", "/desk/%2e%2e/secret.txt", "/desk/..%2fsecret.txt",
    "/desk/.secret", "/desk/img/../../secret.txt", "/desk//etc/passwd", "/desk/%2fetc%2fpasswd",
    "/desk/img", "/desk/img/", "/desk/app.js%00", "/desk/..\\secret.txt", "/desk/IMG/logo.svg",
])
def test_nothing_outside_the_page_set_is_served(served, path):
    status, location, body = raw_get(served, path)
    if status == 308:  # werkzeug merges doubled slashes: the page set is asked again, for a name it lacks
        assert urlsplit(location).path.startswith("/desk/")
        status, location, body = raw_get(served, urlsplit(location).path)
    assert status in (400, 404), path
    assert "outside" not in body and "hidden" not in body


def raw_get(served, path):
    """The path sent as written: a browser or requests would remove the dot segments first."""
    connection = http.client.HTTPConnection(urlsplit(served).netloc, timeout=5)
    try:
        connection.request("GET", path)
        answer = connection.getresponse()
        return answer.status, answer.getheader("Location"), answer.read().decode("utf-8", "replace")
    finally:
        connection.close()
