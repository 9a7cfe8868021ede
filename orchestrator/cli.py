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
    from collections.abc import Callable, Iterable, Mapping, Sequence
    from typing import Any, NoReturn

    # add_argument's keyword arguments: each keyword's type is argparse's for it.
    Keywords = dict[str, Any]
    Options = tuple[tuple[tuple[str, ...], Keywords], ...]  # (flags, keywords) of each
    Positionals = tuple[tuple[str, Keywords], ...]  # (attribute, keywords) of each
    # Parsed arguments: parse()'s for an ordinary command line, argparse's for the rest;
    # an option's attribute is named by destination().
    Arguments = argparse.Namespace | SimpleNamespace

INTERNAL_ERROR = c.EXIT_INTERNAL
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
SUBCOMMANDS: dict[str, tuple[str, Options, Positionals]] = {
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


def is_flag(keywords: Keywords) -> bool:
    """Whether an option declared with ``keywords`` takes no value."""
    return keywords.get("action") == "store_true"


def takes_value(options: Options, token: str) -> bool:
    """Whether ``token`` is an option of ``options`` that takes the next word as its value."""
    for flags, keywords in options:
        if token in flags:
            return not is_flag(keywords) and "nargs" not in keywords
    return False


def known(token: str) -> bool:
    """The options of any subcommand, for options given before the subcommand."""
    return any(token in flags for spec in SUBCOMMANDS.values() for flags, _kw in spec[1])


def takes_value_anywhere(token: str) -> bool:
    """Whether ``token``, given before the subcommand, is an option that takes the next word
    as its value in some subcommand."""
    return known(token) and any(takes_value(spec[1], token) for spec in SUBCOMMANDS.values())


def leading_options(argv: list[str]) -> tuple[list[str], int]:
    """The options (with their values) that ``argv`` starts with, before any subcommand; and
    the position of the first word after them."""
    before: list[str] = []
    position = 0
    while position < len(argv) and argv[position].startswith("-") and argv[position] != "--":
        words, width = option_at(argv, position, takes_value_anywhere)
        before += words
        position += width
    return before, position


def wait_option(following: str) -> tuple[str, int]:
    """``--wait`` as argparse must see it, given the word ``following`` it ("" if none):
    ``--wait=DURATION`` when that word reads as a duration, else ``--wait=inf``; and how
    many words that took."""
    from orchestrator.plan.values import looks_like_duration

    given = following == following.strip() and looks_like_duration(following)
    wait_value = following if given else "inf"
    return f"--wait={wait_value}", 2 if wait_value != "inf" else 1


def option_at(argv: list[str], position: int,
              takes: Callable[[str], bool]) -> tuple[list[str], int]:
    """The option at ``argv[position]`` as argparse must see it, with its value if it takes
    one (``takes`` says which do), and how many words that took. ``--wait`` is spelled with
    its value (wait_option): one decision, before the subcommand and after it."""
    if argv[position] == "--wait":
        following = argv[position + 1] if position + 1 < len(argv) else ""
        word, width = wait_option(following)
        return [word], width
    width = 2 if takes(argv[position]) else 1
    return argv[position:position + width], width


def ends_own_options(sub: str, token: str) -> bool:
    """Whether ``token`` ends the subcommand ``sub``'s options: ``--``, ``-``, or for ``run``
    the command's first word."""
    return token in ("--", "-") or (sub == "run" and not token.startswith("-"))


def own_options(sub: str, rest: list[str]) -> tuple[list[str], int]:
    """The options of the subcommand ``sub`` that ``rest`` (the words after it) starts with,
    ``--wait`` spelled with its value; and the position of the first word after them."""
    options = SUBCOMMANDS[sub][1]
    own: list[str] = []
    position = 0
    while position < len(rest) and not ends_own_options(sub, rest[position]):
        words, width = option_at(rest, position, lambda token: takes_value(options, token))
        own += words
        position += width
    return own, position


def prepare(argv: list[str]) -> tuple[str | None, list[str], bool]:
    """(the subcommand or None, argv as argparse must see it, whether --debug was given).

    Options given before the subcommand move after it (``hookrun -d DIR run`` is ``hookrun
    run -d DIR``). ``--wait`` takes the next word as its value only when it reads as a
    duration: ``--wait 1s`` and ``--wait=1s`` mean the same, and a bare ``--wait`` before a
    command waits for ever. The command's own words are never looked at: ``--debug`` among
    them is the command's.
    """
    before, position = leading_options(argv)
    first = [t for t in before if t in STAY_FIRST]
    moved = [t for t in before if t not in STAY_FIRST]
    if position >= len(argv) or argv[position] not in SUBCOMMANDS:
        return None, argv, "--debug" in before
    sub, rest = argv[position], argv[position + 1:]
    if sub == "defer":
        if moved:
            raise UsageError("defer: takes no options (hookrun defer [--] COMMAND [ARG...])")
        return sub, first + [sub] + rest, False
    own, position = own_options(sub, rest)
    debug = "--debug" in moved + own
    return sub, first + [sub] + moved + own + rest[position:], debug


def count(text: str) -> int:
    """A whole number of runs, 0 to MAX_COUNT, for ``history -n``."""
    if valid_count(text):
        return int(text)
    import argparse

    shown = text if len(text) <= 40 else text[:40] + "..."
    raise argparse.ArgumentTypeError(f"invalid count {shown!r} (a whole number from 0 "
                                     f"to {MAX_COUNT})")


def destination(flags: Sequence[str]) -> str:
    """The attribute an option is stored in, named as argparse names it."""
    long = [flag for flag in flags if flag.startswith("--")]
    return (long or flags)[0].lstrip("-").replace("-", "_")


def option_table(options: Options) -> dict[str, tuple[str, Keywords]]:
    """{flag: (the attribute it is stored in, its keywords)} of every flag of ``options``."""
    return {flag: (destination(flags), keywords) for flags, keywords in options
            for flag in flags}


def split_option(token: str) -> tuple[str, str, str]:
    """(name, "=" or "", value) of an option word: only a long option carries its value."""
    return token.partition("=") if token.startswith("--") else (token, "", "")


def store(values: dict[str, Any], dest: str, keywords: Keywords, value: str) -> None:
    """Put an option's ``value`` in ``values`` as argparse would: appended, counted or as
    it is."""
    if keywords.get("action") == "append":
        values[dest] = (values[dest] or []) + [value]
    else:
        values[dest] = count(value) if keywords.get("type") == "count" else value


def read_option(argv: list[str], position: int, table: Mapping[str, tuple[str, Keywords]],
                values: dict[str, Any]) -> int | None:
    """Read the option at ``argv[position]`` (with its value) into ``values``; the position
    after it, or None when argparse must read it (unknown, a flag given a value, a missing or
    refused value)."""
    name, equals, value = split_option(argv[position])
    if name not in table:
        return None
    dest, keywords = table[name]
    if is_flag(keywords):
        if equals:
            return None
        values[dest] = True
        return position + 1
    if not equals:
        if position + 1 >= len(argv):
            return None
        position += 1
        value = argv[position]
    if not acceptable(value, keywords):
        return None
    store(values, dest, keywords, value)
    return position + 1


def starts_remainder(token: str) -> bool:
    """Whether ``token`` starts the words of a command (``run``'s, ``defer``'s)."""
    return token in ("--", "-") or not token.startswith("-")


def is_positional(token: str) -> bool:
    return not token.startswith("-") or token == "-"


def read_words(argv: list[str], table: Mapping[str, tuple[str, Keywords]],
               values: dict[str, Any], remainder: bool) -> list[str] | None:
    """Read the options of ``argv`` (after the subcommand) into ``values``; the positional
    words (with ``remainder``, from the command's first word on), or None when argparse must
    read the line."""
    words: list[str] = []
    position = 1
    while position < len(argv):
        token = argv[position]
        if remainder and starts_remainder(token):
            return words + argv[position:]
        if token == "--":  # argparse's reading of it depends on what came before
            return None
        if is_positional(token):
            words.append(token)
            position += 1
            continue
        after = read_option(argv, position, table, values)
        if after is None:
            return None
        position = after
    return words


def positional_values(positionals: Positionals, words: list[str],
                      remainder: bool) -> dict[str, Any] | None:
    """{attribute: value} of the positional ``words``, or None when argparse must read them
    (too few, too many, not one of the choices)."""
    if remainder:
        return {positionals[0][0]: words}
    if len(words) == len(positionals) and all(
            word in keywords.get("choices", (word,))
            for word, (_dest, keywords) in zip(words, positionals)):
        return dict(zip((dest for dest, _keywords in positionals), words))
    return None


def parse(argv: list[str]) -> SimpleNamespace | None:
    """The arguments of an ordinary, prepared command line (``prepare``), as argparse's
    Namespace holds them; None for anything argparse must read: help, an unknown or
    abbreviated option, a value it would refuse."""
    if not argv or argv[0] not in SUBCOMMANDS:
        return None
    sub = argv[0]
    _help, options, positionals = SUBCOMMANDS[sub]
    table = option_table(options)
    values = {dest: keywords.get("default", False if is_flag(keywords) else None)
              for dest, keywords in table.values()}
    remainder = bool(positionals) and positionals[-1][1] is COMMAND
    words = read_words(argv, table, values, remainder)
    found = None if words is None else positional_values(positionals, words, remainder)
    if found is None:
        return None
    values.update(found)
    return SimpleNamespace(subcommand=sub, **values)


def acceptable(value: str, keywords: Keywords) -> bool:
    """Whether argparse would take ``value`` for an option declared with ``keywords``."""
    if value.startswith("-") or value not in keywords.get("choices", (value,)):
        return False
    return keywords.get("type") != "count" or valid_count(value)


def valid_count(text: str) -> bool:
    """Whether ``text`` is ASCII digits (str.isdigit() also takes "²", which int() refuses,
    and "٣", which it reads as 3) for a number up to MAX_COUNT."""
    digits = text.strip()
    return (digits.isascii() and digits.isdigit() and len(digits.lstrip("0")) <= 7
            and int(digits) <= MAX_COUNT)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The argparse parser; with ``only``, that subcommand's alone (the others cost time)."""
    import argparse

    known: set[str] = set()  # every option of every subcommand, for "did you mean"

    class Parser(argparse.ArgumentParser):
        """argparse whose errors are one line and exit status 2, that takes no abbreviated
        option (``--dry`` for ``--dry-run`` would silently change meaning the day another
        option starts the same way) and suggests the option meant."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["allow_abbrev"] = False
            super().__init__(*args, **kwargs)

        def error(self, message: str) -> NoReturn:
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


def suggestion(message: str, known: Iterable[str]) -> str:
    """`` (did you mean --dry-run?)`` for an unrecognized ``--option`` in argparse's
    ``message`` that is close to one of ``known``; else ""."""
    if "unrecognized arguments: " not in message:
        return ""
    import difflib

    meant: list[str] = []
    for word in message.split("unrecognized arguments: ", 1)[1].split():
        if word.startswith("--"):
            meant += difflib.get_close_matches(word.split("=", 1)[0], sorted(known), n=1,
                                               cutoff=0.7)
    return f" (did you mean {' or '.join(dict.fromkeys(meant))}?)" if meant else ""


def command() -> NoReturn:
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


def main(argv: Iterable[str] | None = None) -> int:
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
        # whole: a message may quote a file name, a value or a config line as it is.
        say("\n".join(f"hookrun: {display_name(line)}" for line in error.lines))
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


def say(text: str) -> None:

    """One or more lines on stderr; an stderr that cannot take them changes no exit status."""
    try:
        print(text, file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass
