"""Which paths hookrun may trust (design.md sections 5 and 8).

A path is only as safe as every entry the kernel passes through to reach it: each directory
above it and each symbolic link on the way. hookrun trusts an entry when it is owned by root or
by the user running hookrun and no one else can change it: not writable by group or others,
unless it is a directory with the sticky bit (like /tmp), where others may create names but not
replace ours. The entry itself, the thing hookrun executes, reads or keeps its state in, is held
to a stricter rule of its own (``HOOK_RULE``, ``STATE_RULE``), as OpenSSH's StrictModes does.
"""

import errno
import os
import stat

WRITABLE_BY_OTHERS = stat.S_IWGRP | stat.S_IWOTH
MAX_LINKS = 40  # symbolic links followed in one path, as Linux's own limit


def chain(path, lstat=os.lstat):
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


def shown(path):
    """A path as a message shows it: undecodable bytes and control characters escaped."""
    from orchestrator.printer import display_name

    return display_name(path)


def user(uid):
    """``uid 999 (mallory)``, or ``root``."""
    if uid == 0:
        return "root"
    import pwd

    try:
        return f"uid {uid} ({pwd.getpwuid(uid).pw_name})"
    except KeyError:
        return f"uid {uid}"


def owner_problem(entry, info, owners):
    """Why ``entry`` has the wrong owner (``owners`` are those allowed; the last of them runs
    hookrun), or None."""
    if info.st_uid in owners:
        return None
    name = shown(entry)
    runner = user(owners[-1])
    allowed = runner if set(owners) == {owners[-1]} else f"root or {runner}"
    login = runner if owners[-1] == 0 else str(owners[-1])
    return (f"{name} is owned by {user(info.st_uid)}, not {allowed}, who runs hookrun "
            f"(fix: chown {login} {name}, or use a path of your own)")


def writable_problem(entry, info):
    name = shown(entry)
    return f"{name} is writable by group or others (fix: chmod go-w {name})"


def passage_problem(entry, info, owners):
    """Why ``entry``, passed through on the way to another path, is unsafe; or None. A sticky
    directory may be writable by others; a symbolic link's own mode means nothing."""
    problem = owner_problem(entry, info, owners)
    if problem or stat.S_ISLNK(info.st_mode):
        return problem
    sticky = stat.S_ISDIR(info.st_mode) and info.st_mode & stat.S_ISVTX
    if info.st_mode & WRITABLE_BY_OTHERS and not sticky:
        return writable_problem(entry, info)
    return None


def hook_rule(entry, info, owners):
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


def state_rule(entry, info, owners):
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

    def __init__(self, euid=None):
        self.euid = os.geteuid() if euid is None else euid
        self.owners = (0, self.euid)
        self.problems = []
        self.problem_paths = []  # the path each of ``problems`` is about
        self.warnings = []  # the caller's lines that refuse nothing
        self.flagged = set()
        self.looked_at = {}
        self.judged = set()
        self.checked = {}
        self.executable = {}

    def lstat(self, path):
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

    def judge(self, entry, info, rule):
        """``rule``'s verdict on ``entry``, added to the problems; once per entry and rule."""
        if (entry, rule) not in self.judged:
            self.judged.add((entry, rule))
            self.add(entry, rule(entry, info, self.owners))

    def add(self, entry, problem):
        if problem and entry not in self.flagged:
            self.flagged.add(entry)
            self.problems.append(problem)
            self.problem_paths.append(entry)

    def check(self, path, rule=hook_rule):
        """Check everything the kernel passes through to reach ``path`` and, if it exists,
        the path itself by ``rule``; returns whether it exists."""
        if (path, rule) not in self.checked:
            self.checked[path, rule] = self.check_once(path, rule)
        return self.checked[path, rule]

    def check_once(self, path, rule):
        try:
            found, exists = chain(os.path.abspath(path), self.lstat)
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

    def check_here(self, path, rule):
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

    def check_interpreter(self, head, env_path):
        """Check the interpreter named by a script's first line (``head``, bytes), and for
        ``#!/usr/bin/env NAME`` also NAME as found in ``env_path``, by the trust rules;
        returns why the script cannot start (``interpreter /usr/bin/python9 not found``,
        ``CRLF line endings``), else None."""
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


def crlf_shebang(head):
    """Whether a script's ``#!`` line ends in a carriage return: the kernel then looks for an
    interpreter whose name ends in one, and finds none."""
    return head.startswith(b"#!") and head.split(b"\n", 1)[0].endswith(b"\r")


def shebang(head):
    """The words of a script's ``#!`` line (str, surrogate-escaped), or [] if it has none."""
    if not head.startswith(b"#!"):
        return []
    # Words are split at blanks only: a carriage return stays in them, since the kernel
    # looks for "/bin/sh\r" too, and so must the check.
    line = head[2:].split(b"\n", 1)[0].replace(b"\t", b" ")
    return [os.fsdecode(word) for word in line.split(b" ") if word]


def interpreters(head, env_path):
    """The programs a script's shebang makes the kernel run, as [(name, path)]: the
    interpreter, and for ``/usr/bin/env [OPTIONS] [NAME=VALUE...] NAME`` the program NAME
    resolves to in ``env_path`` (path None when it resolves to nothing)."""
    from orchestrator.process import find_in_path

    words = shebang(head)
    if not words or not words[0].startswith("/"):
        return []
    found = [(words[0], words[0])]
    if os.path.basename(words[0]) == "env" and len(words) > 1:
        program = env_program(words[1:])
        if program:
            found.append((program, program if "/" in program
                          else find_in_path(program, env_path)))
    return found


def env_program(words):
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
