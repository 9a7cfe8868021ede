"""The ``[notify NAME]`` sections of the config (design.md section 11, "Notification
channels"): the types, the keys each takes, and the reading and checking of their values. The
channels that send them are report.channels.
"""

from __future__ import annotations

from orchestrator import constants as c
from orchestrator.outcome import RunStatus

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any

TYPES = ("webhook", "healthchecks", "ntfy", "gotify", "discord", "slack", "uptime-kuma",
         "cronitor")
START = "start"  # the run began (after the checks and the lock): not a run status
ON_VALUES = (START,) + RunStatus.ALL
NO_START = ("uptime-kuma",)  # a push monitor has no "started" state
TOKEN = {"ntfy": "optional", "gotify": "required", "webhook": "optional"}
WEBHOOK_ONLY = ("method", "header", "body")
METHODS = ("GET", "POST", "PUT", "PATCH")
VARIABLES = ("status", "event", "host", "run_id", "exit_code", "duration", "error",
             "summary", "output", "trigger")


def parse_key(key: str, value: str) -> str | bool | tuple[str, ...]:
    """The value of ``key`` (a key of a [notify] section) as written; ValueError if bad."""
    if key == "type":
        if value not in TYPES:
            raise ValueError(f"unknown type {value!r} (one of {', '.join(TYPES)})")
        return value
    if key == "url":
        from orchestrator.plan.values import parse_url

        if not value:
            raise ValueError("empty (a channel needs its URL)")
        url: str = parse_url(value)
        return url
    if key == "token":
        if not value or not value.isascii() or any(ch.isspace() or ord(ch) < 32 for ch in value):
            # Never quoted: a token is never shown.
            raise ValueError("bad token (printable ASCII without blanks)")
        return value
    if key == "on":
        return word_list(value, ON_VALUES, "status")
    if key == "triggers":
        return word_list(value, None, "trigger")
    if key == "send_output":
        from orchestrator.plan.values import parse_bool

        flag: bool = parse_bool(value)
        return flag
    if key == "method":
        if value.upper() not in METHODS:
            raise ValueError(f"bad method {value!r} (one of {', '.join(METHODS)})")
        return value.upper()
    if key == "header":
        return parse_header_line(value)
    return parse_template(value)


def word_list(text: str, allowed: Sequence[str] | None, what: str) -> tuple[str, ...]:
    """Names separated by blanks or commas, each one of ``allowed`` (or, for None, a trigger
    name as --trigger takes it); a tuple."""
    words = tuple(text.replace(",", " ").split())
    if not words:
        raise ValueError(f"empty (name at least one {what})")
    for word in words:
        good = word in allowed if allowed else (c.is_event(word)
                                                and len(word) <= c.MAX_EVENT_LENGTH)
        if not good:
            hint = f"one of {', '.join(allowed)}" if allowed else "e.g. timer scheduled manual"
            raise ValueError(f"bad {what} {word!r} ({hint})")
    return words


def parse_header_line(text: str) -> tuple[str, str]:
    """``Name: value`` as (name, value); the name an HTTP token, the value one printable
    line (http.client sends headers as Latin-1)."""
    name, colon, value = text.partition(":")
    name, value = name.strip(), value.strip()
    token = name.isascii() and name and all(ch.isalnum() or ch in "!#$%&'*+-.^_`|~"
                                            for ch in name)
    if not (colon and token):
        raise ValueError("expected 'header = Name: value'")
    if not value.isascii() or any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise ValueError(f"header {name}: the value must be printable ASCII")
    return name, value


def parse_template(text: str) -> str:
    """A body template, checked: every ``$name`` is known (``$stats_*`` any statistic);
    ``$$`` is a dollar."""
    for kind, piece in template_parts(text):
        if kind == "name" and piece not in VARIABLES and not (
                piece.startswith("stats_") and len(piece) > 6):
            raise ValueError(f"unknown variable ${piece} (known: "
                             f"{', '.join('$' + v for v in VARIABLES)}, $stats_NAME, $$)")
    return text


def template_parts(text: str) -> list[tuple[str, str]]:
    """[("text", str) or ("name", str)] of a template: ``$name``, ``${name}``, ``$$``.
    ValueError for a ``$`` that starts none of them."""
    parts: list[tuple[str, str]] = []
    start, position = 0, 0
    while True:
        position = text.find("$", start)
        if position < 0:
            parts.append(("text", text[start:]))
            return parts
        parts.append(("text", text[start:position]))
        rest = text[position + 1:]
        if rest.startswith("$"):
            parts.append(("text", "$"))
            start = position + 2
            continue
        braced = rest.startswith("{")
        if braced:
            end = rest.find("}")
            name = rest[1:end] if end > 0 else ""
            width = end + 1
        else:
            width = 0
            while width < len(rest) and (rest[width].isascii() and
                                         (rest[width].isalnum() or rest[width] == "_")):
                width += 1
            name = rest[:width]
        if not name or not all(ch.isascii() and (ch.isalnum() or ch == "_") for ch in name):
            raise ValueError(f"a '$' at column {position + 1} names no variable (write $$ for "
                             "a dollar)")
        parts.append(("name", name))
        start = position + 1 + width


def check_section(name: str, found: Mapping[str, Any]) -> None:
    """ConfigError, naming the file and line, for a [notify NAME] section that cannot work:
    no type or url, a key its type does not take, a token missing or not used."""
    from orchestrator.errors import ConfigError

    lines = found["lines"]
    where = lines["section"]
    for key in ("type", "url"):
        if key not in found:
            raise ConfigError(f"{where}: [notify {name}] needs '{key} = ...'")
    kind = found["type"]
    for key in WEBHOOK_ONLY:
        if key in lines and kind != "webhook":
            raise ConfigError(f"{lines[key]}: {key} is for type webhook only, not {kind}")
    if "token" in found and kind not in TOKEN:
        raise ConfigError(f"{lines['token']}: type {kind} takes no token (its URL carries "
                          "the key)")
    if TOKEN.get(kind) == "required" and "token" not in found:
        raise ConfigError(f"{where}: [notify {name}] of type {kind} needs 'token = ...'")
    if kind in NO_START and START in found.get("on", ()):
        raise ConfigError(f"{lines['on']}: type {kind} has no start message")
