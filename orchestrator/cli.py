"""Command-line parsing: options -> one call -> exit status. Known errors become one line on
stderr with their documented status; a traceback only with --debug.

Every option is declared once, in the tables below, and three readers are built from them:
``prepare``, which finds hookrun's own options (before or after the subcommand) and never the
command's; ``parse``, which reads an ordinary command line; and argparse, which reads
everything else (help, abbreviations, mistakes) and explains what is wrong. Importing argparse
and building its parsers would cost more than the rest of hookrun's start-up.
"""

from __future__ import annotations

import gc
import os
import sys
from types import SimpleNamespace

from orchestrator import __version__
from orchestrator import constants as c
from orchestrator.errors import HookrunError, UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse

    # Parsed arguments: parse()'s for an ordinary command line, argparse's for the rest;
    # an option's attribute is named by destination().
    Arguments = argparse.Namespace | SimpleNamespace

INTERNAL_ERROR = 70
# Collect young objects after this many allocations rather than 700: hookrun makes few
# objects that refer to each other, and its start-up makes many that live as long as it does.
YOUNG_COLLECTION_THRESHOLD = 10_000
MAX_COUNT = 1_000_000
STAY_FIRST = ("-h", "--help", "--version")  # top-level options, never moved

COMMON = (
    (("-d", "--hooks-dir"), {"metavar": "DIR", "action": "append",
                             "help": "hooks directory, repeatable: later ones override earlier "
                             "ones (default $HOOKRUN_DIR, a colon list; for root "
                             "/usr/lib/hookrun then /etc/hookrun; else "
                             "$XDG_CONFIG_HOME/hookrun)"}),
    (("-c", "--config"), {"metavar": "FILE",
                          "help": "config file (default HOOKS_DIR/hookrun.conf)"}),
    (("--state-dir",), {"metavar": "DIR",
                        "help": "state directory (history, locks, cleanup journals)"}),
    (("-e", "--event"), {"metavar": "EVENT", "help": "event name (default backup)"}),
    (("--log-file",), {"metavar": "FILE", "help": "log file ('' for none)"}),
    (("--timeout",), {"metavar": "DURATION", "help": "timeout of every hook"}),
    (("--stall-timeout",), {"metavar": "DURATION",
                            "help": "a hook or the command that prints nothing for this long "
                            "is timed out (default none)"}),
    (("--kill-grace",), {"metavar": "DURATION",
                         "help": "wait between SIGTERM and SIGKILL (default 10s)"}),
    (("--insecure",), {"action": "store_true",
                       "help": "warn about unsafe permissions instead of refusing to run"}),
    (("--color",), {"choices": ("auto", "always", "never"), "default": "auto",
                    "help": "colour the terminal output (default auto)"}),
    (("-q", "--quiet"), {"action": "store_true", "help": "print only failures and the summary"}),
    (("-v", "--verbose"), {"action": "store_true",
                           "help": "print settings and skip decisions too"}),
    (("--json",), {"action": "store_true", "help": "JSON output where it applies"}),
    (("--debug",), {"action": "store_true", "help": "show tracebacks of errors"}),
)
WAIT = (("--wait",), {"nargs": "?", "const": "inf", "metavar": "DURATION",
                      "help": "wait for the event's lock: for ever, or up to DURATION "
                              "(--wait 1s or --wait=1s)"})
RUN = COMMON + (
    (("--no-hooks",), {"action": "store_true",
                       "help": "run only the command (emergency): no hook directory is read"}),
    (("--dry-run",), {"action": "store_true",
                      "help": "print the plan and the command; run only the hooks with "
                              "dry-run=yes (HOOKRUN_DRY_RUN=1), never the command, and "
                              "record nothing"}),
    WAIT,
    (("--command-timeout",), {"metavar": "DURATION",
                              "help": "timeout of the command (default none; expiry exits 124)"}),
    (("--metrics-file",), {"metavar": "FILE",
                           "help": "Prometheus textfile to write ('' for none)"}),
    (("--notify-url",), {"metavar": "URL", "help": "healthchecks-style URL to ping"}),
    (("--metrics-push-url",), {"metavar": "URL",
                               "help": "Prometheus Pushgateway to push the metrics to"}),
    (("--trigger",), {"metavar": "NAME",
                      "help": "who started this run, e.g. timer (default manual when stdin is "
                              "a terminal, else scheduled)"}),
)
COMMAND = {"nargs": "...", "metavar": "COMMAND [ARG...]"}
RUN_STATUSES = ("success", "warning", "failure", "skipped", "interrupted", "running")
SINCE = (("--since",), {"metavar": "DURATION",
                        "help": "only runs started this long ago or later (e.g. 7d, 12h, 30m)"})
COMPLETION_SHELLS = ("bash",)
# name: (help, options, positionals as (dest, add_argument keywords))
SUBCOMMANDS = {
    "run": ("run the hooks around a command", RUN, (("command", COMMAND),)),
    "list": ("print the plan, phase by phase",
             COMMON + ((("--all",), {"action": "store_true", "help": "show skipped files too"}),),
             ()),
    "check": ("check the hooks tree and config", COMMON, ()),
    "phase": ("run one phase directory", COMMON + (
        (("--status",), {"choices": ("success", "failure", "not-run"), "default": "success",
                         "help": "the command status post- hooks see (default success)"}),
        (("--only",), {"metavar": "NAME", "action": "append",
                       "help": "run only this hook of the directory (repeatable)"}),
        (("--dry-run",), {"action": "store_true",
                          "help": "run only the hooks with dry-run=yes (HOOKRUN_DRY_RUN=1)"}),
        WAIT), (("phase_dir", {"metavar": "PHASE-DIR", "help": "e.g. pre-backup or finally"}),)),
    "defer": ("register a cleanup (inside a hook only)", (), (("command", COMMAND),)),
    "recover": ("run the cleanups that crashed runs left pending", COMMON, ()),
    "history": ("list recent runs", COMMON + (
        (("-n",), {"type": "count", "default": 20, "metavar": "N",
                   "help": f"how many (default 20, at most {MAX_COUNT})"}),
        (("--status",), {"choices": RUN_STATUSES, "metavar": "STATUS",
                         "help": "only runs that ended so (" + ", ".join(RUN_STATUSES) + ")"}),
        SINCE), ()),
    "stats": ("runs, failures, durations and their trend, per event and per hook",
              COMMON + (SINCE,), ()),
    "show": ("show one run and its tasks", COMMON + (
        (("--output",), {"metavar": "PHASE/NAME",
                         "help": "print the whole output of one task, from the log file"}),),
        (("run_id", {"metavar": "RUN_ID|last|last~N"}),)),
    "completion": ("print the shell completion script", (),
                   (("shell", {"choices": COMPLETION_SHELLS, "metavar": "SHELL",
                               "help": "the shell: bash"}),)),
}


def is_flag(keywords):
    """Whether an option declared with ``keywords`` takes no value."""
    return keywords.get("action") == "store_true"


def takes_value(options, token):
    """Whether ``token`` is an option of ``options`` that takes the next word as its value."""
    for flags, keywords in options:
        if token in flags:
            return not is_flag(keywords) and "nargs" not in keywords
    return False


def known(token):
    """The options of any subcommand, for options given before the subcommand."""
    return any(token in flags for spec in SUBCOMMANDS.values() for flags, _kw in spec[1])


def prepare(argv):
    """(the subcommand or None, argv as argparse must see it, whether --debug was given).

    Options given before the subcommand move after it (``hookrun -d DIR run`` is ``hookrun
    run -d DIR``). ``--wait`` takes the next word as its value only when it reads as a
    duration: ``--wait 1s`` and ``--wait=1s`` mean the same, and a bare ``--wait`` before a
    command waits for ever. The command's own words are never looked at: ``--debug`` among
    them is the command's.
    """
    before, position = [], 0
    while position < len(argv) and argv[position].startswith("-") and argv[position] != "--":
        token = argv[position]
        width = 2 if known(token) and any(takes_value(spec[1], token)
                                           for spec in SUBCOMMANDS.values()) else 1
        before += argv[position:position + width]
        position += width
    first = [t for t in before if t in STAY_FIRST]
    moved = [t for t in before if t not in STAY_FIRST]
    if position >= len(argv) or argv[position] not in SUBCOMMANDS:
        return None, argv, "--debug" in before
    sub, rest = argv[position], argv[position + 1:]
    if sub == "defer":
        if moved:
            raise UsageError("defer: takes no options (hookrun defer [--] COMMAND [ARG...])")
        return sub, first + [sub] + rest, False
    options = SUBCOMMANDS[sub][1]
    own, position = [], 0
    while position < len(rest):
        token = rest[position]
        if token in ("--", "-") or (sub == "run" and not token.startswith("-")):
            break
        if token == "--wait":
            from orchestrator.plan.settings import looks_like_duration

            following = rest[position + 1] if position + 1 < len(rest) else ""
            given = following == following.strip() and looks_like_duration(following)
            wait_value = following if given else "inf"
            own.append(f"--wait={wait_value}")
            position += 2 if wait_value != "inf" else 1
            continue
        width = 2 if takes_value(options, token) else 1
        own += rest[position:position + width]
        position += width
    debug = "--debug" in moved + own
    return sub, first + [sub] + moved + own + rest[position:], debug


def count(text):
    """A whole number of runs, 0 to MAX_COUNT, for ``history -n``."""
    if valid_count(text):
        return int(text)
    import argparse

    shown = text if len(text) <= 40 else text[:40] + "..."
    raise argparse.ArgumentTypeError(f"invalid count {shown!r} (a whole number from 0 "
                                     f"to {MAX_COUNT})")


def destination(flags):
    """The attribute an option is stored in, named as argparse names it."""
    long = [flag for flag in flags if flag.startswith("--")]
    return (long or flags)[0].lstrip("-").replace("-", "_")


def parse(argv):
    """The arguments of an ordinary, prepared command line (``prepare``), as argparse's
    Namespace holds them; None for anything argparse must read: help, an unknown or
    abbreviated option, a value it would refuse."""
    if not argv or argv[0] not in SUBCOMMANDS:
        return None
    sub, words = argv[0], []
    _help, options, positionals = SUBCOMMANDS[sub]
    table = {flag: (destination(flags), keywords) for flags, keywords in options
             for flag in flags}
    values = {dest: keywords.get("default", False if is_flag(keywords) else None)
              for dest, keywords in table.values()}
    remainder = positionals and positionals[-1][1] is COMMAND
    position = 1
    while position < len(argv):
        token = argv[position]
        if remainder and (token in ("--", "-") or not token.startswith("-")):
            words += argv[position:]
            break
        if token == "--":  # argparse's reading of it depends on what came before
            return None
        if not token.startswith("-") or token == "-":
            words.append(token)
            position += 1
            continue
        name, equals, value = token.partition("=") if token.startswith("--") else (token, "", "")
        if name not in table:
            return None
        dest, keywords = table[name]
        position += 1
        if is_flag(keywords):
            if equals:
                return None
            values[dest] = True
            continue
        if not equals:
            if position >= len(argv):
                return None
            value = argv[position]
            position += 1
        if not acceptable(value, keywords):
            return None
        if keywords.get("action") == "append":
            values[dest] = (values[dest] or []) + [value]
        else:
            values[dest] = count(value) if keywords.get("type") == "count" else value
    if remainder:
        values[positionals[0][0]] = words
    elif len(words) == len(positionals) and all(
            word in keywords.get("choices", (word,))
            for word, (_dest, keywords) in zip(words, positionals)):
        values.update(zip((dest for dest, _keywords in positionals), words))
    else:
        return None
    return SimpleNamespace(subcommand=sub, **values)


def acceptable(value, keywords):
    """Whether argparse would take ``value`` for an option declared with ``keywords``."""
    if value.startswith("-") or value not in keywords.get("choices", (value,)):
        return False
    return keywords.get("type") != "count" or valid_count(value)


def valid_count(text):
    """Whether ``text`` is ASCII digits (str.isdigit() also takes "²", which int() refuses,
    and "٣", which it reads as 3) for a number up to MAX_COUNT."""
    digits = text.strip()
    return (digits.isascii() and digits.isdigit() and len(digits.lstrip("0")) <= 7
            and int(digits) <= MAX_COUNT)


def build_parser(only=None):
    """The argparse parser; with ``only``, that subcommand's alone (the others cost time)."""
    import argparse

    known = set()  # every option of every subcommand, for "did you mean"

    class Parser(argparse.ArgumentParser):
        """argparse whose errors are one line and exit status 2, that takes no abbreviated
        option (``--dry`` for ``--dry-run`` would silently change meaning the day another
        option starts the same way) and suggests the option meant."""

        def __init__(self, *args, **kwargs):
            kwargs["allow_abbrev"] = False
            super().__init__(*args, **kwargs)

        def error(self, message):
            # main() prefixes "hookrun: "; a subcommand's parser adds its own name.
            _, _, sub = self.prog.partition(" ")
            raise UsageError(f"{sub + ': ' if sub else ''}{message}{suggestion(message, known)}"
                             " (see --help)")

    parser = Parser(prog="hookrun", description="Run drop-in hook scripts around a backup "
                    "command, with cleanups that always run.")
    parser.add_argument("--version", action="version", version=f"hookrun {__version__}")
    # Not "COMMAND": that is the backup command hookrun runs.
    subparsers = parser.add_subparsers(dest="subcommand", metavar="SUBCOMMAND",
                                       parser_class=Parser)
    subparsers.required = True
    for name, (text, options, positionals) in SUBCOMMANDS.items():
        if only not in (None, name):
            continue
        sub = subparsers.add_parser(name, help=text)
        for flags, keywords in options:
            known.update(flag for flag in flags if flag.startswith("--"))
            if keywords.get("type") == "count":
                keywords = dict(keywords, type=count)
            sub.add_argument(*flags, **keywords)
        for dest, keywords in positionals:
            sub.add_argument(dest, **keywords)
    return parser


def suggestion(message, known):
    """`` (did you mean --dry-run?)`` for an unrecognized ``--option`` in argparse's
    ``message`` that is close to one of ``known``; else ""."""
    if "unrecognized arguments: " not in message:
        return ""
    import difflib

    meant = []
    for word in message.split("unrecognized arguments: ", 1)[1].split():
        if word.startswith("--"):
            meant += difflib.get_close_matches(word.split("=", 1)[0], sorted(known), n=1,
                                               cutoff=0.7)
    return f" (did you mean {' or '.join(dict.fromkeys(meant))}?)" if meant else ""


def command():
    """hookrun as a process (its script and ``python -m orchestrator``): main(), then exit.
    Every file and the history are closed when main() returns, so after flushing the two
    standard streams the process ends at once: interpreter shutdown, which tears down every
    module one by one, would add a tenth of a short run's time and change nothing."""
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, *gc.get_threshold()[1:])
    status = main()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe or stream: what it missed is lost anyway
            pass
    os._exit(status)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = False
    try:
        sub, argv, debug = prepare(argv)
        args = parse(argv) or build_parser(only=sub).parse_args(argv)
        from orchestrator.commands import HANDLERS

        return HANDLERS[args.subcommand](args)
    except HookrunError as error:
        if debug:
            raise
        from orchestrator.text import display_name

        # One line per problem: an unsafe tree names every unsafe path. Each is escaped
        # whole: a message may quote a file name or a config line as it is.
        say("\n".join(f"hookrun: {display_name(line)}" for line in str(error).split("\n")))
        return error.exit_status
    except KeyboardInterrupt:
        return c.SIGNAL_EXIT_BASE + 2
    except BrokenPipeError:
        return c.EXIT_OK
    except Exception as error:  # noqa: BLE001 - one line instead of a traceback, as promised
        if debug:
            raise
        say(f"hookrun: internal error: {type(error).__name__}: {error} (rerun with --debug "
            "for details)")
        return INTERNAL_ERROR


def say(text):
    """One or more lines on stderr; an stderr that cannot take them changes no exit status."""
    try:
        print(text, file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass
