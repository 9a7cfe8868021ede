"""Everything that makes text safe to show, log or publish: names and output bytes as one
terminal line (control characters escaped, undecodable bytes replaced), and text made safe for
JSON and SQLite (surrogate escapes replaced).

The printer, the log, the history, the notifications and the checks that name a file all pass
their text through here, so no name, argument, reason or output line can forge a line or move
the cursor; none of them needs the printer for that.
"""

from __future__ import annotations

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
        name = name.encode("utf-8", "surrogateescape")
    return name.decode("utf-8", "replace").translate(LINE_CONTROL)
