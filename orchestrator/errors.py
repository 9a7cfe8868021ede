"""Errors that end a command with a documented exit status and one line on stderr."""

from __future__ import annotations

from orchestrator import constants as c


class HookrunError(Exception):
    """A known failure: ``lines`` are its lines for stderr (one, but for a refusal that
    names several problems), ``exit_status`` the status. A newline inside a message (a file
    name, a value typed on the command line) is part of its line, escaped when shown, so it
    cannot start another."""

    exit_status = 1

    def __init__(self, message: str, exit_status: int | None = None) -> None:
        super().__init__(message)
        if exit_status is not None:
            self.exit_status = exit_status

    @property
    def lines(self) -> list[str]:
        return [str(self)]


class UsageError(HookrunError):
    exit_status = c.EXIT_USAGE


class ConfigError(HookrunError):
    exit_status = c.EXIT_CONFIG


class UnsafeError(HookrunError):
    """Unsafe paths: one line per problem."""

    exit_status = c.EXIT_UNSAFE

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems

    @property
    def lines(self) -> list[str]:
        return self.problems


class StateError(HookrunError):
    exit_status = c.EXIT_CANT_CREATE


class LockBusy(HookrunError):
    exit_status = c.EXIT_LOCKED


def fault_text(error: BaseException) -> str:
    """What an OSError or another fault (a MemoryError says nothing itself) was, in words."""
    if isinstance(error, MemoryError):
        return "out of memory"
    strerror: str | None = getattr(error, "strerror", None)
    return strerror or str(error) or type(error).__name__
