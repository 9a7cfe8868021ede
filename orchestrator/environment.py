"""What hooks and the command are given: their environment (design.md section 2) and the
``HOOKRUN_ENV`` hand-off of values from one hook to everything after it."""

from __future__ import annotations

import os

from orchestrator import constants as c

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

MAX_HANDOFF_FILE = 1 << 20  # a larger HOOKRUN_ENV file is ignored, with a warning
# Linux refuses to execute a program one of whose environment strings is longer than this
# (MAX_ARG_STRLEN): such a value would make every later hook fail, blamed on the hook.
MAX_VALUE = 128 * 1024 - 1


def base_environment(config_env: Mapping[str, str], path: str | None) -> dict[str, str]:
    """hookrun's own environment plus config ``[env]`` and the ``path`` setting."""
    env = dict(os.environ)
    env.update(config_env)
    if path:
        env["PATH"] = path
    return env


def parse_handoff(data: bytes, path_fixed: bool = False) -> tuple[dict[str, str], list[str]]:
    """``NAME=value`` lines written to ``$HOOKRUN_ENV`` -> (values, warnings).

    Names must match [A-Za-z_][A-Za-z0-9_]*; HOOKRUN_* names, malformed lines and values too
    long for an environment are warned about and ignored, as is PATH when ``path_fixed`` (the
    config's ``path`` setting decides it). A warning names the line by its number, never its
    text, which may hold a secret. Blank lines are ignored; a value may contain '='.
    """
    values: dict[str, str] = {}
    warnings: list[str] = []
    text = data.decode("utf-8", "surrogateescape")
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        name, sep, value = line.partition("=")
        if not sep or not c.is_env_name(name):
            warnings.append(f"line {number}: not NAME=value, ignored")
        elif name.startswith("HOOKRUN_"):
            warnings.append(f"line {number}: {name}: HOOKRUN_* names cannot be handed on")
        elif "\0" in value:
            warnings.append(f"line {number}: {name}: value holds a NUL byte, ignored")
        elif len(line.encode("utf-8", "surrogateescape")) > MAX_VALUE:
            warnings.append(f"line {number}: {name}: value longer than {MAX_VALUE} bytes, "
                            "ignored")
        elif name == "PATH" and path_fixed:
            warnings.append(f"line {number}: PATH: not handed on, since the config's 'path' "
                            "setting fixes it")
        else:
            values[name] = value
    return values, warnings


def read_handoff(path: str, path_fixed: bool = False) -> tuple[dict[str, str], list[str]]:

    """parse_handoff of the file at ``path`` (missing or unreadable: nothing; larger than
    MAX_HANDOFF_FILE: nothing, and a warning)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return {}, []
    try:
        size = os.fstat(fd).st_size
        if size > MAX_HANDOFF_FILE:
            return {}, [f"is {size} bytes, over {MAX_HANDOFF_FILE >> 20} MiB: ignored"]
        return parse_handoff(os.read(fd, MAX_HANDOFF_FILE), path_fixed)
    except OSError:
        return {}, []
    finally:
        os.close(fd)
