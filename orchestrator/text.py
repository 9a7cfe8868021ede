"""Everything that makes text safe to show, log or publish: names and output bytes as one
terminal line (control characters escaped, undecodable bytes replaced), bytes cut where a
character begins (whole_characters), paths as messages show them (shown), text made safe for
JSON and SQLite (surrogate escapes replaced), URLs with their password masked (masked), and a
cleanup named by its command word where its whole line, which may hold a password, must not
go (published_name).

The printer, the log, the history, the notifications and the checks that name a file all pass
their text through here, so no name, argument, reason or output line can forge a line or move
the cursor; none of them needs the printer for that.
"""

from __future__ import annotations

from orchestrator import constants as c
from orchestrator import shell

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TypeVar

    T = TypeVar("T")

# Bytes the terminal must not get raw: controls other than tab and newline, and DEL.
UNSAFE = bytes(range(9)) + bytes(range(11, 32)) + b"\x7f"
CONTROL = {code: f"\\x{code:02x}" for code in list(range(32)) + [127] if code not in (9, 10)}
# C1 controls: a UTF-8 terminal may take U+009B for the escape that starts a command.
CONTROL.update({code: f"\\u{code:04x}" for code in range(0x80, 0xA0)})
LINE_CONTROL = {**CONTROL, 10: "\\x0a"}


def whole_characters(data: bytes, limit: int) -> bytes:
    """``data``'s first ``limit`` bytes, cut before a UTF-8 character that would be split
    (at most 3 bytes earlier): a split one reads as a replacement character."""
    end = limit
    while end > limit - 3 and end < len(data) and data[end] & 0xC0 == 0x80:  # continuation
        end -= 1
    return data[:end]


def last_whole_characters(data: bytes, limit: int) -> bytes:
    """``data``'s last ``limit`` bytes at most, starting where a UTF-8 character begins."""
    start = max(0, len(data) - limit)
    while start < len(data) and data[start] & 0xC0 == 0x80:  # a continuation byte
        start += 1
    return data[start:]


def display(data: bytes) -> str:
    """Bytes as terminal text: UTF-8 with invalid bytes replaced, control characters (C0 other
    than tab and newline, DEL, C1) escaped."""
    return data.decode("utf-8", "replace").translate(CONTROL)


def as_text(value: T) -> T:
    """Text safe for JSON and SQLite: surrogate escapes (undecodable bytes) replaced; anything
    but a str (None, a number) is returned as it is."""
    if value is None or not isinstance(value, str):
        return value
    # A str in, a str out; mypy cannot see that T is str here, and an overload would need
    # typing at run time.
    safe = value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return safe  # type: ignore[return-value]


def display_name(name: str | bytes) -> str:
    """A file name (str with surrogate escapes, or bytes) as one line of text: undecodable
    bytes replaced, control characters, newline included, escaped. Every line hookrun shows
    or logs passes through it, so no name, argument or reason can forge a line."""
    if isinstance(name, str):
        if name.isascii() and name.isprintable():
            return name  # nothing to escape: the common case, at a tenth of the cost
        name = name.encode("utf-8", "surrogateescape")
    return name.decode("utf-8", "replace").translate(LINE_CONTROL)


def shown(path: str) -> str:
    """A path as a message shows it: undecodable bytes and control characters escaped."""
    return display_name(path)


def masked(url: str) -> str:
    """``url`` as messages show it: a password as ``***`` (``https://user:***@host/``), a user
    name alone (often a token) as ``***``."""
    scheme, sep, rest = url.partition("://")
    authority = rest.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    user, at, host_port = authority.rpartition("@")
    if not (sep and at):
        return url
    name, colon, _password = user.partition(":")
    hidden = f"{name}:***" if colon else "***"
    return f"{scheme}://{hidden}@{host_port}{rest[len(authority):]}"


def command_word(line: str) -> str:
    """What a cleanup is called where its whole line must not go (the metrics file, which
    others may read, and notifications): its first word that is not a NAME=value assignment,
    since the rest of a line may hold a password."""
    try:
        words = shell.split(line)
    except ValueError:
        words = line.split()
    for word in words:
        name, sep, _value = word.partition("=")
        if not (sep and c.is_env_name(name)):
            return word
    return "cleanup"


def published_name(phase: str, name: str) -> str:
    """A task's name as metrics and notifications show it: a cleanup by its command word."""
    return command_word(name) if phase in (c.PHASE_CLEANUP, c.PHASE_RECOVER) else name
