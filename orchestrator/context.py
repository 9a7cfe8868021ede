"""From command-line options to what a command works with: the hooks tree, the config, the
state directory, effective options, and the plan of hooks (every check of step 1 of a run,
and those of ``hookrun check``)."""

import os
from collections import namedtuple

from orchestrator import constants as c
from orchestrator import discovery, safety, settings
from orchestrator.errors import ConfigError, UnsafeError, UsageError
from orchestrator.printer import display_name

PlannedHook = namedtuple("PlannedHook", "entry settings", defaults=(None,))
PlannedHook.__doc__ = """An entry of a phase directory with the settings it would run with
(None if skipped)."""

Plan = namedtuple("Plan", "phases problems warnings")
Plan.__doc__ = """What a command that runs hooks works from: [(PhaseDir, [PlannedHook])], the
permission problems --insecure let through, and warnings about the headers."""

# hookrun's own settings, their parsers on the command line, and their built-in defaults.
DURATION_OPTIONS = ("timeout", "kill_grace", "command_timeout")
URL_OPTIONS = ("notify_url", "metrics_push_url")
DEFAULTS = {"kill_grace": c.DEFAULT_KILL_GRACE, "command_timeout": 0.0,
            "strict_permissions": True, "umask": -1}


class Context:
    """Everything a subcommand needs that the command line and the config file decide."""

    __slots__ = ("hooks_dir", "config", "event", "state_dir", "log_file", "timeout",
                 "kill_grace", "command_timeout", "strict", "metrics_file", "metrics_push_url",
                 "notify_url", "notify_command", "path", "umask", "color", "quiet", "verbose",
                 "json")

    def __init__(self, **values):
        for name in self.__slots__:
            setattr(self, name, values.get(name))


def default_hooks_dir():
    if os.environ.get("HOOKRUN_DIR"):
        return os.environ["HOOKRUN_DIR"]
    if os.geteuid() == 0:
        return c.ROOT_HOOKS_DIR
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")
    return os.path.join(base, "hookrun")


def default_state_dir():
    if os.geteuid() == 0:
        return c.ROOT_STATE_DIR
    base = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
    return os.path.join(base, "hookrun")


def option(args, name):
    return getattr(args, name, None)


def parse_option(text, parse, name):
    """``parse(text)`` for the command-line option ``--name``; None stays None; a bad value
    is a usage error (exit 2)."""
    if text is None:
        return None
    try:
        return parse(text)
    except ValueError as error:
        raise UsageError(f"--{name.replace('_', '-')}: {error}") from None


def command_line(args):
    """hookrun's own settings given on the command line, parsed: the first layer of
    ``settings.resolve``. An empty ``--log-file`` or ``--metrics-file`` is a value: none."""
    given = {name: option(args, name) for name in ("state_dir", "log_file", "metrics_file")}
    given.update({name: parse_option(option(args, name), settings.parse_duration, name)
                  for name in DURATION_OPTIONS})
    given.update({name: parse_option(option(args, name), settings.parse_url, name)
                  for name in URL_OPTIONS})
    if option(args, "insecure"):
        given["strict_permissions"] = False
    return given


def check_event(event):
    if len(event) > c.MAX_EVENT_LENGTH or not c.is_event(event):
        raise ConfigError(f"bad event name {display_name(event)!r} (use up to "
                          f"{c.MAX_EVENT_LENGTH} lower-case letters, digits, '_' and '-', "
                          "starting with a letter or digit)")
    return event


def find_hooks_dir(args, required):
    """The absolute hooks directory; ConfigError (78) if it is ``required`` and missing."""
    # Absolute, so that every path handed to hooks still works after they change directory.
    hooks_dir = os.path.abspath(option(args, "hooks_dir") or default_hooks_dir())
    if required and not os.path.isdir(hooks_dir):
        what = "is not a directory" if os.path.lexists(hooks_dir) else "does not exist"
        raise ConfigError(f"hooks directory {display_name(hooks_dir)} {what} (use -d DIR or "
                          "$HOOKRUN_DIR)")
    return hooks_dir


def build_context(args, event=None, need_hooks=True):
    """A Context from parsed arguments; reads and checks the config file (ConfigError, 78).
    Without ``need_hooks`` (--no-hooks, history, show, recover) a missing hooks directory is
    no error: the config file is then the one named by -c, if any, and defaults apply.
    Every setting is ``settings.resolve``d: command line, config, built-in default."""
    hooks_dir = find_hooks_dir(args, need_hooks)
    config_path = option(args, "config")
    config = settings.load_config(config_path or os.path.join(hooks_dir, c.CONFIG_NAME),
                                  required=bool(config_path))
    layers = (command_line(args), config.values)

    def setting(name, default=None):
        return settings.resolve(name, layers, DEFAULTS.get(name, default))

    state_dir = os.path.abspath(setting("state_dir", default_state_dir()))
    log_file = setting("log_file", os.path.join(state_dir, c.LOG_NAME))
    metrics_file = setting("metrics_file")
    return Context(
        hooks_dir=hooks_dir, config=config,
        event=check_event(event or option(args, "event") or c.DEFAULT_EVENT),
        state_dir=state_dir, log_file=os.path.abspath(log_file) if log_file else None,
        timeout=layers[0]["timeout"], kill_grace=setting("kill_grace"),
        command_timeout=setting("command_timeout"), strict=setting("strict_permissions"),
        metrics_file=os.path.abspath(metrics_file) if metrics_file else None,
        metrics_push_url=setting("metrics_push_url") or None,
        notify_url=setting("notify_url") or None, notify_command=setting("notify_command"),
        path=setting("path"), umask=setting("umask"), color=option(args, "color") or "auto",
        quiet=bool(option(args, "quiet")), verbose=bool(option(args, "verbose")),
        json=bool(option(args, "json")))


def discover(ctx, phases):
    """[(PhaseDir, [Entry])] for ``phases`` of the hooks tree."""
    ignore = discovery.IgnoreRules(ctx.hooks_dir) if phases else None
    return [(phase, discovery.discover(ctx.hooks_dir, phase, ignore)) for phase in phases]


def read_heads(discovered):
    """{path: first bytes} of every hook that would run: read once, for its shebang (the
    interpreter is checked) and its header directives."""
    return {entry.path: settings.read_head(entry.path)
            for _phase, entries in discovered for entry in entries if entry.runs}


def plan(ctx, discovered, heads, warnings=None):
    """[(PhaseDir, [PlannedHook])]: every header parsed and every setting merged; raises
    ConfigError (78) naming file and line at the first bad directive. Comments that look
    like directives but are not are added to ``warnings``."""
    overrides = {"timeout": ctx.timeout}
    result = []
    for phase, entries in discovered:
        hooks = []
        for entry in entries:
            hook_settings = None
            if entry.runs:
                header, near = settings.parse_header(heads[entry.path], entry.path, phase.kind)
                if warnings is not None:
                    warnings += near
                section = ctx.config.hooks.get(entry.key, {})
                hook_settings = settings.effective_settings(phase.kind, header, section,
                                                            ctx.config, overrides)
            hooks.append(PlannedHook(entry, hook_settings))
        result.append((phase, hooks))
    return result


def hooks_path(ctx):
    """The PATH hooks get: where ``#!/usr/bin/env NAME`` finds NAME."""
    return ctx.path or ctx.config.env.get("PATH") or os.environ.get("PATH")


def check_paths(ctx, discovered, heads):
    """A safety.Checker that has checked everything whose permissions guard what runs:
    HOOKS_DIR, the config, .hookignore, each phase directory and each hook that would run
    (none for --no-hooks), every directory and link above them, and each hook's interpreter.
    Its ``warnings`` list interpreters that are missing or cannot be executed."""
    checker = safety.Checker()
    if os.path.isdir(ctx.hooks_dir):
        checker.check(ctx.hooks_dir)
    if ctx.config.path:
        checker.check(ctx.config.path)
    if discovered:
        checker.check(os.path.join(ctx.hooks_dir, c.IGNORE_NAME))
    env_path = hooks_path(ctx)
    for phase, entries in discovered:
        checker.check(os.path.join(ctx.hooks_dir, phase.dirname))
        for entry in entries:
            if entry.runs:
                checker.check(entry.path)
                warning = checker.check_interpreter(heads[entry.path], env_path)
                if warning:
                    checker.warnings.append(f"{display_name(entry.key)}: {warning}")
    return checker


def check_safety(ctx, discovered, heads):
    """Refuse (UnsafeError, 77) an unsafe tree when strict, naming every unsafe path; else
    return the problems, to be warned about."""
    found = check_paths(ctx, discovered, heads).problems
    if found and ctx.strict:
        raise UnsafeError("\n".join(f"unsafe permissions: {problem}" for problem in found)
                          + " (or use --insecure)")
    return found


def load_plan(ctx, phases, check=True):
    """Discover ``phases``, check that what would run is safe (step 1 of a run; not for
    ``list``, without ``check``), and parse every header: a Plan."""
    discovered = discover(ctx, phases)
    heads = read_heads(discovered)
    problems = check_safety(ctx, discovered, heads) if check else []
    warnings = []
    return Plan(plan(ctx, discovered, heads, warnings), problems, warnings)


def crlf_warnings(discovered, heads):
    """A hook written with CRLF line endings: its ``#!`` line names an interpreter with a
    carriage return, which the kernel does not find."""
    return [f"{display_name(entry.key)}: CRLF line endings (fix: dos2unix, or sed -i "
            "'s/\\r$//')"
            for _phase, entries in discovered for entry in entries
            if entry.runs and b"\r\n" in heads[entry.path]]


def missing_shebangs(discovered, heads):
    return [f"{display_name(entry.key)}: no shebang line, run by /bin/sh"
            for _phase, entries in discovered for entry in entries
            if entry.runs and heads[entry.path][:2] not in (b"#!", b"\x7fE")]


def numeric_prefix(name):
    """The ASCII digits a name starts with ("" if none)."""
    digits = 0
    while digits < len(name) and name[digits] in "0123456789":
        digits += 1
    return name[:digits]


def uneven_prefixes(discovered):
    """Warnings for phases whose numeric prefixes have different widths (100-x sorts before
    20-x)."""
    warnings = []
    for phase, entries in discovered:
        widths = {}
        for entry in entries:
            prefix = numeric_prefix(entry.name)
            if prefix and entry.runs:
                widths.setdefault(len(prefix), entry.name)
        if len(widths) > 1:
            names = ", ".join(display_name(n) for n in widths.values())
            warnings.append(f"{phase.dirname}: numeric prefixes of different widths ({names}) "
                            "sort byte-wise, not numerically: pad them to one width")
    return warnings


def check_tree(ctx):
    """What ``hookrun check`` finds: (errors, permission problems, warnings), each a list of
    lines. Every header is parsed, not only up to the first bad one."""
    discovered = discover(ctx, discovery.phase_dirs(ctx.event))
    heads = read_heads(discovered)
    checker = check_paths(ctx, discovered, heads)
    errors, near = [], []
    for phase, entries in discovered:
        for entry in entries:
            try:
                plan(ctx, [(phase, [entry])], heads, near)
            except ConfigError as error:
                errors.append(str(error))
    warnings = [f"{display_name(e.key)}: {e.reason}"
                for _p, entries in discovered for e in entries if e.warn]
    warnings += checker.warnings + near + crlf_warnings(discovered, heads)
    warnings += uneven_prefixes(discovered) + missing_shebangs(discovered, heads)
    warnings += [f"{ctx.config.path}: [hook {key}] names no file in {ctx.hooks_dir}"
                 for key in ctx.config.hooks
                 if not os.path.lexists(os.path.join(ctx.hooks_dir, key))]
    return errors, checker.problems, warnings
