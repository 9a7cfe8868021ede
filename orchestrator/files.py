"""Opening the files hookrun writes, so that no other user can redirect or read them
(design.md section 8): never through a symbolic link (O_NOFOLLOW), new files created
exclusively (O_EXCL) with mode 0600, and an existing file only when it is a regular file of
the user running hookrun that no one else can write to. Also what the kernel passes through
to resolve a path (chain), which plan.safety's trust rules judge."""

from __future__ import annotations

import errno
import functools
import os
import stat
import sys

from orchestrator.text import shown

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

WRITABLE_BY_OTHERS = stat.S_IWGRP | stat.S_IWOTH
MAX_LINKS = 40  # symbolic links followed in one path, as Linux's own limit


def chain(path: str, lstat: Callable[[str], os.stat_result] = os.lstat
          ) -> tuple[list[tuple[str, os.stat_result]], bool]:
    """What the kernel looks at to resolve the absolute ``path``: a list of (entry, lstat) for
    every directory passed through and every symbolic link followed, in order, ending with
    the path itself; and whether the path exists. OSError (ELOOP) on a symbolic link loop."""
    todo = [part for part in reversed(path.split("/")) if part]
    current = "/"
    found = [("/", lstat("/"))]
    links = 0
    while todo:
        name = todo.pop()
        if name == ".":
            continue
        if name == "..":
            current = os.path.dirname(current)
            continue
        candidate = os.path.join(current, name)
        try:
            info = lstat(candidate)
        except (FileNotFoundError, NotADirectoryError):
            return found, False
        found.append((candidate, info))
        if stat.S_ISLNK(info.st_mode):
            links += 1
            if links > MAX_LINKS:
                raise OSError(errno.ELOOP, "too many levels of symbolic links", path)
            target = os.readlink(candidate)
            if target.startswith("/"):
                current = "/"
            todo.extend(part for part in reversed(target.split("/")) if part)
        else:
            current = candidate
    return found, True


PRIVATE = 0o600
NEW = os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
# Opening a file to read it never waits: a FIFO where a state file should be would block the
# open for ever (it is refused once open, as not a regular file).
READ = os.O_RDONLY | os.O_NONBLOCK
READ_STEP = 65536


class NotOwnFile(OSError):
    """An existing file that hookrun must not write to: its message says why, with the fix."""

    def __init__(self, message: str) -> None:
        super().__init__(errno.EPERM, message)


class NotRegularFile(NotOwnFile):
    """A FIFO, socket, device or directory where hookrun wants a regular file: refused at
    once, since reading or writing it could block for ever (design.md section 8)."""

    def __init__(self, path: str) -> None:
        super().__init__(f"{shown(path)} is not a regular file (fix: move it away)")


def own_file_problem(path: str, info: os.stat_result, euid: int | None = None) -> str | None:
    """Why the existing file ``path`` (``info`` from stat) is not one hookrun may write to,
    or None."""
    euid = os.geteuid() if euid is None else euid
    name = shown(path)
    if not stat.S_ISREG(info.st_mode):
        return NotRegularFile(path).strerror
    if info.st_uid != euid:
        return (f"{name} is owned by uid {info.st_uid}, not the user running hookrun "
                f"(fix: remove it, or chown {euid} {name})")
    if info.st_mode & WRITABLE_BY_OTHERS:
        return f"{name} is writable by group or others (fix: chmod go-w {name})"
    return None


def open_own(path: str, flags: int, mode: int = PRIVATE) -> int:
    """``os.open`` of a file of hookrun's own: never through a symbolic link, created with
    ``mode`` if ``flags`` has O_CREAT, refused (NotOwnFile) if it is not a regular file of the
    running user that only it can write (NotRegularFile for a FIFO or device). Opened
    O_NONBLOCK, so that a FIFO planted there cannot block the open; on a regular file Linux
    ignores the flag, so the descriptor works as any other."""
    fd = open_regular(path, flags, mode)
    try:
        problem = own_file_problem(path, os.fstat(fd))
    except OSError:
        os.close(fd)
        raise
    if problem:
        os.close(fd)
        raise NotOwnFile(problem)
    return fd


def read_sized(fd: int, limit: int) -> bytes:
    """Up to ``limit`` bytes from the file open at ``fd``, in buffers sized by what the file
    holds (fstat), not by ``limit``: a read must not ask for megabytes that a small file does
    not need, which a tight address-space limit refuses (MemoryError). Reads on to the end,
    so a file that grew since the fstat is read whole too (up to ``limit``)."""
    size = os.fstat(fd).st_size
    chunks: list[bytes] = []
    got = 0
    while got < limit:
        chunk = os.read(fd, min(limit - got, max(size - got, 0) + READ_STEP))
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def open_regular(path: str, flags: int, mode: int = PRIVATE) -> int:
    """``os.open`` with O_NONBLOCK and O_NOFOLLOW, of a regular file only: NotRegularFile for
    anything else (a FIFO that no one reads, opened for writing, says ENXIO; a directory
    opened for writing, EISDIR)."""
    try:
        fd = os.open(path, flags | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    except OSError as error:
        if error.errno in (errno.ENXIO, errno.EISDIR):
            raise NotRegularFile(path) from None
        raise
    try:
        regular = stat.S_ISREG(os.fstat(fd).st_mode)
    except OSError:
        os.close(fd)
        raise
    if not regular:
        os.close(fd)
        raise NotRegularFile(path)
    return fd


def is_null_device(info: os.stat_result) -> bool:
    """Whether ``info`` (from stat, a link followed) is the null device: a character device
    with /dev/null's device number, however the path to it was spelled."""
    return stat.S_ISCHR(info.st_mode) and info.st_rdev == null_device_number()


@functools.cache
def null_device_number() -> int | None:
    """/dev/null's device number (None without one), looked up once per process: a tree
    masks many hooks, and each mask is judged at least twice."""
    try:
        return os.stat(os.devnull).st_rdev
    except OSError:
        return None


def read_settings(path: str) -> bytes:
    """The bytes of a file hookrun reads its settings from (the config file, ``.hookignore``),
    never waiting: a FIFO there would block an open or a read for ever (design.md section 8).
    A symbolic link is followed (the trust rules have judged the way to it). The null device
    reads as empty: a link to /dev/null masks the file (design.md section 12). Anything else
    that is not a regular file is NotRegularFile, without being opened (opening a device can
    act on it); FileNotFoundError and other OSErrors as os.open raises them."""
    found = os.stat(path)
    if not (stat.S_ISREG(found.st_mode) or is_null_device(found)):
        raise NotRegularFile(path)
    # O_NONBLOCK: it may have been replaced by a FIFO since the stat; fstat says what it is.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        info = os.fstat(fd)
        if is_null_device(info):
            return b""
        if not stat.S_ISREG(info.st_mode):
            raise NotRegularFile(path)
        return read_sized(fd, sys.maxsize)
    finally:
        os.close(fd)


def write_private(path: str, data: bytes) -> None:
    """Write ``data`` (bytes) to ``path``, mode 0600, replacing what a file of hookrun's own
    held there. Not synced: what is written this way only serves the live run."""
    fd = open_own(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        write_all(fd, data)
    finally:
        os.close(fd)


def write_all(fd: int, data: bytes) -> None:
    """Write all of ``data``; OSError (ENOSPC) when the disk takes only part of it."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        if not written:
            raise OSError(errno.ENOSPC, "No space left on device")
        view = view[written:]


def foreign_links(path: str, euid: int | None = None,
                  lstat: Callable[[str], os.stat_result] = os.lstat) -> list[str]:
    """Problem lines for every symbolic link on the way to ``path`` that another user owns:
    whoever owns a link can point it elsewhere between our check and our open. OSError when
    the way cannot be looked up (EACCES, ENAMETOOLONG, ELOOP) and no link of another user
    was passed before: that is no trust finding, but a path that cannot be written, which
    its open or write says (design.md sections 2 and 4). ``lstat`` as for chain."""
    euid = os.geteuid() if euid is None else euid
    passed: list[tuple[str, os.stat_result]] = []

    def look(entry: str) -> os.stat_result:
        info = lstat(entry)
        passed.append((entry, info))
        return info

    try:
        chain(os.path.abspath(path), look)
        failure = None
    except OSError as error:
        failure = error
    problems = [f"{shown(entry)} is a symbolic link owned by uid {info.st_uid}, not root or "
                f"the user running hookrun (fix: replace it, or point hookrun at the real path)"
                for entry, info in passed
                if stat.S_ISLNK(info.st_mode) and info.st_uid not in (0, euid)]
    if failure is not None and not problems:
        raise failure
    return problems


def real_path(path: str) -> str:
    """The file the log or metrics file at ``path`` really is, looked at when it is opened
    (design.md section 8): NotOwnFile when a symbolic link on the way belongs to another
    user, who could have planted it to make root write where it points. A link at ``path``
    itself is followed only if root or the running user owns it (no one else can replace it
    in a sticky directory); the file is then opened without following a link (ELOOP: a link
    planted after this look refuses it), or replaced by a rename, which follows none.
    OSError when the way cannot be looked up (see foreign_links)."""
    problems = foreign_links(path)
    if problems:
        raise NotOwnFile(problems[0])
    found = os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path))
    try:
        info = os.lstat(found)
    except FileNotFoundError:
        return found
    if not stat.S_ISLNK(info.st_mode):
        return found
    if info.st_uid not in (0, os.geteuid()):
        raise NotOwnFile(f"{shown(found)} is a symbolic link owned by uid {info.st_uid}, "
                         "not root or the user running hookrun")
    return os.path.realpath(found)


def log_target(path: str, state_dir: str | None) -> str:
    """The file the log file at ``path`` is, for writing it and for reading it back (``show
    --output``): real_path(), outside ``state_dir``; ``path`` itself inside it, where no
    link is ever followed (opening one there fails, ELOOP). NotOwnFile as real_path."""
    if state_dir is not None:
        state = os.path.realpath(state_dir)
        if os.path.commonpath([state, os.path.realpath(os.path.dirname(path))]) == state:
            return path
    return real_path(path)


def output_file_problems(path: str, appended: bool) -> list[str]:
    """Why hookrun must not write the log or metrics file at ``path``: a symbolic link of
    another user on the way, or (for a file ``appended`` to, the log) an existing file that
    another user owns or can write. [] when it is fine. A FIFO, socket, device or directory
    is not a problem here: opening it is refused with a warning, and the run goes on; nor is
    a path that cannot be looked up (EACCES, ENAMETOOLONG, ELOOP): opening the log file
    refuses the run (73), writing the metrics file warns."""
    try:
        problems = foreign_links(path)
    except OSError:
        return []
    if appended and not problems:
        try:
            info = os.stat(path)
        except OSError:
            return []  # nothing there to trust or not; opening it will say what is wrong
        if not stat.S_ISREG(info.st_mode):
            return []
        problem = own_file_problem(path, info)
        if problem:
            problems.append(problem)
    return problems


def remove_tree(path: str) -> None:
    """Remove ``path`` and everything under it, as far as possible, never following a
    symbolic link (a link is removed, not what it points to). What cannot be removed stays:
    shutil.rmtree(ignore_errors=True), without importing shutil and the compressors it
    brings, for the one directory every run removes."""
    try:
        is_dir = stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return
    if not is_dir:
        unlink_quietly(path)
        return
    try:
        with os.scandir(path) as entries:
            found = [(entry.path, entry.is_dir(follow_symlinks=False)) for entry in entries]
    except OSError:
        found = []
    for entry, entry_is_dir in found:
        if entry_is_dir:
            remove_tree(entry)
        else:
            unlink_quietly(entry)
    try:
        os.rmdir(path)
    except OSError:
        pass


def unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def find_in_path(name: str, path: str | None) -> str | None:
    """The file ``name`` (no slash in it) runs as, looked up in ``path`` (a PATH value; None:
    the default) as execvp(3) looks it up; None when there is none."""
    for directory in (os.defpath if path is None else path).split(os.pathsep):
        candidate = os.path.join(directory or ".", name)
        if os.access(candidate, os.X_OK) and not os.path.isdir(candidate):
            return candidate
    return None
