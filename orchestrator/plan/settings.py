"""Config file, header directives and durations, merged into effective settings.

Precedence, highest first: command line, config ``[hook PHASE/NAME]``, header directive,
config ``[hookrun]``, built-in defaults (design.md section 1). ``resolve`` is the one place
that applies it, for a hook's settings and for hookrun's own.

The parsers use string methods, not regular expressions: ``re`` would cost every run its
start-up time, for a few simple shapes.
"""

from __future__ import annotations

import os
from collections import namedtuple

from orchestrator import constants as c
from orchestrator.errors import ConfigError
from orchestrator.outcome import OnFailure, When
from orchestrator.plan.values import (
    format_codes,
    parse_account,
    parse_argv,
    parse_bool,
    parse_codes,
    parse_critical,
    parse_duration,
    parse_event_list,
    parse_events,
    parse_on_failure,
    parse_required_text,
    parse_retries,
    parse_size,
    parse_text,
    parse_umask,
    parse_url,
    parse_when,
)
from orchestrator.timestamps import format_duration

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from typing import Any

    # A setting's parsed value: its type is its parser's (HOOKRUN_PARSERS, HOOK_KEYS), which
    # depends on the key, so a mapping of settings can only say Any.
    Value = Any
    Parser = Callable[[str], object]
    # What a section's lines are read with: HOOKRUN_PARSERS, HOOK_KEYS, CHANNEL_PARSERS, or
    # None for [env].
    Parsers = Mapping[str, Any] | tuple[str, ...] | None

DEFAULTABLE_HOOK_KEYS = ("timeout", "retries", "retry_delay")
HOOK_DEFAULTS = {"timeout": c.DEFAULT_TIMEOUT, "retries": 0,
                 "retry_delay": c.DEFAULT_RETRY_DELAY, "when": When.RAN, "events": None,
                 "warning_codes": frozenset(), "dry_run": False, "stall": 0.0, "user": None,
                 "group": None}


def resolve(name: str, layers: Iterable[Mapping[str, Value]], default: Value = None) -> Value:
    """The value of ``name`` in the first of ``layers`` (mappings, highest precedence first)
    that sets it (to anything but None), else ``default``."""
    for layer in layers:
        value = layer.get(name)
        if value is not None:
            return value
    return default


# What each hook key, as written, sets, and how its value is read.
HOOK_KEYS: dict[str, tuple[str, Parser]] = {"critical": ("on_failure", parse_critical),
             "on_failure": ("on_failure", parse_on_failure),
             "timeout": ("timeout", parse_duration), "retries": ("retries", parse_retries),
             "retry_delay": ("retry_delay", parse_duration), "when": ("when", parse_when),
             "events": ("events", parse_events),
             "warning_codes": ("warning_codes", parse_codes),
             "dry_run": ("dry_run", parse_bool), "stall": ("stall", parse_duration),
             "user": ("user", parse_account), "group": ("group", parse_account)}
KNOWN_HOOK_KEYS = ("critical, on-failure, timeout, retries, retry-delay, when, events, "
                   "warning-codes, dry-run, stall, user, group")
# Settings and values that only mean something in some phases; elsewhere a config error.
ONLY_IN = {"when": ((c.PHASE_POST,), "post-EVENT.d"),
           "events": ((c.PHASE_ON_ERROR, c.PHASE_ON_SUCCESS, c.PHASE_FINALLY),
                      "on-error.d, on-success.d and finally.d"),
           OnFailure.SKIP_RUN: ((c.PHASE_PRE,), "pre-EVENT.d")}
HOOKRUN_PARSERS: dict[str, Parser] = {
    "state_dir": parse_required_text, "log_file": parse_text, "timeout": parse_duration,
    "command_timeout": parse_duration, "kill_grace": parse_duration,
    "strict_permissions": parse_bool, "metrics_file": parse_text, "notify_url": parse_url,
    "metrics_push_url": parse_url, "notify_command": parse_argv, "path": parse_required_text,
    "umask": parse_umask, "retries": parse_retries, "retry_delay": parse_duration,
    "events": parse_event_list, "command_warning_codes": parse_codes,
    "command_retry_codes": parse_codes, "command_retries": parse_retries,
    "command_retry_delay": parse_duration, "stall_timeout": parse_duration,
    "log_task_max_bytes": parse_size,
}

# The keys of a [notify NAME] section; channel_config.parse_key reads their values.
CHANNEL_PARSERS = ("type", "url", "token", "on", "triggers", "send_output", "method", "header",
                   "body")


class HookSettings(namedtuple("HookSettings",
                              "on_failure timeout retries retry_delay when events "
                              "warning_codes dry_run stall user group",
                              defaults=(frozenset(), False, 0.0, None, None))):
    """What one hook runs with. ``on_failure`` is stop, warn, ignore or skip-run; ``when``
    is None outside post-EVENT.d; ``events`` None unless set (every event);
    ``warning_codes`` the exit statuses that are a warning, not a failure; ``dry_run``
    whether it takes part in a dry run (it promises to change nothing there); ``stall`` how
    long it may print nothing before that is a timeout (0: for ever); ``user`` and
    ``group`` whom it runs as (None: hookrun's own)."""

    __slots__ = ()

    @property
    def critical(self) -> bool:
        return bool(self.on_failure == OnFailure.STOP)  # on_failure: a namedtuple's Any


class Config:
    """The config file, parsed and checked; empty when there is none. ``values`` holds the
    [hookrun] section, ``env`` the [env] section, ``hooks`` the [hook ...] sections."""

    __slots__ = ("path", "values", "env", "hooks", "notify")

    def __init__(self, path: str | None = None) -> None:
        self.path = path
        self.values: dict[str, Value] = {}
        self.env: dict[str, str] = {}
        self.hooks: dict[str, dict[str, Value]] = {}
        # name -> the [notify NAME] section's settings (channel_config.CHANNEL_KEYS)
        self.notify: dict[str, dict[str, Value]] = {}

    def get(self, key: str, default: Value = None) -> Value:
        return self.values.get(key, default)


def normalise_key(key: str) -> str:
    return key.strip().lower().replace("-", "_")


def load_config(path: str, required: bool) -> Config:
    """Parse the INI file at ``path``; a missing optional file is an empty Config.

    Every error is a ConfigError naming file and line.
    """
    from orchestrator.files import NotRegularFile, read_settings

    try:
        raw = read_settings(path)
    except FileNotFoundError:
        if required:
            raise ConfigError(f"{path}: config file not found") from None
        return Config()
    except NotRegularFile:
        raise ConfigError(f"{path}: config file is not a regular file (a FIFO, socket, device "
                          "or directory; fix: make it a regular file, or move it away)") from None
    except OSError as error:
        raise ConfigError(f"{path}: cannot read config file: {error.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw[:error.start].count(b"\n") + 1
        raise ConfigError(f"{path}:{line}: not valid UTF-8") from None
    # An editor's byte order mark is not part of the first line (git reads .gitignore so).
    return parse_config(text.removeprefix(c.BOM), path)


def parse_config(text: str, path: str) -> Config:
    """A Config from INI text; ``path`` only names the file in errors."""
    config = Config(path=path)
    section: str | None = None
    target: dict[str, Value] = {}
    parsers: Parsers = None
    seen: set[str] = set()
    sections: set[str] = set()
    # Only "\n" ends a line: str.splitlines() would also split at \x1c, \x85 and others.
    for number, line in enumerate(text.split("\n"), 1):
        stripped = line.strip()
        if not stripped or stripped[0] in "#;":
            continue
        where = f"{path}:{number}"
        if stripped.startswith("["):
            section, target, parsers = open_section(config, stripped, where)
            if section in sections:
                raise ConfigError(f"{where}: duplicate section [{section}]")
            sections.add(section)
            seen = set()
            continue
        if section is None:
            raise ConfigError(f"{where}: a setting before any [section]")
        key, sep, value = stripped.partition("=")
        if not sep:
            raise ConfigError(f"{where}: expected 'key = value', got {stripped!r}")
        key = key.strip() if section == "env" else normalise_key(key)
        if key in seen and not (parsers is CHANNEL_PARSERS and key == "header"):
            raise ConfigError(f"{where}: duplicate key '{key}' in [{section}]")
        seen.add(key)
        if parsers is HOOK_KEYS:
            setting, parsed = hook_setting(key, value.strip(), phase_kind(section[5:]), where)
            target[setting] = parsed
            continue
        if isinstance(parsers, tuple):  # CHANNEL_PARSERS, the only tuple of them
            channel_setting(target, key, value.strip(), section, where)
            continue
        target[key] = parse_value(key, value.strip(), parsers, section, where)
    if config.notify:
        from orchestrator.plan.channel_config import check_section

        for name, found in config.notify.items():
            check_section(name, found)
    return config


def channel_setting(target: dict[str, Value], key: str, value: str, section: str,
                    where: str) -> None:
    """Add ``key = value`` of the [notify NAME] section ``section`` to its dict ``target``;
    ``header`` lines add up. Every value is checked by channel_config.parse_key (its ValueError
    becomes a ConfigError naming file and line)."""
    from orchestrator.plan.channel_config import parse_key

    if key not in CHANNEL_PARSERS:
        raise ConfigError(f"{where}: unknown key '{key}' in [{section}] (known: "
                          f"{', '.join(CHANNEL_PARSERS)})")
    try:
        parsed = parse_key(key, value)
    except ValueError as error:
        raise ConfigError(f"{where}: {key}: {error}") from None
    target["lines"][key] = where
    if key == "header":
        target.setdefault("headers", []).append(parsed)
    else:
        target[key] = parsed


def is_hook_key(text: str) -> bool:
    """``PHASE-DIR.d/NAME``: one slash, a directory ending in .d, a name."""
    directory, sep, name = text.partition("/")
    return bool(sep and name and "/" not in name and directory.endswith(".d")
                and len(directory) > 2)


def open_section(config: Config, header: str,
                 where: str) -> tuple[str, dict[str, Value], Parsers]:
    """Start a section; returns (name, the dict it fills, its parsers or None for [env])."""
    if not header.endswith("]"):
        raise ConfigError(f"{where}: unterminated section header {header!r}")
    name = header[1:-1].strip()
    if name == "hookrun":
        return name, config.values, HOOKRUN_PARSERS
    if name == "env":
        return name, config.env, None
    kind, _, hook = name.partition(" ")
    hook = hook.strip()
    if kind == "hook" and is_hook_key(hook):
        config.hooks.setdefault(hook, {})
        return name, config.hooks[hook], HOOK_KEYS
    if kind == "notify":
        if not is_channel_name(hook):
            raise ConfigError(f"{where}: bad notification name in [{name}] (letters, digits, "
                              "'.', '_' and '-', e.g. [notify phone])")
        config.notify[hook] = {"name": hook, "lines": {"section": where}}
        return f"notify {hook}", config.notify[hook], CHANNEL_PARSERS
    raise ConfigError(f"{where}: unknown section [{name}] (use [hookrun], [env], "
                      "[hook PHASE-DIR.d/NAME] or [notify NAME])")


def is_channel_name(text: str) -> bool:
    """A [notify NAME] name: 1-64 of ASCII letters, digits, '.', '_', '-'."""
    return 0 < len(text) <= c.MAX_EVENT_LENGTH and text.isascii() and all(
        ch.isalnum() or ch in "._-" for ch in text)


def parse_value(key: str, value: str, parsers: Mapping[str, Parser] | None, section: str,
                where: str) -> object:
    if parsers is None:
        if not c.is_env_name(key):
            raise ConfigError(f"{where}: bad environment variable name {key!r}")
        if "\0" in value:
            raise ConfigError(f"{where}: {key}: a value cannot hold a NUL byte")
        return value
    if key not in parsers:
        raise ConfigError(f"{where}: unknown key '{key}' in [{section}]")
    try:
        return parsers[key](value)
    except ValueError as error:
        raise ConfigError(f"{where}: {key}: {error}") from None


def read_head(path: str) -> bytes:
    """The first bytes of the file at ``path`` (b"" if it cannot be read): one open, read
    and close per hook, without a buffered file's seek and terminal check. Never waits: a
    hook swapped for a FIFO since it was looked at would block an open for ever."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return b""
    try:
        return os.read(fd, c.HEAD_BYTES)
    except OSError:
        return b""
    finally:
        os.close(fd)


def phase_kind(key: str) -> str | None:
    """The phase (``pre``, ``post``, ``on-error``...) of ``PHASE-DIR.d/NAME`` or of a
    directory name; None if it names none."""
    dirname = key.split("/", 1)[0]
    for phase in (c.PHASE_ON_ERROR, c.PHASE_ON_SUCCESS, c.PHASE_FINALLY):
        if dirname == f"{phase}.d":
            return phase
    for phase in (c.PHASE_PRE, c.PHASE_POST):
        if dirname.startswith(f"{phase}-") and dirname.endswith(".d"):
            return phase
    return None


def hook_setting(key: str, value: str, phase: str | None, where: str) -> tuple[str, object]:
    """(setting, value) for the hook key ``key`` as written at ``where`` (file:line) in a
    hook of ``phase``; ConfigError for an unknown key, a bad value, or a setting that
    means nothing in that phase."""
    if key not in HOOK_KEYS:
        raise ConfigError(f"{where}: unknown hook key '{key.replace('_', '-')}' "
                          f"(known: {KNOWN_HOOK_KEYS})")
    setting, parse = HOOK_KEYS[key]
    try:
        parsed = parse(value)
    except ValueError as error:
        raise ConfigError(f"{where}: {error}") from None
    for limited in (setting, parsed):
        if isinstance(limited, str) and limited in ONLY_IN and phase is not None:
            phases, named = ONLY_IN[limited]
            if phase not in phases:
                written = key.replace("_", "-")  # as the header or section spells it
                shown = written if limited == setting else f"{written}={parsed}"
                raise ConfigError(f"{where}: {shown} is for {named} only")
    return setting, parsed


def directive(line: bytes) -> bytes | None:
    """The directive text of a header line (bytes), ``# hookrun: ...``, or None."""
    text = line.lstrip()
    if not text.startswith(b"#"):
        return None
    text = text.lstrip(b"#").lstrip()
    return text[8:] if text.startswith(b"hookrun:") else None


def near_directive(line: bytes) -> bool:
    """Whether a comment line means to be a directive but is not one: ``# hookrun
    timeout=1s``, ``# HookRun: ...``, ``## hook-run: ...``."""
    text = line.lstrip()
    if not text.startswith(b"#") or b"=" not in text:
        return False
    text = text.lstrip(b"#").lstrip().lower()
    if not text.startswith(b"hook"):
        return False
    rest = text[4:].lstrip(b" \t_-")
    return rest.startswith(b"run") and (len(rest) == 3 or not rest[3:4].isalnum())


def script_text(head: bytes) -> bytes:
    """What of a hook's first bytes ``head`` is script text: a ``#!`` script's up to a NUL
    (a payload may follow its text), nothing of a binary (ELF, or a NUL in its first bytes),
    all of anything else."""
    if head.startswith(b"#!"):
        return head.split(b"\0", 1)[0]
    if head.startswith(b"\x7fELF") or b"\0" in head:
        return b""
    return head


def parse_header(head: bytes, path: str, phase: str | None = None
                 ) -> tuple[dict[str, tuple[Value, int]], list[str]]:
    """The header directives in ``head``, the first bytes of the script ``path`` of phase
    ``phase``: ({setting: (value, line_number)}, [warnings]). A warning names a comment that
    looks like a directive but is not one. Binary executables (ELF, or a NUL in the first
    bytes) have no header; a ``#!`` script with a payload after its text (a NUL further on)
    has its header read up to the payload. Raises ConfigError naming file and line for an
    unknown key, a bad value or a key that means nothing in the hook's phase."""
    head = script_text(head)
    found: dict[str, tuple[Value, int]] = {}
    warnings: list[str] = []
    for number, line in enumerate(head.split(b"\n")[:c.HEADER_LINES], 1):
        if b"hook" not in line.lower():
            continue
        where = f"{path}:{number}"
        body = directive(line)
        if body is None:
            if near_directive(line):
                warnings.append(f"{where}: looks like a header directive but is not one "
                                "(write '# hookrun: key=value')")
            continue
        for token in body.decode("utf-8", "replace").split():
            key, sep, value = token.partition("=")
            if not sep or not value:
                raise ConfigError(f"{where}: expected key=value in header, got {token!r}")
            setting, parsed = hook_setting(normalise_key(key), value, phase, where)
            found[setting] = (parsed, number)
    return found, warnings


def effective_settings(phase: str, header: Mapping[str, tuple[Value, int]],
                       section: Mapping[str, Value], config: Config,
                       overrides: Mapping[str, Value]) -> HookSettings:
    """HookSettings for a hook of ``phase`` (``pre``, ``post``, ...), by ``resolve``:
    ``overrides`` (the command line, e.g. {"timeout": 60.0}), ``section`` (the config's
    [hook ...] dict, or {}), ``header`` (setting -> (value, line)), the config's [hookrun]
    defaults, the built-in defaults."""
    headers = {name: value for name, (value, _line) in header.items()}
    defaults = {name: config.get(name) for name in DEFAULTABLE_HOOK_KEYS}
    defaults["stall"] = config.get("stall_timeout")
    layers = (overrides, section, headers, defaults)
    builtin = dict(HOOK_DEFAULTS, on_failure=OnFailure.STOP if phase == c.PHASE_PRE
                   else OnFailure.WARN)
    found = {name: resolve(name, layers, default) for name, default in builtin.items()}
    return HookSettings(on_failure=found["on_failure"], timeout=found["timeout"],
                        retries=found["retries"], retry_delay=found["retry_delay"],
                        when=found["when"] if phase == c.PHASE_POST else None,
                        events=found["events"], warning_codes=found["warning_codes"],
                        dry_run=found["dry_run"], stall=found["stall"], user=found["user"],
                        group=found["group"])


def describe(settings: HookSettings) -> str:
    """A hook's effective settings as ``list`` and ``-v`` show them."""
    text = (f"on-failure={settings.on_failure} timeout={format_duration(settings.timeout)} "
            f"retries={settings.retries}")
    if settings.retries:
        text += f" retry-delay={format_duration(settings.retry_delay)}"
    if settings.when:
        text += f" when={settings.when}"
    if settings.events:
        text += f" events={','.join(settings.events)}"
    if settings.warning_codes:
        text += f" warning-codes={format_codes(settings.warning_codes)}"
    if settings.dry_run:
        text += " dry-run=yes"
    if settings.stall:
        text += f" stall={format_duration(settings.stall)}"
    if settings.user:
        text += f" user={settings.user}"
    if settings.group:
        text += f" group={settings.group}"
    return text


def retry_delays(first: float, retries: int) -> list[float]:

    """The wait before each retry: ``first``, doubling, at most MAX_RETRY_DELAY."""
    return [min(first * 2 ** n, c.MAX_RETRY_DELAY) for n in range(retries)]
