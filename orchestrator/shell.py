"""Quoting for /bin/sh, as shlex spells it: a cleanup's journal line, $HOOKRUN_COMMAND and
the printed command line read exactly as shlex.join writes them. shlex itself imports ``re``,
which would cost every run its start-up time; ``split`` imports it only when a line must be
read back (a cleanup's replay, a notify command)."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_@%+=:,./-")


def quote(word: str) -> str:
    """``word`` as one /bin/sh word: as is when nothing in it is special, else in single
    quotes (shlex.quote's spelling)."""
    if not word:
        return "''"
    if SAFE.issuperset(word):
        return word
    return "'" + word.replace("'", "'\"'\"'") + "'"


def join(argv: Iterable[str]) -> str:
    return " ".join(quote(word) for word in argv)


def split(line: str) -> list[str]:
    """The words of a /bin/sh command line (shlex.split); ValueError when it cannot be read."""
    import shlex

    return shlex.split(line)
