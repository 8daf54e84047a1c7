"""Serving a service's own web pages (HTML, JavaScript, CSS) from its package, so that they work on
a centre's LAN with no CDN: `static_pages("desk", directory)` is a mixin for the service class;
`static_pages(..., sign_in=True)` adds the staff's sign-in under `/<prefix>/auth/`
(oss_common.web_sessions).

Only files that exist under the directory when the service starts are served, looked up in a
table built then: no path from the URL ever reaches the file system, so `..`, absolute paths,
encoded separators and dot-files all answer 404.
"""
import logging
import mimetypes
import re
from pathlib import Path, PurePosixPath
from urllib.parse import quote

from werkzeug.utils import redirect
from werkzeug.wrappers import Response

from oss_common.auth import Forbidden
from oss_common.errors import BadRequest, NotFound
from oss_common.http import api, json_body, json_response
from oss_common.web_sessions import ENVIRON_KEY, SESSION_HEADER, SIGN_IN_SECONDS, SignInRefused

log = logging.getLogger(__name__)

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".json": "application/json",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".txt": "text/plain; charset=utf-8",
}
# Everything a page uses comes from the service itself; nothing inline, nothing from elsewhere.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                               "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
INDEX = "index.html"


def content_type(name: str) -> str:
    suffix = PurePosixPath(name).suffix.lower()
    return CONTENT_TYPES.get(suffix) or mimetypes.guess_type(name)[0] or "application/octet-stream"


def page_files(directory: Path) -> dict[str, Path]:
    """{URL name: file} for every regular file under `directory`, dot-files and dot-folders left out."""
    directory = Path(directory).resolve()
    files = {}
    for path in sorted(directory.rglob("*")):
        relative = path.relative_to(directory)
        if path.is_file() and not path.is_symlink() and not any(part.startswith(".") for part in relative.parts):
            files[relative.as_posix()] = path
    return files


class PageSet:
    """The files of one set of pages, read into memory once (they are small and never change while running)."""

    def __init__(self, prefix, directory, shared=()):
        self.prefix = prefix
        self.directory = Path(directory)
        self.shared = [Path(folder) for folder in shared]  # folders whose files every page of the set may load
        self._files = None

    @property
    def files(self):
        if self._files is None:
            found = {}
            for folder in (*self.shared, self.directory):  # the set's own file wins over a shared one of its name
                found.update(page_files(folder))
            self._files = {name: (path.read_bytes(), content_type(name)) for name, path in found.items()}
        return self._files

    def response(self, name):
        """The file's response, or NotFound for any name that is not one of the set's files."""
        found = self.files.get(name or INDEX) if isinstance(name, str) else None
        if found is None:
            raise NotFound(f"no page {self.prefix}/{name}", fields={"path": ["unknown page"]})
        body, mimetype = found
        return Response(body, status=200, content_type=mimetype, headers=SECURITY_HEADERS)


SIGN_IN_ASSETS = Path(__file__).with_name("web_assets")  # sign-in.js: the pages' side of sign_in_endpoints


def static_pages(prefix: str, directory: Path, sign_in: bool = False) -> type:
    """A mixin serving `directory` under `/<prefix>/` (its index.html) and `/<prefix>/<file>`,
    without a token; with `sign_in`, also the endpoints its pages sign staff in and out with, and
    the script those pages call them through (`sign-in.js`)."""
    pages = PageSet(prefix, directory, shared=[SIGN_IN_ASSETS] if sign_in else ())
    method = prefix.replace("-", "_")

    def index(self, request):
        return pages.response(INDEX)

    def page_file(self, request, name):
        return pages.response(name)

    attributes = {
        f"page_{method}_index": api("GET", f"/{prefix}/", public=True, hidden=True)(index),
        f"page_{method}_file": api("GET", f"/{prefix}/<path:name>", public=True, hidden=True)(page_file),
        f"{method}_pages": pages,
    }
    if sign_in:
        attributes.update(sign_in_endpoints(prefix, method))
    return type(f"{prefix.title().replace('-', '')}Pages", (), {"__doc__": f"Web pages under /{prefix}/.", **attributes})


NO_STORE = {"Cache-Control": "no-store"}


def sign_in_endpoints(prefix: str, method: str) -> dict:
    """`/<prefix>/auth/`: sign-in (to the provider), callback (from it), session (who is signed in),
    sign-out (here and at the provider), token (the demo's fallback without a provider)."""

    def sessions_of(request):
        return request.environ[ENVIRON_KEY]

    def page_url(request):
        return f"{sessions_of(request).base_url(request)}/{prefix}/"

    def state_cookie(sessions):
        return f"{sessions.cookie}_signin"

    def with_session_cookie(response, sessions, session_id):
        response.set_cookie(sessions.cookie, session_id, path="/", httponly=True, samesite="Strict", secure=sessions.secure)
        return response

    def require_page_header(request):
        """What the pages send and a cross-site form cannot: no signing in or out from elsewhere."""
        if not request.headers.get(SESSION_HEADER):
            raise Forbidden(f"send the header {SESSION_HEADER}", fields={SESSION_HEADER: ["required"]})

    def start(self, request):
        sessions = sessions_of(request)
        if sessions.provider is None:  # nothing to sign in at: the page takes a token instead
            return redirect(page_url(request), 303)
        url, state = sessions.begin(f"{page_url(request)}auth/callback")
        response = redirect(url, 303)
        response.headers.update(NO_STORE)
        # Lax: the provider sends the browser back with a top-level GET, which must carry it.
        response.set_cookie(state_cookie(sessions), state, max_age=SIGN_IN_SECONDS, path=f"/{prefix}/auth/",
                            httponly=True, samesite="Lax", secure=sessions.secure)
        return response

    def callback(self, request):
        sessions = sessions_of(request)
        if sessions.provider is None:
            return redirect(page_url(request), 303)
        error = request.args.get("error")
        try:
            if error:
                raise SignInRefused(f"the identity provider answered {error}", code=re.sub(r"[^a-z_]", "", error)[:40] or "refused")
            session_id = sessions.complete(request.args.get("state"), request.cookies.get(state_cookie(sessions)),
                                           request.args.get("code"), request.args.get("iss"))
        except SignInRefused as exc:
            log.info("a sign-in at %s/ was refused: %s", prefix, exc.code)
            response = redirect(f"{page_url(request)}?signin_error={quote(exc.code)}", 303)
        else:
            response = with_session_cookie(redirect(page_url(request), 303), sessions, session_id)
        response.headers.update(NO_STORE)
        response.delete_cookie(state_cookie(sessions), path=f"/{prefix}/auth/", httponly=True, samesite="Lax",
                               secure=sessions.secure)
        return response

    def who(self, request):
        sessions = sessions_of(request)
        session = sessions.session(request)
        provider = sessions.provider
        body = {"signed_in": session is not None, "provider": provider.issuer if provider else None}
        if session is not None:
            principal = session.principal
            body["principal"] = {"subject": principal.subject, "role": principal.role, "region": principal.region,
                                 "centres": list(principal.centres), "agencies": list(principal.agencies)}
        return json_response(body, headers=NO_STORE)

    def sign_out(self, request):
        require_page_header(request)
        sessions = sessions_of(request)
        response = json_response({"end_session_url": sessions.end(request, page_url(request))}, headers=NO_STORE)
        response.delete_cookie(sessions.cookie, path="/", httponly=True, samesite="Strict", secure=sessions.secure)
        return response

    def with_token(self, request):
        require_page_header(request)
        sessions = sessions_of(request)
        body = json_body(request)
        if set(body) - {"token"}:
            raise BadRequest("only a token is taken", fields={name: ["unknown field"] for name in set(body) - {"token"}})
        session_id = sessions.demo_session(body.get("token"))
        return with_session_cookie(json_response({"signed_in": True}, headers=NO_STORE), sessions, session_id)

    base = f"/{prefix}/auth"
    return {
        f"{method}_sign_in": api("GET", f"{base}/sign-in", public=True, hidden=True)(start),
        f"{method}_sign_in_callback": api("GET", f"{base}/callback", public=True, hidden=True)(callback),
        f"{method}_session": api("GET", f"{base}/session", public=True, hidden=True)(who),
        f"{method}_sign_out": api("POST", f"{base}/sign-out", public=True, hidden=True)(sign_out),
        f"{method}_sign_in_with_token": api("POST", f"{base}/token", public=True, hidden=True)(with_token),
    }
