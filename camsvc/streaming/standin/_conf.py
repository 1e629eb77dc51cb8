"""The stand-in's configuration rules, pure: MediaMTX's path-config semantics without I/O.

Owns: decoding a `PathConf` body as MediaMTX does (unknown fields and wrong types are
errors), add/patch/replace/delete, validation, pagination, Go durations, record paths and
segment names, Go's RFC 3339 time format. Must not touch: sockets, processes, files.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import re
from typing import Any, Final

from camsvc.streaming.standin._defaults import PATH_DEFAULTS, PATH_FIELD_TYPES

__all__ = [
    "Conf",
    "ConfError",
    "PathNotFound",
    "decode_path_body",
    "encode_segment_path",
    "find_path_conf",
    "go_duration",
    "go_rfc3339nano",
    "paginate",
    "parse_segment_start",
    "record_path_format",
]

# The name MediaMTX gives a path conf matching everything in its default config.
ALL_OTHERS: Final = "all_others"
_NAME_OK = re.compile(r"^[0-9A-Za-z_.~\-/:]+$")
_GO_TYPES = {
    "string": "string",
    "boolean": "bool",
    "integer": "int",
    "number": "float64",
    "array": "[]interface {}",
}


class ConfError(Exception):
    """A configuration request MediaMTX answers with 400 and this message."""


class PathNotFound(ConfError):
    """MediaMTX's `conf.ErrPathNotFound` (404 on patch, replace, delete, paths/get)."""

    def __init__(self) -> None:
        super().__init__("path not found")


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if value is None:
        return "null"
    return "object"


def decode_path_body(body: bytes) -> dict[str, Any]:
    """An optional PathConf from a request body, with MediaMTX's decoding errors."""
    try:
        raw = json.loads(body or b"")
    except json.JSONDecodeError as exc:
        if not body.strip():
            raise ConfError("EOF") from exc
        raise ConfError(f"invalid character in JSON at offset {exc.pos}") from exc
    if not isinstance(raw, dict):
        raise ConfError(
            f"json: cannot unmarshal {_json_kind(raw)} into Go value of type conf.OptionalPath"
        )
    for key, value in raw.items():
        kind = PATH_FIELD_TYPES.get(key)
        if kind is None or key == "name":
            raise ConfError(f'json: unknown field "{key}"')
        if value is None:
            if kind == "array":
                raise ConfError("cannot set slice to nil")
            continue
        ok = {
            "string": isinstance(value, str),
            "boolean": isinstance(value, bool),
            "integer": isinstance(value, int) and not isinstance(value, bool),
            "number": isinstance(value, int | float) and not isinstance(value, bool),
            "array": isinstance(value, list),
        }[kind]
        if not ok:
            raise ConfError(
                f"json: cannot unmarshal {_json_kind(value)} into Go struct field "
                f"OptionalPath.{key} of type {_GO_TYPES[kind]}"
            )
    return raw


_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h|d)")
_UNIT_S = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
}


def go_duration(text: str) -> float:
    """Seconds in a Go duration (`1h30m`, `500ms`); ConfError as Go's time.ParseDuration."""
    s = text
    sign = 1.0
    if s[:1] in "+-" and s:
        sign = -1.0 if s[0] == "-" else 1.0
        s = s[1:]
    if s == "0":
        return 0.0
    total = 0.0
    pos = 0
    while pos < len(s):
        m = _DURATION_PART.match(s, pos)
        if m is None:
            if re.match(r"(\d+(?:\.\d*)?|\.\d+)$", s[pos:]):
                raise ConfError(f'time: missing unit in duration "{text}"')
            raise ConfError(f'time: invalid duration "{text}"')
        total += float(m.group(1)) * _UNIT_S[m.group(2)]
        pos = m.end()
    if not s:
        raise ConfError(f'time: invalid duration "{text}"')
    return sign * total


_DURATION_FIELDS = (
    "recordDeleteAfter",
    "recordPartDuration",
    "recordSegmentDuration",
    "runOnDemandCloseAfter",
    "runOnDemandStartTimeout",
    "sourceOnDemandCloseAfter",
    "sourceOnDemandStartTimeout",
)


def _valid_name_error(name: str) -> str | None:
    if name == "":
        return "cannot be empty"
    if name.startswith("/"):
        return "can't begin with a slash"
    if name.endswith("/"):
        return "can't end with a slash"
    if not _NAME_OK.match(name):
        return (
            "can contain only alphanumeric characters, underscore, dot, tilde, minus, slash, colon"
        )
    return None


def validate_path(name: str, conf: dict[str, Any]) -> None:
    """MediaMTX's checks of one path conf that the stand-in reproduces."""
    if name != ALL_OTHERS and not name.startswith("~"):
        err = _valid_name_error(name)
        if err:
            raise ConfError(f"invalid path name '{name}': {err}")
    elif name.startswith("~"):
        try:
            re.compile(name[1:])
        except re.error as exc:
            raise ConfError(f"invalid regular expression: {name[1:]}") from exc
    for field in _DURATION_FIELDS:
        go_duration(conf[field])
    if conf["recordFormat"] not in ("fmp4", "mpegts"):
        raise ConfError(f"invalid record format '{conf['recordFormat']}'")
    rp = conf["recordPath"]
    if "%path" not in rp:
        raise ConfError("'recordPath' must contain %path")
    if "%s" not in rp and not all(t in rp for t in ("%Y", "%m", "%d", "%H", "%M", "%S")):
        raise ConfError("'recordPath' must contain either %s or %Y %m %d %H %M %S")
    source = conf["source"]
    if source != "publisher" and not re.match(r"^[a-z]+://", source) and source != "redirect":
        raise ConfError(f"invalid source: '{source}'")
    static = source not in ("publisher", "redirect")
    if static and (name.startswith("~") or name == ALL_OTHERS) and not conf["sourceOnDemand"]:
        raise ConfError(
            "a path with a regular expression (or path 'all') and a static source"
            " must have 'sourceOnDemand' set to true"
        )
    if conf["sourceOnDemand"] and source == "publisher":
        raise ConfError("'sourceOnDemand' is useless when source is 'publisher'")
    if conf["runOnDemand"] and source != "publisher":
        raise ConfError("'runOnDemand' can be used only when source is 'publisher'")


class Conf:
    """The path configurations: what the user set (`optional`) and the full view."""

    def __init__(self, paths: dict[str, dict[str, Any]] | None = None) -> None:
        self.defaults: dict[str, Any] = copy.deepcopy(PATH_DEFAULTS)
        self.optional: dict[str, dict[str, Any]] = {}
        for name, values in (paths or {}).items():
            self.optional[name] = dict(values)
        self.validate()

    def clone(self) -> Conf:
        """A deep copy to change and validate before swapping in."""
        new = Conf.__new__(Conf)
        new.defaults = copy.deepcopy(self.defaults)
        new.optional = copy.deepcopy(self.optional)
        return new

    def full(self, name: str) -> dict[str, Any]:
        """Every field of path conf `name` (defaults overlaid with what was set)."""
        out = {"name": name, **copy.deepcopy(self.defaults), **copy.deepcopy(self.optional[name])}
        return dict(sorted(out.items()))

    def names(self) -> list[str]:
        """The configured names, sorted."""
        return sorted(self.optional)

    def add(self, name: str, values: dict[str, Any]) -> None:
        """`AddPath`."""
        if name in self.optional:
            raise ConfError("path already exists")
        self.optional[name] = dict(values)

    def patch(self, name: str, values: dict[str, Any]) -> None:
        """`PatchPath`."""
        if name not in self.optional:
            raise PathNotFound()
        self.optional[name].update(values)

    def replace(self, name: str, values: dict[str, Any]) -> None:
        """`ReplacePath`."""
        if name not in self.optional:
            raise PathNotFound()
        self.optional[name] = dict(values)

    def remove(self, name: str) -> None:
        """`RemovePath`."""
        if name not in self.optional:
            raise PathNotFound()
        del self.optional[name]

    def validate(self) -> None:
        """Validate every path conf; ConfError names the first problem."""
        for name in self.names():
            validate_path(name, self.full(name))


def find_path_conf(conf: Conf, path: str) -> tuple[str, dict[str, Any]]:
    """The conf name and full conf that serve `path`; ConfError as MediaMTX's FindPathConf."""
    err = _valid_name_error(path)
    if err:
        raise ConfError(f"invalid path name: {err} ({path})")
    if path in conf.optional:
        return path, conf.full(path)
    for name in conf.names():
        if name.startswith("~") and re.search(name[1:], path):
            return name, conf.full(name)
    if ALL_OTHERS in conf.optional:
        return ALL_OTHERS, conf.full(ALL_OTHERS)
    raise ConfError(f"path '{path}' is not configured")


def paginate(items: list[Any], items_per_page: str, page: str) -> tuple[list[Any], int]:
    """One page of `items` and the page count, with MediaMTX's parameter errors."""

    def parse(text: str) -> int:
        if not re.fullmatch(r"\+?\d+", text):
            raise ConfError(f'strconv.ParseUint: parsing "{text}": invalid syntax')
        value = int(text)
        if value >= 2**31:
            raise ConfError(f'strconv.ParseUint: parsing "{text}": value out of range')
        return value

    per = 100
    if items_per_page != "":
        per = parse(items_per_page)
        if per == 0:
            raise ConfError("invalid items per page")
    number = parse(page) if page != "" else 0
    if not items:
        return [], 0
    count = -(-len(items) // per)
    lo = min(number * per, len(items))
    hi = min((number + 1) * per, len(items))
    return items[lo:hi], count


def go_rfc3339nano(t: dt.datetime) -> str:
    """Go's time.RFC3339Nano: trailing zeros of the fraction dropped, `Z` for UTC."""
    base = t.strftime("%Y-%m-%dT%H:%M:%S")
    if t.microsecond:
        base += ("." + f"{t.microsecond:06d}").rstrip("0")
    offset = t.utcoffset() or dt.timedelta(0)
    if offset == dt.timedelta(0):
        return base + "Z"
    minutes = int(offset.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    minutes = abs(minutes)
    return f"{base}{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def record_path_format(conf: dict[str, Any], path: str) -> str:
    """recordPath with `%path` filled in and the extension of recordFormat added."""
    ext = ".mp4" if conf["recordFormat"] == "fmp4" else ".ts"
    return conf["recordPath"].replace("%path", path) + ext


def encode_segment_path(fmt: str, start: dt.datetime) -> str:
    """A segment's file name from a record path format and its start (local time)."""
    out = fmt
    for token, value in (
        ("%Y", f"{start.year:04d}"),
        ("%m", f"{start.month:02d}"),
        ("%d", f"{start.day:02d}"),
        ("%H", f"{start.hour:02d}"),
        ("%M", f"{start.minute:02d}"),
        ("%S", f"{start.second:02d}"),
        ("%f", f"{start.microsecond:06d}"),
        ("%s", f"{int(start.timestamp())}"),
    ):
        out = out.replace(token, value)
    return out


def parse_segment_start(fmt: str, file_path: str) -> dt.datetime | None:
    """The start encoded in `file_path` by `fmt`, or None if it does not match."""
    groups = {
        "%Y": r"(?P<Y>\d{4})",
        "%m": r"(?P<m>\d{2})",
        "%d": r"(?P<d>\d{2})",
        "%H": r"(?P<H>\d{2})",
        "%M": r"(?P<M>\d{2})",
        "%S": r"(?P<S>\d{2})",
        "%f": r"(?P<f>\d{6})",
        "%s": r"(?P<s>\d+)",
    }
    pattern = ""
    i = 0
    while i < len(fmt):
        token = fmt[i : i + 2]
        if token in groups and f"(?P<{token[1]}>" not in pattern:
            pattern += groups[token]
            i += 2
        else:
            pattern += re.escape(fmt[i])
            i += 1
    m = re.fullmatch(pattern, file_path)
    if m is None:
        return None
    g = m.groupdict()
    if g.get("s"):
        return dt.datetime.fromtimestamp(int(g["s"])).astimezone()
    try:
        naive = dt.datetime(
            int(g["Y"]),
            int(g["m"]),
            int(g["d"]),
            int(g["H"]),
            int(g["M"]),
            int(g["S"]),
            int(g.get("f") or 0),
        )
    except (KeyError, ValueError):
        return None
    return naive.astimezone()
