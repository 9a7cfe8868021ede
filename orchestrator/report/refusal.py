"""A run refused before it started, for a reason that refuses every later run too (design.md
section 10, "A refused run is seen"): the state directory, log or lock cannot be created
(73), unsafe permissions (77), a configuration error (78). Such a run still sets
``hookrun_last_refused_timestamp_seconds`` in the metrics file and at the Pushgateway, and
pings URL``/fail`` with its error, so that the night it refuses is not seen a day later, by
the staleness alert.
The error itself still ends the command, with its own exit status.

Where to write, push and ping is taken only from what is known and trusted: the command line, and
the config file if it could be read and passes the permission checks of section 5 (or they
are off), as a run would trust it. A config file that another user can write never chooses
where root writes or what it sends.
"""

from __future__ import annotations

import os
import time
from collections import namedtuple

from orchestrator import constants as c

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

    from orchestrator.cli import Arguments
    from orchestrator.errors import HookrunError
    from orchestrator.plan.context import Context
    from orchestrator.plan.settings import Config

REASONS = {c.EXIT_CANT_CREATE: "state", c.EXIT_UNSAFE: "unsafe", c.EXIT_CONFIG: "config"}

Known = namedtuple("Known", "event metrics_file notify_url metrics_push_url")
Known.__doc__ = """Where a refused run's event is reported: its metrics file, notify URL and
Pushgateway (None: not known)."""


def report(args: Arguments, ctx: Context | None, error: HookrunError) -> None:
    """Make the refusal ``error`` (a HookrunError) seen, if its exit status is one of
    REASONS; ``ctx`` is the run's Context, or None when building it failed. Failures to write
    or ping are warnings on stderr; nothing here raises."""
    reason = REASONS.get(error.exit_status)
    if reason is None:
        return
    try:
        warnings = tell(known_settings(args, ctx), reason, error)
    except Exception as problem:  # noqa: BLE001 - the refusal's own exit status must stand
        warnings = [f"cannot report the refused run: {type(problem).__name__}: {problem}"]
    from orchestrator.report.printer import Console

    console = Console(getattr(args, "color", None) or "auto")
    for warning in filter(None, warnings):
        console.warn(warning)


def tell(known: Known, reason: str, error: HookrunError) -> list[str | None]:
    """Write the refusal to the metrics file, push it and ping URL/fail, as far as ``known``
    says where; returns the warnings (None for none)."""
    warnings: list[str | None] = []
    when = round(time.time(), 3)
    if known.metrics_file:
        from orchestrator.report.metrics import write_refused

        try:
            warnings.append(write_refused(known.metrics_file, known.event, reason, when))
        except OSError as problem:
            from orchestrator.report.output import metrics_not_written

            warnings.append(metrics_not_written(known.metrics_file, problem))
    if known.metrics_push_url:
        from orchestrator.report import pushgateway

        warnings.append(pushgateway.push_refused(known.metrics_push_url, known.event, reason,
                                                 when))
    if known.notify_url:
        from orchestrator.report import notify

        warnings.append(notify.ping(known.notify_url, "/fail", message(error)))
    return warnings


def message(error: HookrunError) -> bytes:
    """The body of the ``/fail`` ping: the error as stderr shows it, one line per problem,
    control characters escaped so that no line can be forged."""
    from orchestrator.text import display_name, whole_characters

    lines: list[str] = [f"hookrun: {display_name(line)}" for line in error.lines]
    return whole_characters("\n".join(lines).encode("utf-8", "replace"), c.NOTIFY_MAX_BODY)


def known_settings(args: Arguments, ctx: Context | None) -> Known:
    """The Known of a refused run, from the command line and a trusted config file."""
    given: dict[str, object] = {"metrics_file": getattr(args, "metrics_file", None),
             "notify_url": url_option(getattr(args, "notify_url", None)),
             "metrics_push_url": url_option(getattr(args, "metrics_push_url", None))}
    if getattr(args, "insecure", False):
        given["strict_permissions"] = False
    config = ctx.config if ctx is not None else readable_config(args)
    layers: list[Mapping[str, object]] = [given]
    if config is not None and trusted(config, given):
        layers.append(config.values)
    from orchestrator.plan.settings import resolve

    metrics_file = resolve("metrics_file", layers)
    event = ctx.event if ctx is not None else getattr(args, "event", None) or c.DEFAULT_EVENT
    return Known(event, os.path.abspath(metrics_file) if metrics_file else None,
                 resolve("notify_url", layers) or None,
                 resolve("metrics_push_url", layers) or None)


def url_option(text: str | None) -> str | None:
    """``--notify-url`` or ``--metrics-push-url`` parsed; None when absent or not a URL (a
    run stops at a bad one with a usage error before any refusal, unless the config failed
    first)."""
    if text is None:
        return None
    from orchestrator.plan.values import parse_url

    try:
        url: str = parse_url(text)
    except ValueError:
        return None
    return url


def readable_config(args: Arguments) -> Config | None:
    """The config file a run would have read, when building its Context failed: None if it
    cannot be read or parsed (then only the command line is known)."""
    from orchestrator.errors import ConfigError
    from orchestrator.plan.context import config_path_in, find_hooks_dirs
    from orchestrator.plan.settings import load_config

    path = getattr(args, "config", None)
    try:
        config: Config = load_config(
            path or config_path_in(find_hooks_dirs(args, required=False)), required=bool(path))
    except ConfigError:
        return None
    return config


def trusted(config: Config, given: Mapping[str, object]) -> bool:
    """Whether a run would trust ``config``: no file, permission checks off, or the file and
    every directory above it pass them."""
    if config.path is None:
        return True
    from orchestrator.plan.settings import resolve

    if not resolve("strict_permissions", (given, config.values), True):
        return True
    from orchestrator.plan.safety import Checker

    checker = Checker()
    checker.check(os.path.abspath(config.path))
    return not checker.problems
