"""Whom a process runs as: a hook's ``user=`` and ``group=`` (design.md section 11), a
cleanup's journal owner, and the words that make a process that identity before it runs."""

from __future__ import annotations

import os
import sys
from collections import namedtuple

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import NamedTuple

    class IdentityFields(NamedTuple):
        name: str
        uid: int
        gid: int
        groups: tuple[int, ...]
        home: str
else:
    IdentityFields = namedtuple("Identity", "name uid gid groups home")


class Identity(IdentityFields):
    """Whom a process runs as: user name, uid, primary gid, supplementary gids, home."""

    __slots__ = ()


def identity_of(user: str | None = None, group: str | None = None) -> Identity | None:
    """The Identity of ``user`` (a name; None: the running user) with ``group`` (a name;
    None: the user's own) as primary group, and the user's supplementary groups
    (initgroups); None when that is who hookrun already is. LookupError (its message
    says which name is unknown) for a user or group the system does not know;
    PermissionError when hookrun is not root and would have to change who it is."""
    import grp
    import pwd

    try:
        entry = pwd.getpwnam(user) if user is not None else pwd.getpwuid(os.geteuid())
    except KeyError:
        raise LookupError(f"unknown user {user!r}") from None
    gid = entry.pw_gid
    if group is not None:
        try:
            gid = grp.getgrnam(group).gr_gid
        except KeyError:
            raise LookupError(f"unknown group {group!r}") from None
    if entry.pw_uid == os.geteuid() and gid == os.getegid():
        return None
    if os.geteuid() != 0:
        raise PermissionError("only root can run a hook as another user or group")
    groups = tuple(os.getgrouplist(entry.pw_name, gid))
    return Identity(entry.pw_name, entry.pw_uid, gid, groups, entry.pw_dir)


def may_access(identity: Identity, checks: Sequence[tuple[str, int]]) -> int | None:
    """The index of the first of ``checks`` ((path, os.X_OK or os.R_OK ...)) that
    ``identity`` may not do, or None when it may do all: the kernel's own answer,
    access(2) asked by a child that has become that identity, so ACLs, the directories on
    the way, the links through them and noexec mounts count as they will when the hook
    runs. OSError when no child could ask (fork failed, or it could not become the
    identity). Forks: call it only while hookrun is single-threaded (planning)."""
    read_end, write_end = os.pipe()
    try:
        pid = os.fork()
    except OSError:
        os.close(read_end)
        os.close(write_end)
        raise
    if pid == 0:
        # The child never returns into hookrun: no cleanup, no flush of the parent's
        # buffers, whatever happens (os._exit in finally also ends any exception).
        status = 1
        try:
            os.close(read_end)
            os.setgroups(list(identity.groups))
            os.setgid(identity.gid)
            os.setuid(identity.uid)
            refused = next((index for index, (path, mode) in enumerate(checks)
                            if not os.access(path, mode)), None)
            os.write(write_end, b"" if refused is None else str(refused).encode())
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    answer = b""
    try:
        while True:
            chunk = os.read(read_end, 64)
            if not chunk:
                break
            answer += chunk
    finally:
        os.close(read_end)
        _, wait_status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(wait_status) != 0:
        raise OSError(f"could not ask as user {identity.name}")
    return int(answer) if answer else None


# Run as ``python -I -S -c DROP UID GID GROUPS ARGV...``: become that identity, then exec
# ARGV. The wrapper shell of a cleanup runs as root (it holds the run's lock and marks the
# cleanup done) and only the cleanup itself runs as the user who deferred it.
DROP = ("import os, sys; a = sys.argv; "
        "os.setgroups([int(g) for g in a[3].split(',') if g]); "
        "os.setgid(int(a[2])); os.setuid(int(a[1])); os.execv(a[4], a[4:])")


def as_identity_argv(identity: Identity) -> tuple[str, ...]:
    """The words that, put before an argv, run it as ``identity`` (see DROP)."""
    return (sys.executable, "-I", "-S", "-c", DROP, str(identity.uid), str(identity.gid),
            ",".join(str(g) for g in identity.groups))


def identity_of_uid(uid: int) -> Identity:
    """The Identity of ``uid`` (a user's cleanup journal's owner), from the passwd entry;
    without one, that uid with itself as group."""
    import pwd

    try:
        entry = pwd.getpwuid(uid)
    except KeyError:
        return Identity(str(uid), uid, uid, (uid,), "/")
    return Identity(entry.pw_name, uid, entry.pw_gid,
                    tuple(os.getgrouplist(entry.pw_name, entry.pw_gid)), entry.pw_dir)
