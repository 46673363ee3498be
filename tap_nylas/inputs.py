"""Inputs checked before any request: config and state files, secrets, bookmarks.

A user's mistake in a file or a setting ends the run with one line naming it, and a
value that may be secret (the API key, credentials in `api_url`) is never repeated in
that line. Bookmarks the tap did not write itself are repaired or dropped with a
warning rather than crashing the run half-way or silently reading nothing.
"""

from __future__ import annotations

import functools
import json
import math
import re
import typing as t
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit

from urllib3.util import parse_url

from tap_nylas.errors import ConfigError, TapNylasError, describe_context
from tap_nylas.normalize import iso_epoch

if t.TYPE_CHECKING:
    import logging
    from collections.abc import Iterable, Mapping

    from jsonschema import ValidationError

#: Settings whose value is never shown: `api_url` may carry `user:password@`.
SECRET_SETTINGS = frozenset({"api_key", "api_url"})
REDACTED = "***"
# Shorter pieces of a secret are too common to redact without mangling messages.
MIN_SECRET_PIECE = 4
EXAMPLES_SHOWN = 5

#: Base URL of each Nylas region.
REGION_URLS = {"us": "https://api.us.nylas.com", "eu": "https://api.eu.nylas.com"}
#: Hosts `api_url` may reach over plain http, as urllib3 spells them: this machine only.
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "[::1]"})
MAX_PORT = 65535
# The authority (`user:password@host:port`) of a URL with `scheme://`, as urllib3 cuts it.
_AUTHORITY = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://([^\\/?#]*)")
# A host name as urllib3 hands it back (lower case, IDNA-encoded), or a bracketed IPv6.
_HOST = re.compile(r"[a-z0-9._-]+|\[[0-9a-f:.]+\]")


class InputFileError(TapNylasError):
    """A config, state or catalog file is missing, unreadable, empty or not a JSON object."""


# Files.


def read_json_object(path: str, what: str) -> tuple[str, dict]:
    """The text of a JSON-object file and its parsed value, or one line saying what is wrong.

    `what` names the file's role ("config file", "state file") in the message. The
    parser's message gives a position only, never the content (which may hold the key).
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputFileError(f"{what} {path!r} was not found") from None
    except IsADirectoryError:
        raise InputFileError(f"{what} {path!r} is a directory, not a file") from None
    except PermissionError:
        raise InputFileError(f"{what} {path!r} cannot be read: permission denied") from None
    except UnicodeDecodeError:
        raise InputFileError(f"{what} {path!r} is not UTF-8 text") from None
    except OSError as error:
        raise InputFileError(f"{what} {path!r} cannot be read: {error.strerror}") from None
    if not text.strip():
        raise InputFileError(f"{what} {path!r} is empty; it must hold a JSON object")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        where = f"line {error.lineno}, column {error.colno}"
        raise InputFileError(f"{what} {path!r} is not valid JSON ({where}: {error.msg})") from None
    except RecursionError:
        raise InputFileError(f"{what} {path!r} is nested too deeply to be read") from None
    if not isinstance(value, dict):
        kind = type(value).__name__.replace("NoneType", "null")
        raise InputFileError(f"{what} {path!r} must hold a JSON object, not a JSON {kind}")
    return text, value


def read_config_files(paths: Iterable[str]) -> tuple[dict, bool]:
    """`--config` values merged in order, and whether `ENV` asked for the environment too."""
    config: dict = {}
    parse_env = False
    for path in paths:
        if path == "ENV":
            parse_env = True
            continue
        config |= read_json_object(path, "config file")[1]
    return config, parse_env


# Secrets.


def normalise_config(config: dict) -> dict:
    """`config` with null settings left out and whitespace stripped from `api_key`.

    JSON Schema lets every optional setting be null, but a null `max_retries` would
    crash the run; left out, it takes its default like an unset one. A key pasted with
    a trailing newline would otherwise be refused by the HTTP library, which puts the
    whole header value, the key, in its error.
    """
    result = {name: value for name, value in config.items() if value is not None}
    key = result.get("api_key")
    if isinstance(key, str):
        result["api_key"] = key.strip()
    return result


def _header_problem(value: str) -> tuple[str, int] | None:
    """What in `value` an HTTP header cannot carry, and its position (1-based), if any.

    http.client sends header values as Latin-1; requests refuses CR, LF and a leading
    space, and puts the whole value in its error.
    """
    for position, char in enumerate(value, start=1):
        code = ord(char)
        if code > 0xFF:
            return "a character outside Latin-1", position
        if code < 0x20 or 0x7F <= code <= 0x9F:
            return "a control character", position
    if value[:1].isspace():
        return "a leading space", 1
    return None


def check_api_key(key: object) -> None:
    """Fail with one line if `key` cannot be sent as an HTTP header value; never show it."""
    if not isinstance(key, str):
        return  # JSON Schema reports the type, without the value (see `describe_error`)
    if problem := _header_problem(key):
        kind, position = problem
        msg = (
            f"api_key has {kind} at position {position}, which cannot be sent in an HTTP "
            "header: copy the key again from the Nylas dashboard (the key is not shown)"
        )
        raise ConfigError(msg)


def check_user_agent(user_agent: object) -> None:
    """Fail with one line if `user_agent` cannot be sent as an HTTP header value.

    A CR or LF would otherwise stop every request with requests' InvalidHeader (a
    traceback), or, in a client that let it through, inject headers of its own.
    """
    if not isinstance(user_agent, str):
        return  # JSON Schema reports the type
    if problem := _header_problem(user_agent):
        kind, position = problem
        msg = (
            f"user_agent has {kind} at position {position}, which cannot be sent in an "
            "HTTP header: use printable Latin-1 text, e.g. acme-etl/1.0"
        )
        raise ConfigError(msg)


# The API's address.


def api_base_url(config: Mapping[str, t.Any]) -> str:
    """The base URL of every request: `api_url` checked and normalised, else the region's."""
    if api_url := config.get("api_url"):
        return check_api_url(str(api_url))
    region = config.get("region") or "us"
    if region not in REGION_URLS:
        msg = f"region must be one of {', '.join(sorted(REGION_URLS))}"
        raise ConfigError(msg)
    return REGION_URLS[region]


def check_api_url(api_url: str) -> str:
    r"""`api_url` as the base URL requests will really reach, or one line saying why not.

    Read with urllib3's parser, the one requests connects with: `urllib.parse` reads
    `http://evil.example\@localhost` as host `localhost` while requests connects to
    `evil.example`, and would send it the key over plain http. So a character two
    parsers may read differently (backslash, whitespace, control) is refused before
    parsing, and so are credentials, a query or fragment, and a port out of range. The
    result is rebuilt from the parsed parts (`scheme://host[:port][/path]`, no trailing
    slash); a message shows at most the scheme, host and port, never a password.
    """
    for position, char in enumerate(api_url, start=1):
        if char == "\\":
            kind = "a backslash"
        elif char.isspace():
            kind = "whitespace"
        elif not char.isprintable():
            kind = "a control or unprintable character"
        else:
            continue
        msg = (
            f"api_url has {kind} at position {position}, which HTTP libraries read in "
            "different ways (the URL is not shown)"
        )
        raise ConfigError(msg)
    authority = match.group(1) if (match := _AUTHORITY.match(api_url)) else None
    try:
        url = parse_url(api_url)
    except ValueError:  # urllib3's message quotes the whole URL, password included
        raise ConfigError(_unparsable(authority)) from None
    if authority is None or url.scheme not in {"http", "https"} or not url.host:
        shown = f", got {_shown(url, authority)!r}" if authority is not None else ""
        msg = f"api_url must be an http(s) URL such as https://api.us.nylas.com{shown}"
        raise ConfigError(msg)
    shown = _shown(url, authority)
    if "@" in authority:
        msg = (
            f"api_url must not hold credentials (user:password@), got {shown!r}: Nylas "
            "takes only api_key; a proxy's credentials go in HTTPS_PROXY"
        )
        raise ConfigError(msg)
    if not _HOST.fullmatch(url.host):
        msg = f"api_url has an invalid host name, got {shown!r}"
        raise ConfigError(msg)
    if url.port is not None and not (isinstance(url.port, int) and 1 <= url.port <= MAX_PORT):
        msg = f"api_url has port {url.port}: a port is a number from 1 to {MAX_PORT}"
        raise ConfigError(msg)
    if url.query is not None or url.fragment is not None:
        msg = (
            f"api_url must not have a query (?...) or fragment (#...), got {shown!r}: "
            "it is a base URL, e.g. https://api.us.nylas.com"
        )
        raise ConfigError(msg)
    if url.scheme == "http" and url.host not in LOCAL_HOSTS:
        msg = (
            f"api_url must use https (plain http only for localhost/127.0.0.1/[::1]), got {shown!r}"
        )
        raise ConfigError(msg)
    port = f":{url.port}" if url.port is not None else ""
    return f"{url.scheme}://{url.host}{port}{(url.path or '').rstrip('/')}"


def _shown(url: t.Any, authority: str | None) -> str:
    """`scheme://host:port` of a parsed URL, with `***@` for any credentials."""
    credentials = f"{REDACTED}@" if authority and "@" in authority else ""
    port = f":{url.port}" if url.port is not None else ""
    return f"{url.scheme}://{credentials}{url.host or ''}{port}"


def _unparsable(authority: str | None) -> str:
    """Why urllib3 could not read `api_url`, from its authority, without quoting it."""
    host_port = (authority or "").rpartition("@")[2]
    port = host_port.rpartition("]")[2] if host_port.startswith("[") else host_port
    if ":" in port:
        digits = port.rpartition(":")[2]
        if not (digits.isascii() and digits.isdigit()) or not 1 <= int(digits) <= MAX_PORT:
            return f"api_url has a port that is not a number from 1 to {MAX_PORT} (not shown)"
    return "api_url is not a valid URL, e.g. https://api.us.nylas.com (the URL is not shown)"


def secret_values(config: Mapping[str, t.Any]) -> list[str]:
    """Strings that must never be shown: the key, its pieces, credentials in `api_url`."""
    secrets: list[str] = []
    key = config.get("api_key")
    if key is not None and not isinstance(key, (dict, list)):
        text = str(key)
        # A key with a stray newline would be shown as two pieces, or with `\n` escaped.
        secrets += [text, text.strip(), repr(text)[1:-1], *re.split(r"[\s\x00-\x1f]+", text)]
    url = config.get("api_url")
    if isinstance(url, str):
        try:
            parts = urlsplit(url)
            secrets += [parts.username or "", parts.password or ""]
        except ValueError:
            secrets.append(url)  # not even a URL: show none of it
        # urllib3 may cut `user:password@` elsewhere than urllib.parse: both are secret.
        if (match := _AUTHORITY.match(url)) and "@" in match.group(1):
            userinfo = match.group(1).rpartition("@")[0]
            secrets += [userinfo, *userinfo.split(":")]
    pieces = {s for s in secrets if len(s) >= MIN_SECRET_PIECE}
    return sorted(pieces, key=len, reverse=True)  # longest first: a piece inside the whole


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` with every secret replaced by `***`."""
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    return text


def describe_error(error: ValidationError, secret: frozenset[str] = SECRET_SETTINGS) -> str:
    """A JSON Schema error as one line; for a secret setting, without its value.

    jsonschema's own message starts with the offending value (`12345 is not of type
    'string'`), which for `api_key` is the key.
    """
    where = "".join(f"[{part!r}]" for part in error.path)
    setting = error.path[0] if error.path else None
    if setting not in secret:
        return f"{error.message} in config{where}" if where else error.message
    types = error.validator_value
    expected = {
        "type": f"must be a {' or '.join(types) if isinstance(types, list) else types}",
        "minLength": "must not be empty",
        "format": f"must be a valid {error.validator_value}",
    }.get(str(error.validator), f"fails the {error.validator!r} check")
    return f"config{where} {expected} (its value is not shown)"


# Bookmarks.


class _Findings:
    """Repairs made to one state, reported as one warning per stream and kind."""

    def __init__(self) -> None:
        self._found: dict[tuple[str, str, str], list[str]] = {}

    def add(self, stream: str, problem: str, action: str, where: str) -> None:
        self._found.setdefault((stream, problem, action), []).append(where)

    def log(self, logger: logging.Logger) -> None:
        for (stream, problem, action), places in self._found.items():
            shown = "; ".join(places[:EXAMPLES_SHOWN])
            more = len(places) - EXAMPLES_SHOWN
            logger.warning(
                "State of %s: %d bookmark(s) %s; %s. Where: %s%s",
                stream,
                len(places),
                problem,
                action,
                shown,
                f"; and {more} more" if more > 0 else "",
            )


def sanitise_state(
    state: object, replication_keys: Mapping[str, str], now: int, logger: logging.Logger
) -> dict:
    """The state with every incremental bookmark an epoch-seconds integer no later than `now`.

    The tap writes integers (epoch seconds) in `bookmarks.<stream>.partitions[]
    .replication_key_value`. Anything else (an ISO date, a numeric string, a float, a
    value in the future) came from a hand edit, another tool or a wrong clock: it is
    converted, clamped to `now` or dropped (that partition then starts from
    `start_date`), with a warning. Entries are replaced, never edited in place.
    """
    if not isinstance(state, dict):
        logger.warning("State is not a JSON object: ignored, every stream starts afresh")
        return {}
    if state.get("type") == "STATE" and isinstance(state.get("value"), dict):
        logger.warning("State is a whole STATE message: using its `value`")
        state = t.cast("dict", state["value"])
    bookmarks = state.get("bookmarks")
    if bookmarks is None:
        return state
    if not isinstance(bookmarks, dict):
        logger.warning("State: `bookmarks` is not an object: ignored, every stream starts afresh")
        return {**state, "bookmarks": {}}
    findings = _Findings()
    repaired: dict = {}
    for stream, stream_state in bookmarks.items():
        key = replication_keys.get(stream)
        fixed = (
            stream_state
            if key is None
            else _Repair(stream, key, now, findings).stream(stream_state)
        )
        if fixed is not None:
            repaired[stream] = fixed
    findings.log(logger)
    return {**state, "bookmarks": repaired}


class _Repair:
    """Repairs of one incremental stream's state, recorded in `findings`."""

    def __init__(self, stream: str, key: str, now: int, findings: _Findings) -> None:
        self.name, self.key, self.now = stream, key, now
        self._add = functools.partial(findings.add, stream)

    def stream(self, state: object) -> dict | None:
        """The stream's state, repaired; None to drop it."""
        if not isinstance(state, dict):
            self._add("are not an object", "dropped, the stream starts afresh", "stream")
            return None
        declared = state.get("replication_key")
        if declared is not None and declared != self.key:
            problem = f"are on {declared!r}, not {self.key!r}"
            self._add(problem, "dropped, the stream starts afresh", "stream")
            return None
        result = self.entry(state, "stream level")
        partitions = state.get("partitions")
        if partitions is not None and not isinstance(partitions, list):
            self._add("are not a list of partitions", "dropped", "stream")
            partitions = []
        if partitions is not None:
            fixed = (self.partition(entry) for entry in partitions)
            result["partitions"] = [entry for entry in fixed if entry is not None]
        return result

    def partition(self, entry: object) -> dict | None:
        """One partition's entry, repaired; None to drop one that has no context."""
        context = entry.get("context") if isinstance(entry, dict) else None
        if not isinstance(entry, dict) or not isinstance(context, dict):
            self._add("have no partition context", "dropped", repr(entry)[:80])
            return None
        where = describe_context(context)
        declared = entry.get("replication_key")
        if declared is not None and declared != self.key:
            problem = f"are on {declared!r}, not {self.key!r}"
            self._add(problem, "read from start_date", where)
            return {k: v for k, v in entry.items() if k != "replication_key_value"}
        return self.entry(entry, where)

    def entry(self, entry: dict, where: str) -> dict:
        """`entry` with its `replication_key_value` an integer no later than now, or without."""
        if "replication_key_value" not in entry:
            return dict(entry)
        raw = entry["replication_key_value"]
        value, problem = parse_bookmark(raw)
        result = {k: v for k, v in entry.items() if k != "replication_key_value"}
        if value is None:
            self._add(problem, "dropped, read from start_date", f"{where} ({_show(raw)})")
            return result
        if problem:
            self._add(problem, "read as epoch seconds", f"{where} ({_show(raw)} -> {value})")
        if value > self.now:
            action = (
                f"clamped to this run's start ({_iso(self.now)}); if it was never real, "
                "delete it from the state to re-read from start_date"
            )
            self._add("are later than this run's start", action, f"{where} ({_iso(value)})")
            value = self.now
        result["replication_key_value"] = value
        return result


def parse_bookmark(raw: object) -> tuple[int | None, str]:
    """Epoch seconds from what a bookmark holds, and what was unusual about it ("" if not)."""
    if isinstance(raw, bool) or raw is None:
        return None, "are not a timestamp"
    if isinstance(raw, int):
        return (raw, "") if raw >= 0 else (None, "are negative")
    if isinstance(raw, (float, Decimal)):
        number = float(raw)
        if not math.isfinite(number) or number < 0:
            return None, "are not a valid timestamp"
        return math.floor(number), "are fractional"
    if isinstance(raw, str):
        return _parse_text(raw.strip())
    return None, "are not a timestamp"


def _parse_text(text: str) -> tuple[int | None, str]:
    try:
        number = Decimal(text)
    except ArithmeticError:
        pass
    else:
        value, _ = parse_bookmark(number)
        return value, "are numeric strings"
    try:
        return max(iso_epoch(text), 0), "are ISO date-times"
    except ValueError:
        return None, "are not a timestamp"


def _show(raw: object) -> str:
    """A bookmark as it was written in the state file."""
    return str(raw) if isinstance(raw, (int, float, Decimal)) else repr(raw)[:80]


def _iso(epoch: int) -> str:
    try:
        return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return f"{epoch} s"
