"""File downloads on the main listener (API.md §10.3): `/files/snapshots/{filename}` and
`/files/recordings/{filename}`.

The rest of the path, percent-decoded once, is a bare file name (§1.1, else 400), looked up in
the media catalogue (`MediaLibrary.locate`, which only answers catalogued regular files, never
symlinks; else 404). Answers carry validators (strong ETag from size and mtime,
Last-Modified), honour `If-None-Match` / `If-Modified-Since` (304), one `bytes=` range (206,
416), and stream the file from disk through `FileBody`. The header logic is pure functions
of strings and numbers; only `add_file_routes` touches the library and the file system.
This module never writes, moves or deletes media, and never builds paths from request text.
"""

from __future__ import annotations

import datetime
import email.utils
import os
import re
import stat
from pathlib import Path
from typing import Final, Literal
from urllib.parse import quote, unquote_to_bytes

import msgspec
import structlog

from camsvc.auth.roles import Role
from camsvc.auth.session import Authenticator
from camsvc.errors import InvalidParams
from camsvc.media.catalog import Kind
from camsvc.media.library import MediaLibrary
from camsvc.media.names import check_filename
from camsvc.server.credentials import require_role
from camsvc.server.http import (
    FileBody,
    HttpRequest,
    HttpResponse,
    Route,
    Router,
    error_response,
)

__all__ = [
    "FILE_ROUTES",
    "UNSATISFIABLE",
    "ByteRange",
    "FileRoute",
    "Validators",
    "add_file_routes",
    "content_disposition",
    "content_type",
    "file_response",
    "filename_of",
    "is_not_modified",
    "select_range",
    "validators_of",
]

log = structlog.get_logger("camsvc.http")


class FileRoute(msgspec.Struct, frozen=True):
    """A download route: its path prefix, the media kind it serves and its minimum role."""

    prefix: str
    kind: Kind
    min_role: Role


#: Every download route (API.md §2.1, §5.5: downloads need viewer).
FILE_ROUTES: Final = (
    FileRoute("/files/snapshots/", "snapshot", Role.VIEWER),
    FileRoute("/files/recordings/", "recording", Role.VIEWER),
)

_CONTENT_TYPES: Final = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".mp4": "video/mp4",
    ".mkv": "video/x-matroska",
}
_CACHE_CONTROL: Final = "private, no-cache"


class ByteRange(msgspec.Struct, frozen=True):
    """Bytes `start` to `end` inclusive of a representation of `size` bytes."""

    start: int
    end: int
    size: int

    @property
    def length(self) -> int:
        """How many bytes the range holds."""
        return self.end - self.start + 1

    @property
    def content_range(self) -> str:
        """The `Content-Range` value of a 206."""
        return f"bytes {self.start}-{self.end}/{self.size}"


class Validators(msgspec.Struct, frozen=True):
    """The validators of one file version."""

    etag: str  # strong, quoted
    last_modified: str  # IMF-fixdate
    mtime_s: int  # Last-Modified in whole seconds, for date comparisons


#: `select_range` result for a range the file cannot satisfy (→ 416).
UNSATISFIABLE: Final = "unsatisfiable"

_RANGE_SPEC = re.compile(r"([0-9]*)-([0-9]*)")
_ENTITY_TAG = re.compile(r'\s*(W/)?("[^"]*")\s*(?:,|$)')


# -- pure header logic -----------------------------------------------------------------------


def filename_of(encoded: str) -> str:
    """The bare file name in a raw path segment, percent-decoded once; InvalidParams if not bare.

    The raw path arrives as latin-1 text of the request bytes, so it is turned back into those
    bytes, decoded (`%252F` → the literal name `%2F`), then read as strict UTF-8.
    """
    try:
        name = unquote_to_bytes(encoded.encode("latin-1")).decode("utf-8")
    except (UnicodeError, ValueError) as exc:
        raise InvalidParams("invalid_filename", "file name is not UTF-8") from exc
    return check_filename(name)


def validators_of(st: os.stat_result) -> Validators:
    """Strong ETag `"<size hex>-<mtime_ns hex>"` and Last-Modified of a file's stat."""
    return Validators(
        etag=f'"{st.st_size:x}-{st.st_mtime_ns:x}"',
        last_modified=email.utils.formatdate(st.st_mtime, usegmt=True),
        mtime_s=int(st.st_mtime),
    )


def _entity_tags(header: str) -> list[tuple[bool, str]] | None:
    """(weak, opaque-tag) pairs of an entity-tag list; None when malformed."""
    tags: list[tuple[bool, str]] = []
    pos = 0
    text = header.strip()
    while pos < len(text):
        if text[pos] in ", \t":
            pos += 1
            continue
        m = _ENTITY_TAG.match(text, pos)
        if m is None:
            return None
        tags.append((m.group(1) is not None, m.group(2)))
        pos = m.end()
    return tags


def _http_date(value: str) -> int | None:
    """An HTTP-date as Unix seconds, or None when it is not one."""
    try:
        when = email.utils.parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # HTTP-dates are GMT by definition
        when = when.replace(tzinfo=datetime.UTC)
    return int(when.timestamp())


def is_not_modified(headers: dict[str, str], validators: Validators) -> bool:
    """Whether a GET/HEAD with these headers gets 304 (RFC 9110 §13.2.2, steps 3 and 4).

    `If-None-Match` (weak comparison, `*` matches any existing file) wins over
    `If-Modified-Since`, which is only read when there is no `If-None-Match`.
    """
    inm = headers.get("if-none-match")
    if inm is not None:
        if inm.strip() == "*":
            return True
        tags = _entity_tags(inm) or []
        return any(tag == validators.etag for _, tag in tags)
    ims = headers.get("if-modified-since")
    if ims is not None:
        since = _http_date(ims)
        return since is not None and validators.mtime_s <= since
    return False


def _if_range_allows(value: str | None, validators: Validators) -> bool:
    """Whether an `If-Range` (absent, a strong ETag, or the exact date) lets Range apply."""
    if value is None:
        return True
    value = value.strip()
    if value.startswith(('"', "W/")):
        tags = _entity_tags(value)
        return tags is not None and len(tags) == 1 and tags[0] == (False, validators.etag)
    when = _http_date(value)
    return when is not None and when == validators.mtime_s


def select_range(header: str | None, size: int) -> ByteRange | Literal["unsatisfiable"] | None:
    """The one range a `Range` header asks of `size` bytes (RFC 9110 §14.2).

    None means "send it all": no header, another unit, a malformed header (ignored, as RFC 9110
    allows), several ranges, or a suffix range of an empty file. UNSATISFIABLE means 416.
    """
    if header is None:
        return None
    unit, sep, spec = header.partition("=")
    if not sep or unit.strip().lower() != "bytes":
        return None
    specs = [s.strip() for s in spec.split(",") if s.strip()]
    parsed: list[tuple[str, str]] = []
    for s in specs:
        m = _RANGE_SPEC.fullmatch(s)
        if m is None or (not m.group(1) and not m.group(2)):
            return None
        if m.group(1) and m.group(2) and int(m.group(2)) < int(m.group(1)):
            return None  # an invalid range-spec makes the whole header invalid
        parsed.append((m.group(1), m.group(2)))
    if len(parsed) != 1:
        return None  # none, or several: the whole file (API.md §10.3)
    first, last = parsed[0]
    if not first:  # suffix: the last N bytes
        suffix = int(last)
        if suffix == 0:
            return UNSATISFIABLE
        if size == 0:
            return None
        return ByteRange(max(0, size - suffix), size - 1, size)
    start = int(first)
    if start >= size:
        return UNSATISFIABLE
    end = min(int(last), size - 1) if last else size - 1
    return ByteRange(start, end, size)


def content_type(filename: str) -> str:
    """The Content-Type of a download by file extension."""
    return _CONTENT_TYPES.get(os.path.splitext(filename)[1].lower(), "application/octet-stream")


def content_disposition(filename: str) -> str:
    """`attachment; filename="<name>"`, plus an RFC 8187 `filename*` for other names.

    Plain printable-ASCII names without a quote go as they are; any other name gets an ASCII
    fallback (`_` for each other character) and its exact UTF-8 form in `filename*`.
    """
    if all(0x20 <= ord(c) < 0x7F for c in filename) and '"' not in filename:
        return f'attachment; filename="{filename}"'
    fallback = "".join(c if 0x20 <= ord(c) < 0x7F and c != '"' else "_" for c in filename)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


# -- the route ---------------------------------------------------------------------------------


def _download(library: MediaLibrary, spec: FileRoute, req: HttpRequest) -> HttpResponse:
    """Answer one download request (credentials are already checked)."""
    try:
        name = filename_of(req.path[len(spec.prefix) :])
    except InvalidParams:
        return error_response(400, "Invalid filename")
    path = library.locate(spec.kind, name)
    if path is None:
        return error_response(404, "Not Found")
    try:
        st = os.stat(path, follow_symlinks=False)
    except OSError:
        return error_response(404, "Not Found")
    if not stat.S_ISREG(st.st_mode):
        return error_response(404, "Not Found")
    return file_response(req, path, name, st)


def file_response(req: HttpRequest, path: Path, name: str, st: os.stat_result) -> HttpResponse:
    """The response (200, 206, 304 or 416) for a GET/HEAD of the regular file at `path`."""
    v = validators_of(st)
    common = [
        ("ETag", v.etag),
        ("Last-Modified", v.last_modified),
        ("Accept-Ranges", "bytes"),
        ("Cache-Control", _CACHE_CONTROL),
    ]
    if is_not_modified(req.headers, v):
        return HttpResponse(304, headers=common)
    size = st.st_size
    chosen: ByteRange | Literal["unsatisfiable"] | None = None
    # Range is defined for GET only (RFC 9110 §14.2); HEAD describes the whole file.
    if req.method == "GET" and _if_range_allows(req.headers.get("if-range"), v):
        chosen = select_range(req.headers.get("range"), size)
    if chosen == UNSATISFIABLE:
        return error_response(
            416, "Range Not Satisfiable", [("Content-Range", f"bytes */{size}"), *common]
        )
    entity = [
        ("Content-Type", content_type(name)),
        ("Content-Disposition", content_disposition(name)),
    ]
    if isinstance(chosen, ByteRange):
        return HttpResponse(
            206,
            headers=[*entity, ("Content-Range", chosen.content_range), *common],
            file=FileBody(path, chosen.start, chosen.length),
        )
    return HttpResponse(200, headers=[*entity, *common], file=FileBody(path, 0, size))


def _route_for(library: MediaLibrary, spec: FileRoute) -> Route:
    async def route(req: HttpRequest) -> HttpResponse:
        response = _download(library, spec, req)
        log.debug("file_download", path=req.path, method=req.method, status=response.status)
        return response

    return route


def add_file_routes(
    router: Router,
    library: MediaLibrary,
    authenticator: Authenticator,
    routes: tuple[FileRoute, ...] = FILE_ROUTES,
) -> None:
    """Route each FileRoute (by default FILE_ROUTES), behind its minimum role."""
    for spec in routes:
        guarded = require_role(authenticator, spec.min_role, _route_for(library, spec))
        router.add_prefix(spec.prefix, guarded)
