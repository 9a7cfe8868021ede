"""From command-line options to what a command works with: the hooks tree, the config, the
state directory, effective options, and the plan of hooks (every check of step 1 of a run)."""

import os
from dataclasses import dataclass

from orchestrator import constants as c
from orchestrator import discovery, safety, settings
from orchestrator.errors import ConfigError, UnsafeError, UsageError


@dataclass(frozen=True)
class PlannedHook:
    """An entry of a phase directory with the settings it would run with (None if skipped)."""

    entry: discovery.Entry
    settings: object = None


@dataclass
class Context:
    """Everything a subcommand needs that the command line and the config file decide."""

    hooks_dir: str
    config: settings.Config
    event: str
    state_dir: str
    log_file: object
    timeout: object
    kill_grace: float
    command_timeout: float
    strict: bool
    metrics_file: object
    notify_url: object
    notify_command: object
    path: object
    umask: int
    color: str = "auto"
    quiet: bool = False
    verbose: bool = False
    json: bool = False
    metrics_push_url: object = None


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


def check_event(event):
    if not c.EVENT_RE.match(event):
        raise ConfigError(f"bad event name {event!r} (use lower-case letters, digits, '_' and "
                          "'-', starting with a letter or digit)")
    return event


def build_context(args, event=None):
    """A Context from parsed arguments; reads and checks the config file (ConfigError, 78)."""
    # Absolute, so that every path handed to hooks still works after they change directory.
    hooks_dir = os.path.abspath(option(args, "hooks_dir") or default_hooks_dir())
    if not os.path.isdir(hooks_dir):
        raise ConfigError(f"hooks directory {hooks_dir} does not exist (use -d DIR or "
                          "$HOOKRUN_DIR)")
    config_path = option(args, "config")
    config = settings.load_config(config_path or os.path.join(hooks_dir, c.CONFIG_NAME),
                                  required=bool(config_path))
    event = check_event(event or option(args, "event") or c.DEFAULT_EVENT)
    state_dir = os.path.abspath(option(args, "state_dir") or config.get("state_dir")
                                or default_state_dir())
    log_file = option(args, "log_file")
    if log_file is None:
        log_file = config.get("log_file", os.path.join(state_dir, c.LOG_NAME))
    durations = {name: parse_option(option(args, name), settings.parse_duration, name)
                 for name in ("timeout", "kill_grace", "command_timeout")}
    return Context(
        hooks_dir=hooks_dir, config=config, event=event, state_dir=state_dir,
        log_file=os.path.abspath(log_file) if log_file else None, timeout=durations["timeout"],
        kill_grace=first(durations["kill_grace"], config.get("kill_grace"), c.DEFAULT_KILL_GRACE),
        command_timeout=first(durations["command_timeout"], config.get("command_timeout"), 0.0),
        strict=not option(args, "insecure") and config.get("strict_permissions", True),
        metrics_file=option(args, "metrics_file") or config.get("metrics_file"),
        notify_url=(parse_option(option(args, "notify_url"), settings.parse_url, "notify_url")
                    or config.get("notify_url")),
        notify_command=config.get("notify_command"), path=config.get("path"),
        umask=first(config.get("umask"), -1), color=option(args, "color") or "auto",
        quiet=bool(option(args, "quiet")), verbose=bool(option(args, "verbose")),
        json=bool(option(args, "json")),
        metrics_push_url=(parse_option(option(args, "metrics_push_url"), settings.parse_url,
                                       "metrics_push_url") or config.get("metrics_push_url")))


def first(*values):
    return next(v for v in values if v is not None)


def discover(ctx, phases):
    """[(PhaseDir, [Entry])] for ``phases`` of the hooks tree."""
    ignore = discovery.IgnoreRules(ctx.hooks_dir)
    return [(phase, discovery.discover(ctx.hooks_dir, phase, ignore)) for phase in phases]


def plan(ctx, discovered):
    """[(PhaseDir, [PlannedHook])]: every header parsed and every setting merged; raises
    ConfigError (78) naming file and line at the first bad directive."""
    overrides = {"timeout": ctx.timeout}
    result = []
    for phase, entries in discovered:
        hooks = []
        for entry in entries:
            hook_settings = None
            if entry.runs:
                header = settings.read_header(entry.path)
                section = ctx.config.hooks.get(entry.key, {})
                hook_settings = settings.effective_settings(phase.kind, header, section,
                                                            ctx.config, overrides)
            hooks.append(PlannedHook(entry, hook_settings))
        result.append((phase, hooks))
    return result


def safety_paths(ctx, discovered):
    """The paths whose permissions guard what runs: HOOKS_DIR, the config, .hookignore, and
    each discovered phase directory and hook that would run (none for --no-hooks)."""
    paths = [ctx.hooks_dir]
    for path in (ctx.config.path, os.path.join(ctx.hooks_dir, c.IGNORE_NAME)):
        if path and os.path.exists(path):
            paths.append(path)
    for phase, entries in discovered:
        directory = os.path.join(ctx.hooks_dir, phase.dirname)
        if os.path.isdir(directory):
            paths.append(directory)
        paths.extend(entry.path for entry in entries if entry.runs)
    return paths


def check_safety(ctx, discovered):
    """Refuse (UnsafeError, 77) an unsafe tree when strict; else return the problems as
    warnings."""
    found = safety.problems(safety_paths(ctx, discovered))
    if found and ctx.strict:
        raise UnsafeError(f"unsafe permissions: {found[0]} (or use --insecure)")
    return found


def check_tree(ctx):
    """What ``hookrun check`` finds: (errors, permission problems, warnings), each a list of
    lines. Every header is parsed, not only up to the first bad one."""
    from orchestrator import views

    discovered = discover(ctx, discovery.phase_dirs(ctx.event))
    problems = safety.problems(safety_paths(ctx, discovered))
    errors, planned = [], []
    for phase, entries in discovered:
        hooks = []
        for entry in entries:
            try:
                hooks += plan(ctx, [(phase, [entry])])[0][1]
            except ConfigError as error:
                errors.append(str(error))
        planned.append((phase, hooks))
    warnings = [f"{e.key}: {e.reason}" for _p, entries in discovered for e in entries if e.warn]
    warnings += views.uneven_prefixes(planned) + views.missing_shebangs(planned)
    warnings += [f"{ctx.config.path}: [hook {key}] names no file in {ctx.hooks_dir}"
                 for key in ctx.config.hooks
                 if not os.path.lexists(os.path.join(ctx.hooks_dir, key))]
    return errors, problems, warnings
