"""Errors that end a command with a documented exit status and one line on stderr."""

from __future__ import annotations

from orchestrator import constants as c


class HookrunError(Exception):
    """A known failure: ``str(error)`` is the line for stderr, ``exit_status`` the status."""

    exit_status = 1

    def __init__(self, message: str, exit_status: int | None = None) -> None:
        super().__init__(message)
        if exit_status is not None:
            self.exit_status = exit_status


class UsageError(HookrunError):
    exit_status = c.EXIT_USAGE


class ConfigError(HookrunError):
    exit_status = c.EXIT_CONFIG


class UnsafeError(HookrunError):
    exit_status = c.EXIT_UNSAFE


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
