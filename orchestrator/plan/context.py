"""From command-line options to what a command works with: the hooks tree, the config, the
state directory, effective options, and the plan of hooks (every check of step 1 of a run,
and those of ``hookrun check``)."""

from __future__ import annotations

import os
from collections import namedtuple

from orchestrator import constants as c
from orchestrator.errors import ConfigError, UnsafeError, UsageError
from orchestrator.plan import discovery, safety, settings, values
from orchestrator.text import display_name

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
    from typing import Any, TypeVar

    from orchestrator.accounts import Identity
    from orchestrator.cli import Arguments
    from orchestrator.plan.discovery import Entry, PhaseDir
    from orchestrator.plan.settings import Config, HookSettings, Value

    T = TypeVar("T")
    # What discovery found, phase by phase, and what a plan makes of it.
    Discovered = Sequence[tuple[PhaseDir, Sequence[Entry]]]
    Planned = list[tuple[PhaseDir, list["PlannedHook"]]]

PlannedHook = namedtuple("PlannedHook", "entry settings", defaults=(None,))
PlannedHook.__doc__ = """An entry of a phase directory with the settings it would run with
(None if skipped)."""

Plan = namedtuple("Plan", "phases problems warnings")
Plan.__doc__ = """What a command that runs hooks works from: [(PhaseDir, [PlannedHook])], the
permission problems --insecure let through, and warnings about the headers."""

# hookrun's own settings, their parsers on the command line, and their built-in defaults.
DURATION_OPTIONS = ("timeout", "kill_grace", "command_timeout", "stall_timeout")
URL_OPTIONS = ("notify_url", "metrics_push_url")
DEFAULTS = {"kill_grace": c.DEFAULT_KILL_GRACE, "command_timeout": 0.0, "stall_timeout": 0.0,
            "strict_permissions": True, "umask": -1,
            "log_task_max_bytes": c.LOG_TASK_MAX_BYTES}
# Options an empty value of which would silently be the default or the current directory.
# (An empty --log-file, --metrics-file, --notify-url or --metrics-push-url is "none".)
NOT_EMPTY = (("hooks_dir", "-d/--hooks-dir"), ("config", "-c/--config"),
             ("state_dir", "--state-dir"), ("event", "-e/--event"))


class Context:
    """Everything a subcommand needs that the command line and the config file decide.
    ``hooks_dirs`` are the layered hooks directories, earliest lowest (design.md 12);
    ``hooks_dir`` is the last of them, the admin's. ``timeout`` and ``stall`` are the
    command line's, which override every hook's; ``stall_timeout`` is the command's (the
    command line's, else the config's)."""

    __slots__ = ("hooks_dir", "hooks_dirs", "config", "event", "state_dir", "log_file", "timeout",
                 "kill_grace", "command_timeout", "strict", "metrics_file", "metrics_push_url",
                 "notify_url", "notify_command", "path", "umask", "color", "quiet", "verbose",
                 "json", "trigger", "stall", "stall_timeout", "log_task_max_bytes")

    hooks_dir: str
    hooks_dirs: list[str]
    config: Config
    event: str
    state_dir: str
    log_file: str | None
    timeout: float | None
    kill_grace: float
    command_timeout: float
    strict: bool
    metrics_file: str | None
    metrics_push_url: str | None
    notify_url: str | None
    notify_command: list[str] | None
    path: str | None
    umask: int
    color: str
    quiet: bool
    verbose: bool
    json: bool
    trigger: str
    stall: float | None
    stall_timeout: float
    log_task_max_bytes: int

    def __init__(self, **values: object) -> None:
        for name in self.__slots__:
            setattr(self, name, values.get(name))


def default_hooks_dirs() -> tuple[list[str], bool]:
    """(the hooks directories when -d is not given, whether they were named): the colon list
    in $HOOKRUN_DIR; for root /usr/lib/hookrun (what packages ship) then /etc/hookrun (the
    admin's); for others $XDG_CONFIG_HOME/hookrun. Empty parts of the list are no
    directory: one of colons alone (``$A:$B`` with both empty) is as empty as none."""
    named = [part for part in os.environ.get("HOOKRUN_DIR", "").split(":") if part]
    if named:
        return named, True
    if os.geteuid() == 0:
        return [c.ROOT_LIB_HOOKS_DIR, c.ROOT_HOOKS_DIR], False
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")
    return [os.path.join(base, "hookrun")], True


def default_hooks_dir() -> str:
    """The last of default_hooks_dirs(): the admin's directory."""
    return default_hooks_dirs()[0][-1]


def config_path_in(hooks_dirs: Sequence[str]) -> str:
    """The config file of layered ``hooks_dirs``: the last directory's that has one (its
    path in the last directory when none has)."""
    for directory in reversed(hooks_dirs):
        path = os.path.join(directory, c.CONFIG_NAME)
        if os.path.lexists(path):
            return path
    return os.path.join(hooks_dirs[-1], c.CONFIG_NAME)


def default_state_dir() -> str:
    if os.geteuid() == 0:
        return c.ROOT_STATE_DIR
    base = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
    return os.path.join(base, "hookrun")


def option(args: Arguments, name: str) -> Any:
    """The option ``name`` of ``args``; None if this subcommand has no such option (its type
    is the option's, which only the name tells)."""
    return getattr(args, name, None)


def parse_option(text: str | None, parse: Callable[[str], T], name: str) -> T | None:
    """``parse(text)`` for the command-line option ``--name``; None stays None; a bad value
    is a usage error (exit 2)."""
    if text is None:
        return None
    try:
        return parse(text)
    except ValueError as error:
        raise UsageError(f"--{name.replace('_', '-')}: {error}") from None


def command_line(args: Arguments) -> dict[str, Value]:
    """hookrun's own settings given on the command line, parsed: the first layer of
    ``settings.resolve``. An empty ``--log-file`` or ``--metrics-file`` is a value: none."""
    given: dict[str, Value] = {name: option(args, name)
                               for name in ("state_dir", "log_file", "metrics_file")}
    given.update({name: parse_option(option(args, name), values.parse_duration, name)
                  for name in DURATION_OPTIONS})
    given.update({name: parse_option(option(args, name), values.parse_url, name)
                  for name in URL_OPTIONS})
    if option(args, "insecure"):
        given["strict_permissions"] = False
    return given


def refuse_empty(args: Arguments) -> None:
    """UsageError (2) for an option given an empty value that is not a value."""
    for name, flags in NOT_EMPTY:
        value = option(args, name)
        if value == "" or isinstance(value, list) and "" in value:
            raise UsageError(f"{flags}: an empty value is not a value (leave the option out "
                             "for the default)")


def trigger_of(args: Arguments) -> str:
    """Who started this (``--trigger``): as given, else ``manual`` when stdin is a terminal
    (someone at the console), else ``scheduled`` (cron, a timer, a script)."""
    import sys

    given: str | None = option(args, "trigger")
    if given is None:
        try:
            return c.TRIGGER_MANUAL if sys.stdin.isatty() else c.TRIGGER_SCHEDULED
        except (AttributeError, ValueError):
            return c.TRIGGER_SCHEDULED
    if len(given) > c.MAX_EVENT_LENGTH or not c.is_event(given):
        raise UsageError(f"--trigger: bad name {display_name(given)!r} (up to "
                         f"{c.MAX_EVENT_LENGTH} lower-case letters, digits, '_' and '-', "
                         "such as timer or manual)")
    return given


def check_event(event: str) -> str:
    if len(event) > c.MAX_EVENT_LENGTH or not c.is_event(event):
        raise ConfigError(f"bad event name {display_name(event)!r} (use up to "
                          f"{c.MAX_EVENT_LENGTH} lower-case letters, digits, '_' and '-', "
                          "starting with a letter or digit)")
    return event


def find_hooks_dirs(args: Arguments, required: bool) -> list[str]:
    """The absolute hooks directories, earliest lowest; ConfigError (78) if they are
    ``required`` and one named with -d or $HOOKRUN_DIR (or root's /etc/hookrun) is missing.
    Of root's defaults, a missing /usr/lib/hookrun is no error: no package shipped hooks."""
    given: str | list[str] | None = option(args, "hooks_dir")
    if isinstance(given, str):
        given = [given]
    named = bool(given)
    if not given:
        given, named = default_hooks_dirs()
    # Absolute, so that every path handed to hooks still works after they change directory.
    dirs = [os.path.abspath(directory) for directory in given]
    if not named:
        dirs = [d for d in dirs[:-1] if os.path.isdir(d)] + dirs[-1:]
    if required:
        for hooks_dir in dirs:
            if not os.path.isdir(hooks_dir):
                what = "is not a directory" if os.path.lexists(hooks_dir) else "does not exist"
                raise ConfigError(f"hooks directory {display_name(hooks_dir)} {what} (use -d "
                                  "DIR or $HOOKRUN_DIR)")
    return dirs


def config_problems(hooks_dirs: Sequence[str], config_path: str) -> list[str]:
    """What makes the config file at ``config_path`` unsafe to read, by the rules of section
    5 (owner, mode, every directory and link above it, and the hooks directory holding it):
    a list of lines, empty when it is safe or does not exist."""
    if not os.path.lexists(config_path):
        return []
    checker = safety.Checker()
    holder = os.path.dirname(config_path)
    if holder in hooks_dirs and os.path.isdir(holder):
        checker.check(holder)
    checker.check(config_path, safety.settings_rule)
    return checker.problems


def unsafe_error(problems: Sequence[str]) -> UnsafeError:
    lines = [f"unsafe permissions: {problem}" for problem in safety.grouped(problems)]
    lines[-1] += " (or use --insecure)"
    return UnsafeError(lines)


def build_context(args: Arguments, event: str | None = None, need_hooks: bool = True,
                  refuse_unsafe_config: bool = True) -> Context:
    """A Context from parsed arguments; reads and checks the config file (ConfigError, 78).
    Without ``need_hooks`` (--no-hooks, history, show, recover) a missing hooks directory is
    no error: the config file is then the one named by -c, if any, and defaults apply.
    Every setting is ``settings.resolve``d: command line, config, built-in default.

    A config file that ``run`` would refuse (UnsafeError, 77) is refused before anything
    in it is used, unless --insecure is given on the command line: its own
    ``strict_permissions = no`` cannot vouch for it. Without ``refuse_unsafe_config`` (run
    and check, which check the whole tree at once and name every unsafe path) it is read,
    and the context is strict whatever it says."""
    refuse_empty(args)
    hooks_dirs = find_hooks_dirs(args, need_hooks)
    config_path: str | None = option(args, "config")
    config_file = config_path or config_path_in(hooks_dirs)
    insecure = bool(option(args, "insecure"))
    unsafe = [] if insecure else config_problems(hooks_dirs, config_file)
    if unsafe and refuse_unsafe_config:
        raise unsafe_error(unsafe)
    config = settings.load_config(config_file, required=bool(config_path))
    layers = (command_line(args), config.values)

    def setting(name: str, default: Value = None) -> Value:
        return settings.resolve(name, layers, DEFAULTS.get(name, default))

    state_dir = os.path.abspath(setting("state_dir", default_state_dir()))
    log_file = setting("log_file", os.path.join(state_dir, c.LOG_NAME))
    metrics_file = setting("metrics_file")
    return Context(
        hooks_dir=hooks_dirs[-1], hooks_dirs=hooks_dirs, config=config,
        event=check_event(event or option(args, "event") or c.DEFAULT_EVENT),
        state_dir=state_dir, log_file=os.path.abspath(log_file) if log_file else None,
        timeout=layers[0]["timeout"], kill_grace=setting("kill_grace"),
        command_timeout=setting("command_timeout"), stall=layers[0]["stall_timeout"],
        stall_timeout=setting("stall_timeout"),
        strict=bool(unsafe) or setting("strict_permissions"),
        metrics_file=os.path.abspath(metrics_file) if metrics_file else None,
        metrics_push_url=setting("metrics_push_url") or None,
        notify_url=setting("notify_url") or None, notify_command=setting("notify_command"),
        path=setting("path"), umask=setting("umask"), color=option(args, "color") or "auto",
        quiet=bool(option(args, "quiet")), verbose=bool(option(args, "verbose")),
        json=bool(option(args, "json")), trigger=trigger_of(args),
        log_task_max_bytes=setting("log_task_max_bytes"))


def discover(ctx: Context, phases: Sequence[PhaseDir]) -> list[tuple[PhaseDir, list[Entry]]]:
    """[(PhaseDir, [Entry])] for ``phases`` of the layered hooks directories."""
    ignores = {d: discovery.IgnoreRules(d) for d in ctx.hooks_dirs} if phases else {}
    return [(phase, discovery.discover(ctx.hooks_dirs, phase, ignores)) for phase in phases]


def read_heads(discovered: Discovered) -> dict[str, bytes]:
    """{path: first bytes} of every hook that would run: read once, for its shebang (the
    interpreter is checked) and its header directives."""
    return {entry.path: settings.read_head(entry.path)
            for _phase, entries in discovered for entry in entries if entry.runs}


def plan(ctx: Context, discovered: Discovered, heads: Mapping[str, bytes],
         warnings: list[str] | None = None) -> Planned:
    """[(PhaseDir, [PlannedHook])]: every header parsed and every setting merged; raises
    ConfigError (78) naming file and line at the first bad directive. Comments that look
    like directives but are not are added to ``warnings``."""
    overrides = {"timeout": ctx.timeout, "stall": ctx.stall}
    # The settings of a hook with no header directive and no [hook] section depend on its
    # phase alone: worked out once per phase, not once per hook.
    plain: dict[str, HookSettings] = {}
    result: Planned = []
    for phase_dir, entries in discovered:
        hooks = []
        for entry in entries:
            hook_settings = None
            if entry.runs:
                header, near = settings.parse_header(heads[entry.path], entry.path, phase_dir.phase)
                if warnings is not None:
                    warnings += near
                section = ctx.config.hooks.get(entry.key, {})
                if header or section:
                    hook_settings = settings.effective_settings(phase_dir.phase, header,
                                                                section, ctx.config, overrides)
                else:
                    hook_settings = plain.get(phase_dir.phase) or plain.setdefault(
                        phase_dir.phase, settings.effective_settings(
                            phase_dir.phase, header, section, ctx.config, overrides))
                identity = check_identity(hook_settings, header, section, entry,
                                          ctx.config.path)
                if identity is not None and not entry.fails:
                    problem = identity_start_problem(entry.path, heads[entry.path],
                                                     hooks_path(ctx), identity)
                    if problem:
                        entry = entry._replace(reason=problem, fails=problem)
            hooks.append(PlannedHook(entry, hook_settings))
        result.append((phase_dir, hooks))
    return result


def check_identity(hook_settings: HookSettings, header: Mapping[str, tuple[Value, int]],
                   section: Mapping[str, Value], entry: Entry, config_path: str | None
                   ) -> Identity | None:
    """The Identity a hook runs as (None: hookrun's own); ConfigError (78) naming file and
    line when its ``user=`` or ``group=`` names an account the system does not know, or
    asks a hookrun that is not root to be someone else (naming the user hookrun runs as
    is allowed, and changes nothing)."""
    if hook_settings.user is None and hook_settings.group is None:
        return None
    from orchestrator.accounts import identity_of

    try:
        return identity_of(hook_settings.user, hook_settings.group)
    except (LookupError, PermissionError) as error:
        message = str(error)
        key = "group" if "group" in message.split()[:2] or hook_settings.user is None \
            else "user"
        if key in section:
            where = f"{config_path}: [hook {display_name(entry.key)}]"
        else:
            where = f"{display_name(entry.path)}:{header[key][1]}"
        raise ConfigError(f"{where}: {key}={display_name(getattr(hook_settings, key))}: "
                          f"{message}") from None


def identity_start_problem(path: str, head: bytes, env_path: str | None,
                           identity: Identity) -> str | None:
    """Why the hook at ``path`` (first bytes ``head``) cannot start as ``identity`` (its
    user=) although hookrun itself could start it: the file, or an interpreter its ``#!``
    line names (found in ``env_path``), that the identity may not execute, or a script it
    may not read (discovery.exec_problem, the kernel's answer as that user). Without this
    the kernel refuses each attempt (126) and every retry waits for nothing (design.md 10)."""
    # An interpreter not found is mark_start_problems' finding, made before.
    programs = [program for _name, program in safety.interpreters(head, env_path)
                if program is not None]
    return discovery.exec_problem(path, identity, head, programs)


def hooks_path(ctx: Context) -> str | None:
    """The PATH hooks get: where ``#!/usr/bin/env NAME`` finds NAME."""
    return ctx.path or ctx.config.env.get("PATH") or os.environ.get("PATH")


def within(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip("/") + "/")


def trusted_commands(ctx: Context, command: Sequence[str] | None = None) -> list[tuple[str, str]]:
    """What a run executes besides the hooks and must trust as it trusts a hook: [(what,
    path)] of ``notify_command``, found as it will be run, and of the command when it is a
    file in or below a hooks directory (the unit's HOOKS_DIR/EVENT.command; a program such
    as restic elsewhere is the administrator's choice). ``command`` None (``hookrun check``,
    which knows no command): every ``*.command`` file of the hooks directories instead."""
    from orchestrator.files import find_in_path

    env_path = hooks_path(ctx)

    def found(argv0: str) -> str | None:
        # A path is returned even when nothing is there yet: the directories it would be
        # created in are judged too (check_paths, which says it is not found).
        if "/" in argv0:
            return os.path.abspath(argv0)
        return find_in_path(argv0, env_path)

    found_commands: list[tuple[str, str]] = []
    if command is None:
        for hooks_dir in ctx.hooks_dirs:
            try:
                names = sorted(os.listdir(hooks_dir))
            except OSError:
                names = []
            found_commands += [("command", os.path.join(hooks_dir, name))
                               for name in names if name.endswith(".command")]
    elif command:
        path = found(command[0])
        if path and any(within(path, d) or within(os.path.realpath(path), os.path.realpath(d))
                        for d in ctx.hooks_dirs):
            found_commands.append(("command", path))
    if ctx.notify_command:
        path = found(ctx.notify_command[0])
        if path:
            found_commands.append(("notify_command", path))
    return found_commands


def check_paths(ctx: Context, discovered: Discovered,
                commands: Iterable[tuple[str, str]] = ()) -> safety.Checker:
    """A safety.Checker that has checked everything whose permissions guard what runs:
    HOOKS_DIR, the config, .hookignore, each phase directory and each hook that would run
    (none for --no-hooks), the ``commands`` (trusted_commands) and their interpreters, and
    every directory and link above them. The hooks' interpreters are checked by
    mark_start_problems(), with the same Checker; its ``warnings`` name a command whose
    interpreter is missing."""
    checker = safety.Checker()
    for hooks_dir in ctx.hooks_dirs:
        if os.path.isdir(hooks_dir):
            checker.check(hooks_dir)
    if ctx.config.path:
        checker.check(ctx.config.path, safety.settings_rule)
    for hooks_dir in ctx.hooks_dirs if discovered else ():
        checker.check(os.path.join(hooks_dir, c.IGNORE_NAME), safety.settings_rule)
        for phase, _entries in discovered:
            checker.check(os.path.join(hooks_dir, phase.dirname), safety.phase_dir_rule)
    for _phase, entries in discovered:
        for entry in entries:
            # A hook that cannot start is never executed: its file guards nothing.
            if entry.runs and not entry.fails:
                checker.check(entry.path)
    for what, path in commands:
        known = len(checker.problems)
        exists = checker.check(path)
        if not os.path.exists(path):
            # Judged all the same (above): no one else may put it there before it runs.
            checker.warnings.append(f"{what} {display_name(path)}: not found")
        # Its first line is read only once no one else can swap it, and only from a
        # regular file: opening a FIFO would wait for a writer.
        elif exists and len(checker.problems) == known and os.path.isfile(path):
            problem = checker.check_interpreter(settings.read_head(path), hooks_path(ctx))
            if problem:
                checker.warnings.append(f"{what} {display_name(path)}: {problem}")
    return checker


def mark_start_problems(ctx: Context, discovered: Discovered, heads: Mapping[str, bytes],
                        checker: safety.Checker) -> list[tuple[PhaseDir, list[Entry]]]:
    """``discovered`` with each hook whose interpreter is missing, not executable or named
    with a carriage return marked as one that cannot start (Entry.fails); the interpreters
    that exist are checked by ``checker``'s trust rules."""
    env_path = hooks_path(ctx)
    marked = []
    for phase, entries in discovered:
        found: list[Entry] = []
        for entry in entries:
            if entry.runs and not entry.fails:
                problem = checker.check_interpreter(heads[entry.path], env_path)
                if problem:
                    entry = entry._replace(reason=problem, fails=problem)
            found.append(entry)
        marked.append((phase, found))
    return marked


def refuse_unsafe(ctx: Context, found: list[str]) -> list[str]:
    """Refuse (UnsafeError, 77) an unsafe tree when strict, naming every unsafe path; else
    return the problems, to be warned about."""
    if found and ctx.strict:
        raise unsafe_error(found)
    return found


def known_events(ctx: Context, everything: bool = False) -> set[str]:
    """The events this tree and config know (design.md 10): ``backup``, those with a pre- or
    post- directory, those the config's ``events`` key lists, and those a hook's
    ``events=`` (header or [hook] section) names. Without ``everything`` it stops reading
    as soon as ctx.event is known, so that a run of a known event reads no header twice."""
    found = {c.DEFAULT_EVENT, *discovery.events_in(ctx.hooks_dirs),
             *(ctx.config.get("events") or ())}
    for section in ctx.config.hooks.values():
        found.update(section.get("events") or ())
    if ctx.event in found and not everything:
        return found
    for dirname, hooks_dir in ((d, h) for d in discovery.SHARED_DIRS for h in ctx.hooks_dirs):
        phase = dirname[:-2]
        directory = os.path.join(hooks_dir, dirname)
        try:
            names = os.listdir(directory)
        except OSError:
            continue
        for name in names:
            head = settings.read_head(os.path.join(directory, name))
            try:
                header, _near = settings.parse_header(head, name, phase)
            except ConfigError:
                continue  # reported where the hook is planned or checked
            found.update(header.get("events", ((), 0))[0])
    return found


def require_known_event(ctx: Context) -> set[str]:
    """Refuse (ConfigError, 78) an event nothing in the tree or config knows: ``-e bakup``
    would otherwise run the command without any of its pre- hooks. Returns the events it
    found known."""
    found = known_events(ctx)
    if ctx.event not in found:
        raise ConfigError(f"unknown event {display_name(ctx.event)!r} in {shown_dirs(ctx)} "
                          f"(known events: {', '.join(sorted(found))}; an event is known by "
                          "its pre-EVENT.d or post-EVENT.d directory, a hook's events=, or "
                          "the config's events key)")
    return found


def tree_warnings(ctx: Context, discovered: Discovered, known: Collection[str]) -> list[str]:
    """What a run and ``list`` warn about in the tree before anything runs: directories that
    look like phase directories but are not, a ``.hookignore`` that hides a whole phase, a
    ``[hook]`` section that names no file. ``known``: the events the tree knows."""
    found = [line for d in ctx.hooks_dirs for line in discovery.near_misses(d, known)]
    found += [line for phase, _entries in discovered
              for line in discovery.phase_dir_warnings(ctx.hooks_dirs, phase)]
    found += [warning for phase, entries in discovered
              if (warning := discovery.hidden_by_ignore(phase, entries))]
    found += unmatched_sections(ctx) + quoted_env_values(ctx)
    return found


def unmatched_sections(ctx: Context) -> list[str]:
    """A ``[hook PHASE-DIR.d/NAME]`` whose file does not exist: its settings silently apply
    to nothing (a typo such as ``10-okk``)."""
    return [f"{ctx.config.path}: [hook {display_name(key)}] names no file in {shown_dirs(ctx)}"
            for key in ctx.config.hooks
            if not any(os.path.lexists(os.path.join(d, key)) for d in ctx.hooks_dirs)]


def quoted_env_values(ctx: Context) -> list[str]:
    """An ``[env]`` value in quotes (``KEY = "a b"``): the quotes are part of it, and the
    usual victim is a password that then never matches. The value itself is not shown."""
    return [f"{ctx.config.path}: [env] {display_name(key)}: the value is in quotes, and "
            "they are kept as part of it (values are taken literally: remove them)"
            for key, value in ctx.config.env.items()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'"]


def shown_dirs(ctx: Context) -> str:
    """The hooks directories as a message names them: ``/usr/lib/hookrun:/etc/hookrun``."""
    return display_name(":".join(ctx.hooks_dirs))


def load_plan(ctx: Context, phases: Sequence[PhaseDir], check: bool = True,
              commands: Iterable[tuple[str, str]] = ()) -> Plan:
    """Discover ``phases``, check that what would run (with ``commands``, trusted_commands)
    is safe (step 1 of a run; not for ``list``, without ``check``), mark the hooks that
    cannot start, and parse every header: a Plan. An unknown event is refused (78) before
    anything else."""
    known: Collection[str] = require_known_event(ctx) if phases else ()
    discovered = discover(ctx, phases)
    heads = read_heads(discovered)
    checker = check_paths(ctx, discovered, commands) if check else safety.Checker()
    discovered = mark_start_problems(ctx, discovered, heads, checker)
    problems = refuse_unsafe(ctx, checker.problems) if check else []
    warnings = tree_warnings(ctx, discovered, known) if phases else []
    return Plan(plan(ctx, discovered, heads, warnings), problems, warnings)


def crlf_warnings(discovered: Discovered, heads: Mapping[str, bytes]) -> list[str]:
    """A hook that can start (its ``#!`` line is clean) but has CRLF line endings further
    on: a shell reads each carriage return as part of a word."""
    return [f"{display_name(entry.key)}: CRLF line endings (fix: dos2unix, or sed -i "
            "'s/\\r$//')"
            for _phase, entries in discovered for entry in entries
            if entry.runs and not entry.fails
            and b"\r\n" in settings.script_text(heads[entry.path])]


def missing_shebangs(discovered: Discovered, heads: Mapping[str, bytes]) -> list[str]:
    """A hook that can start without a ``#!`` line: /bin/sh runs it. One that cannot start
    (a broken link, not executable) is a problem of its own, run by nothing."""
    return [f"{display_name(entry.key)}: no shebang line, run by /bin/sh"
            for _phase, entries in discovered for entry in entries
            if entry.runs and not entry.fails
            and heads[entry.path][:2] not in (b"#!", b"\x7fE")]


def numeric_prefix(name: str) -> str:
    """The ASCII digits a name starts with ("" if none)."""
    digits = 0
    while digits < len(name) and name[digits] in "0123456789":
        digits += 1
    return name[:digits]


def uneven_prefixes(discovered: Discovered) -> list[str]:
    """Warnings for phases whose numeric prefixes have different widths (100-x sorts before
    20-x)."""
    warnings = []
    for phase, entries in discovered:
        widths: dict[int, str] = {}
        for entry in entries:
            prefix = numeric_prefix(entry.name)
            if prefix and entry.runs:
                widths.setdefault(len(prefix), entry.name)
        if len(widths) > 1:
            names = ", ".join(display_name(n) for n in widths.values())
            warnings.append(f"{phase.dirname}: numeric prefixes of different widths ({names}) "
                            "sort byte-wise, not numerically: pad them to one width")
    return warnings


Problem = namedtuple("Problem", "path what fix")
Problem.__doc__ = """Something ``hookrun check`` fails: the path it is about, what is wrong, and
what to do about it ("" when the message says it)."""

START_FIXES = {
    "not executable": "chmod +x {path}, or rename it {path}.disabled to switch it off",
    "broken symlink": "point the link at an existing file, or remove it",
    "CRLF line endings": "dos2unix {path}, or sed -i 's/\\r$//' {path}",
}


def start_fix(entry: Entry, hooks_dirs: Sequence[str] = ()) -> str:
    """What to do about a hook that cannot start. One of an earlier hooks directory than
    the last of ``hooks_dirs`` (a package's, which the package manager owns) can also be
    left as it is and replaced or masked by a file of its name in the last (design.md 12)."""
    fix = own_start_fix(entry)
    if hooks_dirs and entry.origin and entry.origin != hooks_dirs[-1]:
        mine = display_name(os.path.join(hooks_dirs[-1], entry.key))
        fix += (f"; or leave it as it is and put a replacement of that name at {mine}, or "
                f"mask it: ln -s /dev/null {mine}")
    return fix


def own_start_fix(entry: Entry) -> str:
    """What to do about a hook that cannot start, to the file itself."""
    fix = START_FIXES.get(entry.fails)
    if fix:
        return fix.format(path=display_name(entry.path))
    if " by user " in entry.fails:  # discovery.exec_problem's answer for a user=
        if entry.fails.startswith("interpreter "):
            return ("let that user execute the interpreter (chmod o+x, or an ACL) and search "
                    "every directory on the way; or change user=")
        return (f"let that user read and execute {display_name(entry.path)} (chgrp a group "
                "of the user and chmod g+rx, or chmod o+rx, or an ACL) and search every "
                "directory on the way; or change user=")
    if entry.fails.startswith("interpreter "):
        return "install the interpreter, or correct the #! line"
    return "make it a file that can run, or rename it *.disabled to switch it off"


def check_phases(ctx: Context, all_events: bool) -> list[PhaseDir]:
    """The phase directories ``check`` looks at: the event's, or with ``all_events`` those
    of every event the tree knows (each shared directory once)."""
    events = sorted(known_events(ctx, everything=True)) if all_events else [ctx.event]
    phases: dict[str, PhaseDir] = {}
    for event in events:
        for phase in discovery.phase_dirs(event):
            phases.setdefault(phase.dirname, phase)
    return list(phases.values())


def check_tree(ctx: Context, all_events: bool = False
               ) -> tuple[list[str], list[Problem], list[Problem], list[str]]:
    """What ``hookrun check`` finds: (errors, permission problems as Problems, problems as
    Problems, warnings). ``errors`` are configuration errors (78): every header is parsed,
    not only up to the first bad one. ``problems`` are hooks that cannot start and
    directories whose hooks never run (exit 1)."""
    if not all_events:
        require_known_event(ctx)
    discovered = discover(ctx, check_phases(ctx, all_events))
    heads = read_heads(discovered)
    commands = trusted_commands(ctx)
    checker = check_paths(ctx, discovered, commands)
    discovered = mark_start_problems(ctx, discovered, heads, checker)
    errors: list[str] = []
    near: list[str] = []
    planned: list[tuple[PhaseDir, list[Entry]]] = []
    for phase, entries in discovered:
        found: list[Entry] = []
        for entry in entries:
            try:
                # The plan marks a hook its user= may not execute as one that cannot start.
                entry = plan(ctx, [(phase, [entry])], heads, near)[0][1][0].entry
            except ConfigError as error:
                errors.append(str(error))
            found.append(entry)
        planned.append((phase, found))
    discovered = planned
    fixes = safety.shared_fixes(checker.problems)
    unsafe = [Problem(display_name(path), safety.bare(text), fixes[text.owner])
              if isinstance(text, safety.ForeignOwner) and text.owner in fixes
              else Problem(display_name(path), *fix_of(text))
              for path, text in zip(checker.problem_paths, checker.problems)]
    problems = [Problem(display_name(e.path), e.fails, start_fix(e, ctx.hooks_dirs))
                for _p, entries in discovered for e in entries if e.fails]
    known = known_events(ctx, True)
    problems += [Problem(display_name(path), what, f"rename it {meant}/")
                 for hooks_dir in ctx.hooks_dirs
                 for path, what, meant in discovery.near_miss_dirs(hooks_dir, known)]
    problems += [Problem(display_name(path), what, fix)
                 for phase, _entries in discovered
                 for path, what, fix in discovery.phase_dir_troubles(ctx.hooks_dirs, phase)]
    warnings = [f"{display_name(e.key)}: {e.reason}"
                for _p, entries in discovered for e in entries if e.warn]
    warnings += near + crlf_warnings(discovered, heads)
    warnings += uneven_prefixes(discovered) + missing_shebangs(discovered, heads)
    warnings += [warning for phase, entries in discovered
                 if (warning := discovery.hidden_by_ignore(phase, entries))]
    if ctx.notify_command and "notify_command" not in dict(commands):
        warnings.append(f"notify_command {display_name(ctx.notify_command[0])}: not found "
                        "in the PATH hooks get")
    warnings += checker.warnings + unmatched_sections(ctx) + quoted_env_values(ctx)
    return errors, unsafe, problems, warnings


def fix_of(text: str) -> tuple[str, str]:

    """(what, fix) of a permission problem's line, ``... (fix: chmod go-w X)``."""
    what, sep, fix = text.rpartition(" (fix: ")
    return (what, fix[:-1]) if sep and fix.endswith(")") else (text, "")
