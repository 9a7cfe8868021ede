"""What hooks and the command are given: their environment (design.md section 2) and the
``HOOKRUN_ENV`` hand-off of values from one hook to everything after it."""

import os

from orchestrator import constants as c


def base_environment(config_env, path):
    """hookrun's own environment plus config ``[env]`` and the ``path`` setting."""
    env = dict(os.environ)
    env.update(config_env)
    if path:
        env["PATH"] = path
    return env


def parse_handoff(data):
    """``NAME=value`` lines written to ``$HOOKRUN_ENV`` -> (values, warnings).

    Names must match [A-Za-z_][A-Za-z0-9_]*; HOOKRUN_* names and malformed lines are warned
    about and ignored. Blank lines are ignored; a value may contain '='.
    """
    values, warnings = {}, []
    text = data.decode("utf-8", "surrogateescape")
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        name, sep, value = line.partition("=")
        if not sep or not c.ENV_NAME_RE.match(name):
            warnings.append(f"line {number}: not NAME=value: {line[:80]!r}")
        elif name.startswith("HOOKRUN_"):
            warnings.append(f"line {number}: {name}: HOOKRUN_* names cannot be handed on")
        elif "\0" in value:
            warnings.append(f"line {number}: {name}: value holds a NUL byte")
        else:
            values[name] = value
    return values, warnings


def read_handoff(path):
    """parse_handoff of the file at ``path`` (missing or unreadable: nothing)."""
    try:
        with open(path, "rb") as handle:
            return parse_handoff(handle.read())
    except OSError:
        return {}, []
