"""The spellings of settings' values: durations, yes/no, exit codes, sizes, URLs, events and
the rest, each read (parse_*) into what hookrun uses, with a ValueError that says what is
wrong; the header directives, the config file and the command line all read them here."""

from __future__ import annotations

from orchestrator import constants as c
from orchestrator.outcome import OnFailure, When

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
BOOLEANS = {"yes": True, "true": True, "on": True, "1": True,
            "no": False, "false": False, "off": False, "0": False}
OCTAL = frozenset("01234567")
DIGITS = frozenset("0123456789")


def parse_duration(text: str, days: bool = False) -> float:
    """Seconds (float) for ``90``, ``90s``, ``2.5m``, ``1h``, at most 100 days; with
    ``days`` (``--since``), also ``7d``, at most 999,999 days. ValueError for anything else."""
    spelled = text.strip()
    number, unit = spelled, ""
    if spelled and spelled[-1] in ("smhd" if days else "smh"):
        number, unit = spelled[:-1].rstrip(), spelled[-1]
    whole, dot, fraction = number.partition(".")
    if not (whole and set(whole) <= DIGITS and (not dot or (fraction and
                                                           set(fraction) <= DIGITS))):
        raise ValueError(f"bad duration {text!r} (use e.g. 90, 90s, 5m, 1h)")
    seconds = float(number) * UNIT_SECONDS[unit]
    limit = c.MAX_SINCE if days else c.MAX_DURATION
    if seconds > limit:
        raise ValueError(f"duration {text!r} is longer than {limit / 86400:,.0f} days")
    return seconds


def looks_like_duration(text: str) -> bool:
    try:
        parse_duration(text)
    except ValueError as error:
        return "100 days" in str(error)
    return True


def parse_bool(text: str) -> bool:
    try:
        return BOOLEANS[text.strip().lower()]
    except KeyError:
        raise ValueError(f"bad yes/no value {text!r}") from None


def parse_retries(text: str) -> int:
    digits = text.strip()
    if not (digits and set(digits) <= DIGITS and len(digits) <= 3
            and int(digits) <= c.MAX_RETRIES):
        raise ValueError(f"bad retries {text!r} (a whole number from 0 to {c.MAX_RETRIES})")
    return int(text)


def parse_when(text: str) -> str:
    if text.strip() not in When.ALL:
        raise ValueError(f"bad when {text!r} (one of {', '.join(When.ALL)})")
    return text.strip()


def parse_umask(text: str) -> int:
    digits = text.strip()
    # Four digits may only be a leading 0: 1777 would set bits a umask does not have.
    if not (1 <= len(digits) <= 4 and set(digits) <= OCTAL) or int(digits, 8) > 0o777:
        raise ValueError(f"bad umask {text!r} (octal, 0 to 777, e.g. 077)")
    return int(digits, 8)


def parse_argv(text: str) -> list[str]:
    from orchestrator import shell

    try:
        argv = shell.split(text)
    except ValueError as error:
        raise ValueError(f"bad command line {text!r}: {error}") from None
    if not argv:
        raise ValueError("empty command")
    return argv


def parse_account(text: str) -> str:
    """A user or group name: not empty, no blank, no colon, no NUL."""
    name = text.strip()
    if not name or any(ch.isspace() or ch in ":\0" for ch in name):
        raise ValueError(f"bad user or group name {text!r}")
    return name


def parse_text(text: str) -> str:
    return text.strip()


def parse_required_text(text: str) -> str:
    """A value that must not be empty: an empty state_dir would be the current directory,
    an empty path the inherited PATH, neither of which the line says."""
    if not text.strip():
        raise ValueError("an empty value is not a value (remove the line for the default)")
    return text.strip()


def parse_url(text: str) -> str:
    """An http(s) URL, or empty for none."""
    url = text.strip()
    scheme, sep, rest = url.partition("://")
    host = rest.split("/", 1)[0]
    if url and not (sep and scheme in ("http", "https") and host and not
                    any(ch.isspace() for ch in host)):
        from orchestrator.text import masked

        raise ValueError(f"bad URL {masked(url)!r} (use http:// or https://)")
    if not url.isascii():
        from orchestrator.text import masked

        # No request could carry it: http.client sends the request line as ASCII.
        raise ValueError(f"bad URL {masked(url)!r} (not ASCII: percent-encode it, and write "
                         "a host name in its xn-- form)")
    if url:
        import urllib.parse

        try:
            # What the request will take apart: an unclosed [ of an IPv6 address, a port
            # that is no number.
            _port = urllib.parse.urlsplit(url).port
        except ValueError as error:
            from orchestrator.text import masked

            raise ValueError(f"bad URL {masked(url)!r} ({error})") from None
    return url


def parse_critical(text: str) -> str:
    """``critical=yes|no``: the older spelling of ``on-failure=stop|warn``."""
    return OnFailure.STOP if parse_bool(text) else OnFailure.WARN


def parse_on_failure(text: str) -> str:
    if text.strip() not in OnFailure.ALL:
        raise ValueError(f"bad on-failure {text!r} (one of {', '.join(OnFailure.ALL)})")
    return text.strip()


def parse_events(text: str) -> tuple[str, ...]:
    """A comma list of event names, as a tuple."""
    events = tuple(part.strip() for part in text.split(","))
    for event in events:
        if not c.is_event(event) or len(event) > c.MAX_EVENT_LENGTH:
            raise ValueError(f"bad events {text!r} (a comma list of event names, e.g. "
                             "backup,prune)")
    return events


SIZE_UNITS = {"": 1, "k": 1024, "m": 1024 * 1024, "g": 1024 * 1024 * 1024}


def parse_size(text: str) -> int:
    """A size in bytes: ``4M``, ``512K``, ``1048576`` (K, M, G are 1024-based); 0 is none."""
    digits = text.strip().lower()
    unit = digits[-1:] if digits[-1:] in ("k", "m", "g") else ""
    number = digits[:len(digits) - len(unit)]
    if not (number and set(number) <= DIGITS and len(number) <= 12):
        raise ValueError(f"bad size {text!r} (bytes, or a whole number with K, M or G, e.g. 4M)")
    size = int(number) * SIZE_UNITS[unit]
    if size > c.MAX_LOG_TASK_BYTES:
        raise ValueError(f"bad size {text!r} (at most {c.MAX_LOG_TASK_BYTES // 1048576}M, "
                         "all the log files together)")
    return size


def parse_codes(text: str) -> frozenset[int]:
    """Exit statuses and ranges of them, ``3`` or ``1,100-107``: a frozenset of 1..255."""
    codes: set[int] = set()
    for part in text.replace(" ", "").split(","):
        low, dash, high = part.partition("-")
        plain = low.isascii() and low.isdigit()
        if not plain or dash and not (high.isascii() and high.isdigit()):
            raise ValueError(f"bad exit codes {text!r} (numbers and ranges 1-255, e.g. "
                             "1,100-107)")
        first, last = int(low), int(high) if dash else int(low)
        if not 1 <= first <= last <= 255:
            raise ValueError(f"bad exit codes {text!r} (numbers and ranges 1-255, e.g. "
                             "1,100-107)")
        codes.update(range(first, last + 1))
    return frozenset(codes)


def format_codes(codes: Iterable[int]) -> str:
    """``1,100-107``: exit codes as the config writes them."""
    parts: list[str] = []
    ordered: list[int | None] = [*sorted(codes), None]
    start: int | None = None
    previous: int | None = None
    for code in ordered:
        # previous is None only while start is
        if start is not None and previous is not None and code == previous + 1:

            previous = code
            continue
        if start is not None:
            parts.append(str(start) if start == previous else f"{start}-{previous}")
        start = previous = code
    return ",".join(parts)


def parse_event_list(text: str) -> tuple[str, ...]:
    """The config's ``events``: event names separated by blanks or commas, as a tuple."""
    events = tuple(text.replace(",", " ").split())
    if not events:
        raise ValueError("empty (name the events this tree runs for, e.g. 'prune check')")
    for event in events:
        if not c.is_event(event) or len(event) > c.MAX_EVENT_LENGTH:
            raise ValueError(f"bad event name {event!r} (lower-case letters, digits, '_' and "
                             "'-', starting with a letter or digit)")
    return events
