"""Serving a service's own web pages (HTML, JavaScript, CSS) from its package, so that they work on
a centre's LAN with no CDN: `static_pages("desk", directory)` is a mixin for the service class.

Only files that exist under the directory when the service starts are served, looked up in a
table built then: no path from the URL ever reaches the file system, so `..`, absolute paths,
encoded separators and dot-files all answer 404.
"""
import mimetypes
from pathlib import Path, PurePosixPath

from werkzeug.wrappers import Response

from oss_common.errors import NotFound
from oss_common.http import api

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

    def __init__(self, prefix, directory):
        self.prefix = prefix
        self.directory = Path(directory)
        self._files = None

    @property
    def files(self):
        if self._files is None:
            self._files = {name: (path.read_bytes(), content_type(name)) for name, path in page_files(self.directory).items()}
        return self._files

    def response(self, name):
        """The file's response, or NotFound for any name that is not one of the set's files."""
        found = self.files.get(name or INDEX) if isinstance(name, str) else None
        if found is None:
            raise NotFound(f"no page {self.prefix}/{name}", fields={"path": ["unknown page"]})
        body, mimetype = found
        return Response(body, status=200, content_type=mimetype, headers=SECURITY_HEADERS)


def static_pages(prefix: str, directory: Path) -> type:
    """A mixin serving `directory` under `/<prefix>/` (its index.html) and `/<prefix>/<file>`,
    without a token: the pages ask for one and send it with every API call they make."""
    pages = PageSet(prefix, directory)
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
    return type(f"{prefix.title().replace('-', '')}Pages", (), {"__doc__": f"Web pages under /{prefix}/.", **attributes})
