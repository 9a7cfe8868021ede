"""Which paths hookrun may trust (design.md sections 5 and 8).

A path is only as safe as every entry the kernel passes through to reach it: each directory
above it and each symbolic link on the way. hookrun trusts an entry when it is owned by root or
by the user running hookrun and no one else can change it: not writable by group or others,
unless it is a directory with the sticky bit (like /tmp), where others may create names but not
replace ours. The entry itself, the thing hookrun executes, reads or keeps its state in, is held
to a stricter rule of its own (``HOOK_RULE``, ``STATE_RULE``), as OpenSSH's StrictModes does.
"""

from __future__ import annotations

import errno
import os
import stat

from orchestrator.files import WRITABLE_BY_OTHERS, chain, is_null_device
from orchestrator.text import shown

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence
    from typing import Literal

    # A rule judges one entry (path, its lstat, the owners allowed) and says why it is unsafe,
    # or None.
    Rule = Callable[[str, os.stat_result, Sequence[int]], str | None]


def user(uid: int) -> str:
    """``uid 999 (mallory)``, or ``root``."""
    if uid == 0:
        return "root"
    import pwd

    try:
        return f"uid {uid} ({pwd.getpwuid(uid).pw_name})"
    except KeyError:
        return f"uid {uid}"


# Directories whose owner is the system's: advice to chown one of them (or anything under
# the first group) would break the machine, or hand another user's home to root.
SYSTEM_DIRS = frozenset(("/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib32",
                         "/lib64", "/media", "/mnt", "/opt", "/proc", "/root", "/run", "/sbin",
                         "/srv", "/sys", "/tmp", "/usr", "/var", "/var/lib", "/var/tmp"))
SYSTEM_TREES = ("/usr/", "/bin/", "/sbin/", "/lib/", "/lib32/", "/lib64/", "/boot/", "/proc/",
                "/sys/", "/dev/")


class ForeignOwner(str):
    """A problem line about an entry owned by another user: ``owner`` is that uid,
    ``entry`` the path, ``keep`` whether its owner must not be changed (a home or system
    directory). grouped() gives one piece of advice for all of them."""

    # Set by owner_problem(), the one maker of them.
    owner: int
    entry: str
    keep = False


def home_dirs() -> set[str]:
    import pwd

    return {entry.pw_dir.rstrip("/") for entry in pwd.getpwall() if entry.pw_dir.startswith("/")}


def keeps_its_owner(entry: str) -> bool:
    """Whether ``entry`` is a system directory, is in a system tree, or is (or holds, as
    /home/alice does) a user's home: never advise a chown of it."""
    path = os.path.normpath(entry)
    if path in SYSTEM_DIRS or path.startswith(SYSTEM_TREES):
        return True
    if os.path.dirname(path) == "/home":
        return True
    return path in home_dirs()


def owner_problem(entry: str, info: os.stat_result,
                  owners: Sequence[int]) -> ForeignOwner | None:
    """Why ``entry`` has the wrong owner (``owners`` are those allowed; the last of them runs
    hookrun), or None: a ForeignOwner line."""
    if info.st_uid in owners:
        return None
    name = shown(entry)
    runner = user(owners[-1])
    allowed = runner if set(owners) == {owners[-1]} else f"root or {runner}"
    text = f"{name} is owned by {user(info.st_uid)}, not {allowed}, who runs hookrun"
    keep = keeps_its_owner(entry)
    if not keep:
        login = runner if owners[-1] == 0 else str(owners[-1])
        text += f" (fix: chown {login} {name}, or use a tree of your own)"
    problem = ForeignOwner(text)
    problem.owner, problem.entry, problem.keep = info.st_uid, entry, keep
    return problem


def shared_fixes(problems: Iterable[str], runner: int | None = None) -> dict[int, str]:
    """{owner: fix} for the other users whose entries get one fix for all instead of one
    each: those with several entries among ``problems``, or with a home or system
    directory among them (whose owner must not change)."""
    runner = os.geteuid() if runner is None else runner
    by_owner: dict[int, list[ForeignOwner]] = {}
    for problem in problems:
        if isinstance(problem, ForeignOwner):
            by_owner.setdefault(problem.owner, []).append(problem)
    return {owner: owner_fix(owner, found, runner) for owner, found in by_owner.items()
            if len(found) > 1 or any(p.keep for p in found)}


def grouped(problems: Sequence[str], runner: int | None = None) -> list[str]:
    """``problems`` as a refusal shows them: the lines of shared_fixes() lose their own fix,
    and one line at the end per owner gives it once. Returns the list of lines."""
    fixes = shared_fixes(problems, runner)
    lines = [bare(p) if getattr(p, "owner", None) in fixes else p for p in problems]
    for owner, fix in fixes.items():
        count = sum(getattr(p, "owner", None) == owner for p in problems)
        paths = "the path above is" if count == 1 else f"the {count} paths above are"
        lines.append(f"{paths} owned by {owner_name(owner)} (fix: {fix})")
    return lines


def bare(problem: str) -> str:
    """A problem line without its own fix."""
    return str.__str__(problem).split(" (fix: ", 1)[0]


def overflow_uid() -> int | None:
    """The uid that files of ids unmapped in this user namespace show (65534), or None."""
    try:
        with open("/proc/sys/kernel/overflowuid") as file:
            return int(file.read())
    except (OSError, ValueError):
        return None


def owner_name(owner: int) -> str:
    if owner == overflow_uid():
        return f"uid {owner}, an id outside this user namespace"
    return user(owner)


def owner_fix(owner: int, found: Sequence[ForeignOwner], runner: int) -> str:
    """The one fix for the entries ``found`` that ``owner`` has."""
    them = user(runner)
    if not any(p.keep for p in found):
        top = min((p.entry for p in found), key=len)
        login = them if runner == 0 else str(runner)
        return (f"chown -R {login} {shown(top)} if they are meant to be {them}'s, or use a "
                "tree of your own")
    own = "/etc/hookrun" if runner == 0 else "~/.config/hookrun"
    if owner == overflow_uid():
        instead = "run hookrun outside the user namespace"
    else:
        instead = f"a tree of your own such as {own}, or run hookrun as {user(owner)}"
    return (f"do not chown a home or system directory: {instead}; --insecure runs it "
            f"anyway, and then {owner_name(owner)} decides what {them} runs")


def writable_problem(entry: str, info: os.stat_result) -> str:
    name = shown(entry)
    return f"{name} is writable by group or others (fix: chmod go-w {name})"


def passage_problem(entry: str, info: os.stat_result, owners: Sequence[int]) -> str | None:
    """Why ``entry``, passed through on the way to another path, is unsafe; or None. A sticky
    directory may be writable by others; a symbolic link's own mode means nothing."""
    problem = owner_problem(entry, info, owners)
    if problem or stat.S_ISLNK(info.st_mode):
        return problem
    sticky = stat.S_ISDIR(info.st_mode) and info.st_mode & stat.S_ISVTX
    if info.st_mode & WRITABLE_BY_OTHERS and not sticky:
        return writable_problem(entry, info)
    return None


def hook_rule(entry: str, info: os.stat_result, owners: Sequence[int]) -> str | None:
    """Section 5's rule for what hookrun executes or reads its settings from: the hooks tree,
    a hook, an interpreter, the config file, ``.hookignore``."""
    if info.st_mode & WRITABLE_BY_OTHERS:
        return writable_problem(entry, info)
    problem = owner_problem(entry, info, owners)
    if problem:
        return problem
    if info.st_mode & (stat.S_ISUID | stat.S_ISGID):
        name = shown(entry)
        return f"{name} is set-user-ID or set-group-ID (fix: chmod ug-s {name})"
    return None


def settings_rule(entry: str, info: os.stat_result, owners: Sequence[int]) -> str | None:
    """hook_rule for a file hookrun reads settings from (the config file, ``.hookignore``),
    except that the null device is an empty file: a link to /dev/null masks the file, as it
    masks a hook (design.md section 12), and no one is told to chmod /dev/null. The way
    to it (directories, the link and its owner) is judged as for any path."""
    return None if is_null_device(info) else hook_rule(entry, info, owners)


# A phase directory is judged as hookrun.conf is: a link to /dev/null there masks that phase
# directory of every earlier hooks directory (design.md section 12), and no one is told to
# chmod /dev/null. The way to it (directories, the link and its owner) is judged as any path.
phase_dir_rule = settings_rule


def state_rule(entry: str, info: os.stat_result, owners: Sequence[int]) -> str | None:
    """The rule for the state directory and its ``runs/`` and ``locks/``: a real directory of
    the user running hookrun that no one else can write to."""
    name = shown(entry)
    if not stat.S_ISDIR(info.st_mode):
        return f"{name} is not a directory (fix: move it away)"
    if info.st_uid != owners[-1]:
        return (f"{name} is owned by {user(info.st_uid)}, not {user(owners[-1])}, who runs "
                "hookrun (fix: another --state-dir, or remove it once you have seen what is "
                "in it)")
    if info.st_mode & WRITABLE_BY_OTHERS:
        return writable_problem(entry, info)
    return None


class Checker:
    """Checks paths for one user (``euid``) at one moment; each unsafe path is reported once.

    Hooks share their directories and mostly their interpreter: what one check has looked at
    (lstat), judged or found executable is not looked at again by the next."""

    def __init__(self, euid: int | None = None) -> None:
        self.euid = os.geteuid() if euid is None else euid
        self.owners = (0, self.euid)
        self.problems: list[str] = []
        self.problem_paths: list[str] = []  # the path each of ``problems`` is about
        self.warnings: list[str] = []  # the caller's lines that refuse nothing
        self.flagged: set[str] = set()
        self.looked_at: dict[str, os.stat_result | Literal[False]] = {}
        self.judged: set[tuple[str, Rule]] = set()
        self.checked: dict[tuple[str, Rule], bool] = {}
        # What the kernel passes through to each existing path checked (see chain).
        self.walked: dict[str, list[tuple[str, os.stat_result]]] = {}
        self.executable: dict[str, bool] = {}

    def lstat(self, path: str) -> os.stat_result:
        """os.lstat, once per path; a missing path raises FileNotFoundError each time."""
        info = self.looked_at.get(path)
        if info is None:
            try:
                info = os.lstat(path)
            except FileNotFoundError:
                info = False
            self.looked_at[path] = info
        if info is False:
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)
        return info

    def judge(self, entry: str, info: os.stat_result, rule: Rule) -> None:
        """``rule``'s verdict on ``entry``, added to the problems; once per entry and rule."""
        if (entry, rule) not in self.judged:
            self.judged.add((entry, rule))
            self.add(entry, rule(entry, info, self.owners))

    def add(self, entry: str, problem: str | None) -> None:
        if problem and entry not in self.flagged:
            self.flagged.add(entry)
            self.problems.append(problem)
            self.problem_paths.append(entry)

    def check(self, path: str, rule: Rule = hook_rule) -> bool:
        """Check everything the kernel passes through to reach ``path`` and, if it exists,
        the path itself by ``rule``; returns whether it exists."""
        if (path, rule) not in self.checked:
            self.checked[path, rule] = self.check_once(path, rule)
        return self.checked[path, rule]

    def check_once(self, path: str, rule: Rule) -> bool:
        absolute = os.path.abspath(path)
        try:
            found, exists = self.walk(absolute)
        except OSError as error:
            self.add(path, f"{shown(path)}: {error.strerror}")
            return False
        last = len(found) - 1 if exists else len(found)
        for entry, info in found[:last]:
            self.judge(entry, info, passage_problem)
        if exists:
            entry, info = found[-1]
            self.judge(entry, info, rule)
        return exists

    def walk(self, path: str) -> tuple[list[tuple[str, os.stat_result]], bool]:
        """chain(``path``) (absolute), through what an earlier walk found: a file in a
        directory walked before, where that walk ended at the directory itself (no link
        followed at its end), is that walk plus the file, unless the file is a link (a hook
        directory's hooks: one lstat each, not a walk from /)."""
        parent, name = os.path.split(path)
        above = self.walked.get(parent)
        if above is not None and above[-1][0] == parent and name not in ("", ".", ".."):
            try:
                info = self.lstat(path)
            except FileNotFoundError:
                return above, False
            if not stat.S_ISLNK(info.st_mode):
                found = above + [(path, info)]
                self.walked[path] = found
                return found, True
        found, exists = chain(path, self.lstat)
        if exists:
            self.walked[path] = found
        return found, exists

    def check_here(self, path: str, rule: Rule) -> bool:
        """Check ``path`` itself by ``rule``, as lstat(2) sees it: a symbolic link there is
        judged as a link, never followed. Returns whether it exists."""
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            return False
        except OSError as error:
            self.add(path, f"{shown(path)}: {error.strerror}")
            return False
        self.add(path, rule(path, info, self.owners))
        return True

    def check_interpreter(self, head: bytes, env_path: str | None) -> str | None:
        """Check the interpreter named by a script's first line (``head``, bytes), and for
        ``#!/usr/bin/env NAME`` also NAME as found in ``env_path``, by the trust rules;
        returns why the script cannot start (``interpreter /usr/bin/python9 not found``,
        ``CRLF line endings``), else None. Whether the running user may execute it is the
        kernel's answer (access(2)), as for a hook."""
        if crlf_shebang(head):
            return "CRLF line endings"
        for name, program in interpreters(head, env_path):
            if program is None or not self.check(program):
                return f"interpreter {shown(name)} not found"
            if program not in self.executable:
                self.executable[program] = os.access(program, os.X_OK)
            if not self.executable[program]:
                return f"interpreter {shown(program)} not executable"
        return None


def crlf_shebang(head: bytes) -> bool:
    """Whether a script's ``#!`` line ends in a carriage return: the kernel then looks for an
    interpreter whose name ends in one, and finds none."""
    return head.startswith(b"#!") and head.split(b"\n", 1)[0].endswith(b"\r")


def shebang(head: bytes) -> list[str]:
    """The words of a script's ``#!`` line (str, surrogate-escaped), or [] if it has none."""
    if not head.startswith(b"#!"):
        return []
    # Words are split at blanks only: a carriage return stays in them, since the kernel
    # looks for "/bin/sh\r" too, and so must the check.
    line = head[2:].split(b"\n", 1)[0].replace(b"\t", b" ")
    return [os.fsdecode(word) for word in line.split(b" ") if word]


def interpreters(head: bytes, env_path: str | None) -> list[tuple[str, str | None]]:
    """The programs a script's shebang makes the kernel run, as [(name, path)]: the
    interpreter, and for ``/usr/bin/env [OPTIONS] [NAME=VALUE...] NAME`` the program NAME
    resolves to in ``env_path`` (path None when it resolves to nothing)."""
    from orchestrator.files import find_in_path

    words = shebang(head)
    if not words or not words[0].startswith("/"):
        return []
    found: list[tuple[str, str | None]] = [(words[0], words[0])]
    if os.path.basename(words[0]) == "env" and len(words) > 1:
        program = env_program(words[1:])
        if program:
            found.append((program, program if "/" in program
                          else find_in_path(program, env_path)))
    return found


def env_program(words: list[str]) -> str | None:

    """The program ``env`` runs, from its arguments (options, assignments, ``-S STRING``)."""
    for position, word in enumerate(words):
        if word == "-S" or word == "--split-string":
            return env_program(words[position + 1:])
        if word.startswith("-S") and len(word) > 2:
            return env_program([word[2:]] + words[position + 1:])
        if word.startswith("-") or "=" in word:
            continue
        return word
    return None
