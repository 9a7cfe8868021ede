"""Permission checks: a hooks tree others can write to is a way into the machine (design.md 5)."""

import os
import stat


def path_problem(path, euid=None):
    """One line saying why ``path`` is unsafe, with the fix; or None."""
    euid = os.geteuid() if euid is None else euid
    try:
        info = os.stat(path)
    except OSError:
        return None
    shown = os.fsdecode(path)
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"{shown} is writable by group or others (fix: chmod go-w {shown})"
    if info.st_uid not in (0, euid):
        return (f"{shown} is owned by uid {info.st_uid}, not root or the user running hookrun "
                f"(fix: chown {euid} {shown})")
    if info.st_mode & (stat.S_ISUID | stat.S_ISGID):
        return f"{shown} is set-user-ID or set-group-ID (fix: chmod ug-s {shown})"
    return None


def problems(paths, euid=None):
    """The problem lines of every path in ``paths``. A symlink is judged, and named, by the
    file it points to, since that is what runs."""
    found = []
    for path in paths:
        problem = path_problem(os.path.realpath(path) if os.path.islink(path) else path, euid)
        if problem and problem not in found:
            found.append(problem)
    return found
