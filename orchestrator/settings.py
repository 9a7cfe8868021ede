"""Config file, header directives and durations, merged into the effective settings of a hook.

Precedence, highest first: command line, config ``[hook PHASE/NAME]``, header directive,
config ``[hookrun]`` defaults, built-in defaults (design.md section 1).
"""

import re
import shlex
from dataclasses import dataclass, field

from orchestrator import constants as c
from orchestrator.errors import ConfigError

DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)\s*(s|m|h)?\Z")
UNIT_SECONDS = {None: 1, "s": 1, "m": 60, "h": 3600}
HEADER_RE = re.compile(rb"^\s*#+\s*hookrun:(.*)$")
# A comment that means to be a directive but is not one: "# hookrun timeout=1s", "# HookRun:".
NEAR_HEADER_RE = re.compile(rb"^\s*#+\s*hook[\s_-]*run\b.*=", re.IGNORECASE)
WHEN_VALUES = ("ran", "success", "failure", "always")
ON_FAILURE_VALUES = ("stop", "warn", "ignore", "skip-run")
BOOLEANS = {"yes": True, "true": True, "on": True, "1": True,
            "no": False, "false": False, "off": False, "0": False}
DEFAULTABLE_HOOK_KEYS = ("timeout", "retries", "retry_delay")


def parse_duration(text):
    """Seconds (float) for ``90``, ``90s``, ``2.5m``, ``1h``, at most 100 days; ValueError for
    anything else."""
    match = DURATION_RE.match(text.strip())
    if not match:
        raise ValueError(f"bad duration {text!r} (use e.g. 90, 90s, 5m, 1h)")
    seconds = float(match.group(1)) * UNIT_SECONDS[match.group(2)]
    if seconds > c.MAX_DURATION:
        raise ValueError(f"duration {text!r} is longer than 100 days")
    return seconds


def format_duration(seconds):
    """The shortest spelling of a duration that parse_duration reads back."""
    if seconds == int(seconds):
        seconds = int(seconds)
        for unit, size in (("h", 3600), ("m", 60)):
            if seconds and seconds % size == 0:
                return f"{seconds // size}{unit}"
    return f"{seconds}s"


def parse_bool(text):
    try:
        return BOOLEANS[text.strip().lower()]
    except KeyError:
        raise ValueError(f"bad yes/no value {text!r}") from None


def parse_retries(text):
    if not text.strip().isdigit() or not 0 <= int(text) <= c.MAX_RETRIES:
        raise ValueError(f"bad retries {text!r} (a whole number from 0 to {c.MAX_RETRIES})")
    return int(text)


def parse_when(text):
    if text.strip() not in WHEN_VALUES:
        raise ValueError(f"bad when {text!r} (one of {', '.join(WHEN_VALUES)})")
    return text.strip()


def parse_umask(text):
    if not re.fullmatch(r"[0-7]{1,4}", text.strip()):
        raise ValueError(f"bad umask {text!r} (octal, e.g. 077)")
    return int(text, 8)


def parse_argv(text):
    try:
        argv = shlex.split(text)
    except ValueError as error:
        raise ValueError(f"bad command line {text!r}: {error}") from None
    if not argv:
        raise ValueError("empty command")
    return argv


def parse_text(text):
    return text.strip()


def parse_url(text):
    """An http(s) URL, or empty for none."""
    url = text.strip()
    if url and not re.match(r"https?://[^/\s]+", url):
        raise ValueError(f"bad URL {url!r} (use http:// or https://)")
    return url


def parse_critical(text):
    """``critical=yes|no``: the older spelling of ``on-failure=stop|warn``."""
    return "stop" if parse_bool(text) else "warn"


def parse_on_failure(text):
    if text.strip() not in ON_FAILURE_VALUES:
        raise ValueError(f"bad on-failure {text!r} (one of {', '.join(ON_FAILURE_VALUES)})")
    return text.strip()


def parse_events(text):
    """A comma list of event names, as a tuple."""
    events = tuple(part.strip() for part in text.split(","))
    for event in events:
        if not c.EVENT_RE.match(event) or len(event) > c.MAX_EVENT_LENGTH:
            raise ValueError(f"bad events {text!r} (a comma list of event names, e.g. "
                             "backup,prune)")
    return events


# What each hook key, as written, sets, and how its value is read.
HOOK_KEYS = {"critical": ("on_failure", parse_critical),
             "on_failure": ("on_failure", parse_on_failure),
             "timeout": ("timeout", parse_duration), "retries": ("retries", parse_retries),
             "retry_delay": ("retry_delay", parse_duration), "when": ("when", parse_when),
             "events": ("events", parse_events)}
KNOWN_HOOK_KEYS = "critical, on-failure, timeout, retries, retry-delay, when, events"
# Settings and values that only mean something in some phases; elsewhere a config error.
ONLY_IN = {"when": ((c.PHASE_POST,), "post-EVENT.d"),
           "events": ((c.PHASE_ON_ERROR, c.PHASE_ON_SUCCESS, c.PHASE_FINALLY),
                      "on-error.d, on-success.d and finally.d"),
           "skip-run": ((c.PHASE_PRE,), "pre-EVENT.d")}
HOOKRUN_PARSERS = {
    "state_dir": parse_text, "log_file": parse_text, "timeout": parse_duration,
    "command_timeout": parse_duration, "kill_grace": parse_duration,
    "strict_permissions": parse_bool, "metrics_file": parse_text, "notify_url": parse_url,
    "metrics_push_url": parse_url,
    "notify_command": parse_argv, "path": parse_text, "umask": parse_umask,
    "retries": parse_retries, "retry_delay": parse_duration,
}


@dataclass(frozen=True)
class HookSettings:
    """What one hook runs with. ``on_failure`` is stop, warn, ignore or skip-run; ``when``
    is None outside post-EVENT.d; ``events`` None unless set (every event)."""

    on_failure: str
    timeout: float
    retries: int
    retry_delay: float
    when: object = None
    events: object = None

    @property
    def critical(self):
        return self.on_failure == "stop"


@dataclass
class Config:
    """The config file, parsed and checked; empty when there is none."""

    path: object = None
    values: dict = field(default_factory=dict)
    env: dict = field(default_factory=dict)
    hooks: dict = field(default_factory=dict)

    def get(self, key, default=None):
        return self.values.get(key, default)


def normalise_key(key):
    return key.strip().lower().replace("-", "_")


def load_config(path, required):
    """Parse the INI file at ``path``; a missing optional file is an empty Config.

    Every error is a ConfigError naming file and line.
    """
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except FileNotFoundError:
        if required:
            raise ConfigError(f"{path}: config file not found") from None
        return Config()
    except OSError as error:
        raise ConfigError(f"{path}: cannot read config file: {error.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw[:error.start].count(b"\n") + 1
        raise ConfigError(f"{path}:{line}: not valid UTF-8") from None
    return parse_config(text, path)


def parse_config(text, path):
    """A Config from INI text; ``path`` only names the file in errors."""
    config = Config(path=path)
    section, target, parsers, seen = None, None, None, set()
    sections = set()
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
        if key in seen:
            raise ConfigError(f"{where}: duplicate key '{key}' in [{section}]")
        seen.add(key)
        if parsers is HOOK_KEYS:
            setting, parsed = hook_setting(key, value.strip(), phase_kind(section[5:]), where)
            target[setting] = parsed
            continue
        target[key] = parse_value(key, value.strip(), parsers, section, where)
    return config


def open_section(config, header, where):
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
    if kind == "hook" and re.fullmatch(r"[^/]+\.d/[^/]+", hook):
        config.hooks.setdefault(hook, {})
        return name, config.hooks[hook], HOOK_KEYS
    raise ConfigError(f"{where}: unknown section [{name}] (use [hookrun], [env] or "
                      "[hook PHASE-DIR.d/NAME])")


def parse_value(key, value, parsers, section, where):
    if parsers is None:
        if not c.ENV_NAME_RE.match(key):
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


def read_head(path):
    """The first bytes of the file at ``path`` (b"" if it cannot be read)."""
    try:
        with open(path, "rb") as handle:
            return handle.read(c.HEAD_BYTES)
    except OSError:
        return b""


def phase_kind(key):
    """The phase (``pre``, ``post``, ``on-error``...) of ``PHASE-DIR.d/NAME`` or of a
    directory name; None if it names none."""
    dirname = key.split("/", 1)[0]
    for kind in (c.PHASE_ON_ERROR, c.PHASE_ON_SUCCESS, c.PHASE_FINALLY):
        if dirname == f"{kind}.d":
            return kind
    for kind in (c.PHASE_PRE, c.PHASE_POST):
        if dirname.startswith(f"{kind}-") and dirname.endswith(".d"):
            return kind
    return None


def hook_setting(key, value, kind, where):
    """(setting, value) for the hook key ``key`` as written at ``where`` (file:line) in a
    hook of phase ``kind``; ConfigError for an unknown key, a bad value, or a setting that
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
        if isinstance(limited, str) and limited in ONLY_IN and kind is not None:
            kinds, named = ONLY_IN[limited]
            if kind not in kinds:
                shown = key.replace("_", "-") if limited == setting else f"{key}={parsed}"
                raise ConfigError(f"{where}: {shown} is for {named} only")
    return setting, parsed


def parse_header(head, path, kind=None):
    """The header directives in ``head``, the first bytes of the script ``path`` of phase
    ``kind``: ({setting: (value, line_number)}, [warnings]). A warning names a comment that
    looks like a directive but is not one. Binary executables (ELF, or a NUL in the first
    bytes) have no header. Raises ConfigError naming file and line for an unknown key, a bad
    value or a key that means nothing in the hook's phase."""
    if head.startswith(b"\x7fELF") or b"\0" in head:
        return {}, []
    found, warnings = {}, []
    for number, line in enumerate(head.split(b"\n")[:c.HEADER_LINES], 1):
        where = f"{path}:{number}"
        match = HEADER_RE.match(line)
        if not match:
            if NEAR_HEADER_RE.match(line):
                warnings.append(f"{where}: looks like a header directive but is not one "
                                "(write '# hookrun: key=value')")
            continue
        for token in match.group(1).decode("utf-8", "replace").split():
            key, sep, value = token.partition("=")
            if not sep or not value:
                raise ConfigError(f"{where}: expected key=value in header, got {token!r}")
            setting, parsed = hook_setting(normalise_key(key), value, kind, where)
            found[setting] = (parsed, number)
    return found, warnings


def effective_settings(kind, header, section, config, overrides):
    """Merge the layers into HookSettings for a hook of phase ``kind`` (``pre``, ``post``, ...).

    ``header`` maps setting -> (value, line); ``section`` is the config's [hook ...] dict (or
    {}); ``overrides`` holds command-line values, e.g. {"timeout": 60.0}.
    """
    builtin = {"on_failure": "stop" if kind == c.PHASE_PRE else "warn",
               "timeout": c.DEFAULT_TIMEOUT, "retries": 0,
               "retry_delay": c.DEFAULT_RETRY_DELAY, "when": "ran", "events": None}
    merged = dict(builtin)
    merged.update({k: config.get(k) for k in DEFAULTABLE_HOOK_KEYS if config.get(k) is not None})
    merged.update({k: value for k, (value, _line) in header.items()})
    merged.update(section)
    merged.update({k: v for k, v in overrides.items() if v is not None})
    return HookSettings(on_failure=merged["on_failure"], timeout=merged["timeout"],
                        retries=merged["retries"], retry_delay=merged["retry_delay"],
                        when=merged["when"] if kind == c.PHASE_POST else None,
                        events=merged["events"])


def describe(settings):
    """A hook's effective settings as ``list`` and ``-v`` show them."""
    text = (f"on-failure={settings.on_failure} timeout={format_duration(settings.timeout)} "
            f"retries={settings.retries}")
    if settings.retries:
        text += f" retry-delay={format_duration(settings.retry_delay)}"
    if settings.when:
        text += f" when={settings.when}"
    if settings.events:
        text += f" events={','.join(settings.events)}"
    return text


def retry_delays(first, retries):
    """The wait before each retry: ``first``, doubling, at most MAX_RETRY_DELAY."""
    return [min(first * 2 ** n, c.MAX_RETRY_DELAY) for n in range(retries)]
