"""Phase directories of an event -> their entries in byte-wise order, each run or skipped.

The rules are run-parts' (design.md section 1): no recursion, ``LC_ALL=C`` order, silent skips
for editor and package-manager leftovers and ``.hookignore`` matches, warnings for files that
look like hooks but cannot run.
"""

from __future__ import annotations

import errno
import os
import stat
from collections import namedtuple

from orchestrator import constants as c
from orchestrator.errors import ConfigError, fault_text
from orchestrator.files import NotRegularFile, is_null_device, read_settings
from orchestrator.text import display_name

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    import pathspec

    from orchestrator.accounts import Identity



PhaseDir = namedtuple("PhaseDir", "phase dirname")
PhaseDir.__doc__ = """A phase directory: the phase it holds (``pre``, ``post``, ...) and its
name (``pre-backup.d``)."""


class Entry(namedtuple("Entry", "phase_dir name path runs reason warn fails origin overrides",
                       defaults=(None, False, None, None, ()))):
    """One name in a phase directory. ``warn`` marks a skip that is warned about on every run.
    ``fails`` says why a hook that is meant to run cannot start (not executable, a broken
    symlink, a missing interpreter): it is a task ``failed``, never a skip (design.md 10).
    ``origin`` is the hooks directory it comes from; ``overrides`` the paths of the files of
    that name in earlier hooks directories that it replaces or masks (design.md 12)."""

    __slots__ = ()

    @property
    def key(self) -> str:
        """The name the config file uses for it: ``pre-backup.d/10-x``."""
        return f"{self.phase_dir.dirname}/{self.name}"


def phase_dirs(event: str) -> list[PhaseDir]:
    """The phases of ``event`` in the order a run visits them (cleanups are not a directory)."""
    return [PhaseDir(c.PHASE_PRE, f"pre-{event}.d"), PhaseDir(c.PHASE_POST, f"post-{event}.d"),
            PhaseDir(c.PHASE_ON_ERROR, "on-error.d"), PhaseDir(c.PHASE_ON_SUCCESS, "on-success.d"),
            PhaseDir(c.PHASE_FINALLY, "finally.d")]


def phase_dir_named(dirname: str) -> tuple[PhaseDir, str | None] | None:
    """The PhaseDir for a directory name given by a user (``pre-backup`` or ``pre-backup.d``)
    and the event it implies (None for the shared phases); None if it is no phase directory."""
    base = dirname[:-2] if dirname.endswith(".d") else dirname
    for phase in (c.PHASE_ON_ERROR, c.PHASE_ON_SUCCESS, c.PHASE_FINALLY):
        if base == phase:
            return PhaseDir(phase, f"{base}.d"), None
    for phase in (c.PHASE_PRE, c.PHASE_POST):
        prefix = f"{phase}-"
        if base.startswith(prefix) and c.is_event(base[len(prefix):]):
            return PhaseDir(phase, f"{base}.d"), base[len(prefix):]
    return None


def events_in(hooks_dirs: str | Iterable[str]) -> list[str]:
    """The events the hooks directories ``hooks_dirs`` (a list, or one path) have a pre- or
    post- directory for, sorted."""
    names: list[str] = []
    for hooks_dir in [hooks_dirs] if isinstance(hooks_dirs, str) else hooks_dirs:
        try:
            names += os.listdir(hooks_dir)
        except OSError:
            pass
    found: set[str] = set()
    for name in names:
        for prefix in ("pre-", "post-"):
            event = name[len(prefix):-2] if name.startswith(prefix) and name.endswith(".d") \
                else None
            if event and c.is_event(event):
                found.add(event)
    return sorted(found)


def events_hint(hooks_dirs: str | Iterable[str]) -> str:
    """`` (events here: backup, prune)``, or `` (no pre- or post- directory here)``."""
    events = events_in(hooks_dirs)
    if not events:
        return " (no pre- or post- directory here)"
    return f" (events here: {', '.join(events)})"


class IgnoreRules:
    """``.hookignore`` patterns (gitignore syntax) relative to the hooks directory. A line
    pathspec cannot read is a ConfigError (78) naming file and line."""

    def __init__(self, hooks_dir: str) -> None:
        self.path = os.path.join(hooks_dir, c.IGNORE_NAME)
        self.spec: pathspec.GitIgnoreSpec | None = None
        try:
            text = read_settings(self.path).decode("utf-8", "surrogateescape")
            lines = text.removeprefix(c.BOM).split("\n")
        except (FileNotFoundError, NotADirectoryError):
            return
        except NotRegularFile:
            # Its patterns cannot be read, and running the hooks it may hide is worse than
            # not running: refused as a bad line is (78); --no-hooks does not read it.
            raise ConfigError(f"{self.path}: not a regular file (a FIFO, socket, device or "
                              "directory; fix: make it a regular file, or move it away)"
                              ) from None
        except OSError as error:
            raise ConfigError(f"{self.path}: cannot read: {error.strerror}") from None
        try:
            self.spec = compiled(lines)
        except PatternError:
            raise ConfigError(self.bad_line(lines)) from None

    def bad_line(self, lines: list[str]) -> str:
        """The error line for the first line of ``lines`` that pathspec refuses."""
        for number, line in enumerate(lines, 1):
            try:
                compiled([line])
            except PatternError:
                return f"{self.path}:{number}: bad pattern {line!r} (gitignore syntax)"
        return f"{self.path}: bad patterns (gitignore syntax)"

    def matches(self, relative: str) -> bool:
        return self.spec is not None and self.spec.match_file(relative)


class PatternError(Exception):
    """A .hookignore line pathspec cannot read."""


def compiled(lines: list[str]) -> pathspec.GitIgnoreSpec:
    """The GitIgnoreSpec of ``lines``; PatternError for a line pathspec refuses, or whose
    regular expression ``re`` refuses (``[z-a]``: re.error is no ValueError). What ``re``
    warns of (a possible nested set) is no line of hookrun's stderr."""
    import re
    import warnings

    import pathspec  # only trees that have a .hookignore pay for it

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return pathspec.GitIgnoreSpec.from_lines(lines)
    except (ValueError, re.error) as error:
        raise PatternError(str(error)) from None


def silent_skip_reason(name: str) -> str | None:
    """Why run-parts would pass over ``name`` without a word, or None."""
    if name.startswith("."):
        return "hidden file"
    if name.endswith("~"):
        return "editor backup"
    if len(name) > 1 and name.startswith("#") and name.endswith("#"):
        return "editor autosave"
    for suffix in c.SKIP_SUFFIXES:
        if name.endswith(suffix):
            return f"{suffix} file"
    return None


def classify(path: str) -> tuple[str | None, str | None]:
    """(warning, start problem) of the entry at ``path``, from one lstat (and a stat for a
    symbolic link): ("masked", None) for a link that resolves to /dev/null, however it is
    spelled; a warning for a directory, fifo, socket or device (not a hook); else the reason
    a file meant to run cannot start (``not executable``, ``broken symlink``), or None when
    it can. Whether the running user may execute it is the kernel's answer (access(2)), as
    run-parts asks it."""
    try:
        info = os.lstat(path)
        if stat.S_ISLNK(info.st_mode):
            info = os.stat(path)
            if is_null_device(info):
                return "masked", None
    except FileNotFoundError:
        return None, "broken symlink" if os.path.islink(path) else "vanished"
    except OSError as error:
        return None, f"cannot stat: {error.strerror}"
    if stat.S_ISDIR(info.st_mode):
        return "directory (no recursion)", None
    if not stat.S_ISREG(info.st_mode):
        return "not a regular file (fifo, socket or device)", None
    return None, exec_problem(path)


def exec_problem(path: str, identity: Identity | None = None, head: bytes = b"",
                 programs: Sequence[str] = ()) -> str | None:
    """Why ``path`` may not be executed, or None when it may: the kernel's answer,
    access(2). For the running user (``identity`` None), as run-parts asks it: ``not
    executable``. For ``identity`` (a hook's user=, who runs it only later), asked as that
    user (accounts.may_access), so ACLs, links, the directories on the way and noexec
    mounts count: the file must be executable (``not executable by user NAME``), readable
    too when it is a script (``head``, its first bytes, not an ELF header: its interpreter,
    or /bin/sh without ``#!``, reads it; ``not readable by user NAME``), and so each of
    ``programs`` (its ``#!`` interpreters; ``interpreter PATH not executable by user
    NAME``)."""
    if identity is None:
        return None if os.access(path, os.X_OK) else "not executable"
    from orchestrator.accounts import may_access
    from orchestrator.plan.settings import read_head

    own = run_checks(path, head)
    checks = own + [check for program in programs
                    for check in run_checks(program, read_head(program))]
    try:
        refused = may_access(identity, checks)
    except OSError as error:
        return f"not executable by user {identity.name} ({error})"
    if refused is None:
        return None
    refused_path, mode = checks[refused]
    what = "readable" if mode == os.R_OK else "executable"
    if refused < len(own):
        return f"not {what} by user {identity.name}"
    return f"interpreter {display_name(refused_path)} not {what} by user {identity.name}"


def run_checks(path: str, head: bytes) -> list[tuple[str, int]]:
    """What the user running ``path`` (first bytes ``head``) must be allowed: to execute it,
    and to read it when it is a script, which what runs it reads."""
    script = not head.startswith(b"\x7fELF")
    return [(path, os.X_OK)] + ([(path, os.R_OK)] if script else [])


def discover(hooks_dirs: str | Sequence[str], phase_dir: PhaseDir,
             ignores: IgnoreRules | Mapping[str, IgnoreRules]) -> list[Entry]:
    """The entries of ``phase_dir`` in the layered ``hooks_dirs`` (earliest lowest; or one
    path), merged by name in byte-wise order; [] if none has the directory. A file in a later
    directory replaces the file of that name in an earlier one; a later symbolic link to
    /dev/null masks it, and a phase directory that is such a link masks the whole phase
    directory of every earlier hooks directory (each of its files is listed as masked by
    it). ``ignores`` maps each hooks directory to its IgnoreRules (or is the IgnoreRules of
    a single one): each ``.hookignore`` hides names of its own directory only, and a hidden
    name replaces nothing: it is listed, after the earlier file of its name, which stays."""
    layers = [hooks_dirs] if isinstance(hooks_dirs, str) else hooks_dirs
    rules = {layers[0]: ignores} if isinstance(ignores, IgnoreRules) else ignores
    chosen: dict[str, Entry] = {}
    hidden: list[Entry] = []  # names hidden in a later directory while an earlier one runs
    for hooks_dir in layers:
        directory = os.path.join(hooks_dir, phase_dir.dirname)
        try:
            names = os.listdir(directory)
        except OSError as error:
            # Anything else than a mask in a phase directory's place (a file, a link loop,
            # a directory that cannot be read) is phase_dir_troubles' warning: that layer
            # holds no hooks. A fault that leaves the directory looking sound is no answer.
            kind = phase_dir_kind(directory)
            if kind == MASKED:
                chosen = {name: masked_by_dir(entry, directory, hooks_dir)
                          for name, entry in chosen.items()}
            elif kind is None and not isinstance(error, (FileNotFoundError,
                                                         NotADirectoryError)):
                raise
            continue
        for name in names:
            earlier = chosen.get(name)
            entry = judge_entry(phase_dir, name, os.path.join(directory, name), rules[hooks_dir],
                                hooks_dir)
            if earlier is not None and not entry.runs and not entry.warn and \
                    not entry.reason.startswith("masked"):
                hidden.append(entry)  # it takes no part: the earlier file stays
                continue
            if earlier is not None:
                replaced = earlier.overrides + (earlier.path,)
                if entry.reason == "masked":
                    entry = entry._replace(reason=f"masked by {entry.path}")
                entry = entry._replace(overrides=replaced)
            chosen[name] = entry
    found = [(os.fsencode(name), 0, entry) for name, entry in chosen.items()]
    found += [(os.fsencode(entry.name), 1 + n, entry) for n, entry in enumerate(hidden)]
    return [entry for _name, _n, entry in sorted(found, key=lambda item: item[:2])]


def masked_by_dir(entry: Entry, mask: str, origin: str) -> Entry:
    """``entry`` of an earlier hooks directory under ``mask``, a later phase directory that
    is a link to /dev/null (of the hooks directory ``origin``). A name passed over in silence
    stays as it was: the mask changes nothing for it."""
    if not (entry.runs or entry.warn or entry.reason.startswith("masked")):
        return entry
    return Entry(entry.phase_dir, entry.name, mask, runs=False, reason=f"masked by {mask}",
                 origin=origin, overrides=entry.overrides + (entry.path,))


# phase_dir_kind() of a phase directory that is a link to /dev/null, and of one that the
# user running hookrun may not read (the fix differs: it is a directory already).
MASKED = "masked"
UNREADABLE = "a directory that cannot be read (Permission denied)"


def phase_dir_kind(path: str) -> str | None:
    """What stands where a phase directory is looked for, when it is no directory hookrun can
    read: MASKED for a symbolic link to /dev/null (however it is spelled), else what it is
    (``a regular file, not a directory``, ``a symbolic link loop, not a directory``, ``a
    directory that cannot be read (Permission denied)``...); None for a directory, a link to
    one, or nothing."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as error:
        return f"a path that cannot be looked at ({fault_text(error)})"
    if stat.S_ISLNK(info.st_mode):
        try:
            info = os.stat(path)
        except FileNotFoundError:
            return "a broken symlink, not a directory"
        except OSError as error:
            if error.errno == errno.ELOOP:
                return "a symbolic link loop, not a directory"
            return f"a symbolic link that cannot be followed ({fault_text(error)})"
        if is_null_device(info):
            return MASKED
    if stat.S_ISDIR(info.st_mode):
        if os.access(path, os.R_OK | os.X_OK):
            return None
        return UNREADABLE
    if stat.S_ISREG(info.st_mode):
        return "a regular file, not a directory"
    return "a fifo, socket or device, not a directory"


def phase_dir_troubles(hooks_dirs: Iterable[str], phase_dir: PhaseDir
                       ) -> list[tuple[str, str, str]]:
    """[(path, what, fix)] for each of ``hooks_dirs`` where the name of ``phase_dir`` is
    taken by something that is neither a directory nor a mask (phase_dir_kind): that
    hooks directory silently adds no hook to the phase, which is surely not what was
    meant. A warning in run and list, a problem in check (as a near-miss directory)."""
    found = []
    for position, hooks_dir in enumerate(hooks_dirs):
        path = os.path.join(hooks_dir, phase_dir.dirname)
        kind = phase_dir_kind(path)
        if kind is None or kind == MASKED:
            continue
        fix = ("let the user running hookrun read it, or remove it" if kind == UNREADABLE
               else "remove it, or make it a directory")
        if position:
            fix += (f"; to switch off {phase_dir.dirname} of the earlier hooks directories, "
                    f"make it a link to /dev/null: ln -sfn /dev/null {display_name(path)}")
        found.append((path, f"{kind}, so no hook in it runs", fix))
    return found


def phase_dir_warnings(hooks_dirs: Iterable[str], phase_dir: PhaseDir) -> list[str]:
    """Warning lines for phase_dir_troubles()."""
    return [f"{display_name(path)} is {what} (fix: {fix})"
            for path, what, fix in phase_dir_troubles(hooks_dirs, phase_dir)]


def judge_entry(phase_dir: PhaseDir, name: str, path: str, ignore: IgnoreRules,
                origin: str | None = None) -> Entry:
    """The Entry of one name in a phase directory (of the hooks directory ``origin``),
    before layering."""
    reason = silent_skip_reason(name)
    if reason is None and ignore.matches(f"{phase_dir.dirname}/{name}"):
        reason = f"matched by {c.IGNORE_NAME}"
    if reason is not None:
        return Entry(phase_dir, name, path, runs=False, reason=reason, origin=origin)
    reason, problem = classify(path)
    if reason == "masked":  # a link to /dev/null, as systemd masks a unit
        return Entry(phase_dir, name, path, runs=False, reason=reason, origin=origin)
    if reason is not None:
        return Entry(phase_dir, name, path, runs=False, reason=reason, warn=True, origin=origin)
    return Entry(phase_dir, name, path, runs=True, reason=problem, fails=problem, origin=origin)


def hidden_by_ignore(phase_dir: PhaseDir, entries: Sequence[Entry]) -> str | None:
    """A warning when ``.hookignore`` hides every file of a phase directory that has files:
    a pattern such as ``*.*`` that switches a whole phase off is surely a mistake."""
    ignored = [e for e in entries if not e.runs and e.reason == f"matched by {c.IGNORE_NAME}"]
    if ignored and not any(e.runs or e.warn for e in entries):
        return (f"{phase_dir.dirname}: {c.IGNORE_NAME} hides every file ({len(ignored)}): "
                "none of them runs")
    return None


# Phase directory names that are not per event.
SHARED_DIRS = tuple(f"{phase}.d" for phase in (c.PHASE_ON_ERROR, c.PHASE_ON_SUCCESS,
                                              c.PHASE_FINALLY))


def meant_phase_dir(name: str, known_events: Iterable[str]) -> str | None:
    """The phase directory a directory called ``name`` was likely meant to be (``on_error.d``,
    ``pre_backup.d``, ``prebackup.d``, ``pre-backup``, ``Post-Backup.d``), or None when it is
    one already or resembles none. A ``-`` is only guessed in before a known event, so that
    a ``postgres/`` of helper files is not taken for ``post-gres.d``."""
    guess = name.lower().replace("_", "-")
    if not guess.endswith(".d"):
        guess += ".d"
    dashed = False
    for kind in ("pre", "post", "on"):
        if guess.startswith(kind) and not guess.startswith(f"{kind}-"):
            guess, dashed = f"{kind}-{guess[len(kind):]}", True
    if guess == name:
        return None
    if guess in SHARED_DIRS:
        return guess
    for phase in (c.PHASE_PRE, c.PHASE_POST):
        event = guess[len(phase) + 1:-2]
        if guess.startswith(f"{phase}-") and c.is_event(event) and \
                (event in known_events or not dashed):
            return guess
    return None


def near_miss_dirs(hooks_dir: str, known_events: Iterable[str] = (c.DEFAULT_EVENT,)
                   ) -> list[tuple[str, str, str]]:
    """[(path, what, meant)] for each directory in ``hooks_dir`` that is no phase directory
    but looks like one (``known_events`` as for meant_phase_dir): its hooks never run."""
    try:
        names = sorted(os.listdir(hooks_dir), key=os.fsencode)
    except OSError:
        return []
    found = []
    for name in names:
        meant = meant_phase_dir(name, known_events)
        path = os.path.join(hooks_dir, name)
        if meant and os.path.isdir(path):
            found.append((path, "not a phase directory, so its hooks never run", meant))
    return found


def near_misses(hooks_dir: str, known_events: Iterable[str] = (c.DEFAULT_EVENT,)) -> list[str]:

    """Warning lines for near_miss_dirs() (design.md 10)."""
    return [f"{path}/ is {what}: did you mean {meant}/? (rename it)"
            for path, what, meant in near_miss_dirs(hooks_dir, known_events)]
