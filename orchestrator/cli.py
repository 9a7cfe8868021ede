"""Command-line parsing: options -> one call -> exit status. Known errors become one line on
stderr with their documented status; a traceback only with --debug."""

import argparse
import os
import sys

from orchestrator import __version__
from orchestrator import constants as c
from orchestrator.errors import HookrunError, StateError, UsageError

INTERNAL_ERROR = 70


class Parser(argparse.ArgumentParser):
    """argparse whose errors are one line and exit status 2."""

    def error(self, message):
        # main() prefixes "hookrun: "; a subcommand's parser adds its own name.
        _, _, sub = self.prog.partition(" ")
        raise UsageError(f"{sub + ': ' if sub else ''}{message} (see --help)")


def common_options():
    parent = Parser(add_help=False)
    parent.add_argument("-d", "--hooks-dir", metavar="DIR",
                        help="hooks directory (default $HOOKRUN_DIR, /etc/hookrun for root, "
                             "else $XDG_CONFIG_HOME/hookrun)")
    parent.add_argument("-c", "--config", metavar="FILE",
                        help="config file (default HOOKS_DIR/hookrun.conf)")
    parent.add_argument("--state-dir", metavar="DIR", help="state directory (history, locks, "
                        "cleanup journals)")
    parent.add_argument("-e", "--event", metavar="EVENT", help="event name (default backup)")
    parent.add_argument("--log-file", metavar="FILE", help="log file ('' for none)")
    parent.add_argument("--timeout", metavar="DURATION", help="timeout of every hook")
    parent.add_argument("--kill-grace", metavar="DURATION",
                        help="wait between SIGTERM and SIGKILL (default 10s)")
    parent.add_argument("--insecure", action="store_true",
                        help="warn about unsafe permissions instead of refusing to run")
    parent.add_argument("--color", choices=("auto", "always", "never"), default="auto",
                        help="colour the terminal output (default auto)")
    parent.add_argument("-q", "--quiet", action="store_true",
                        help="print only failures and the summary")
    parent.add_argument("-v", "--verbose", action="store_true",
                        help="print settings and skip decisions too")
    parent.add_argument("--json", action="store_true", help="JSON output where it applies")
    parent.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    return parent


def build_parser():
    parser = Parser(prog="hookrun", description="Run drop-in hook scripts around a backup "
                    "command, with cleanups that always run.")
    parser.add_argument("--version", action="version", version=f"hookrun {__version__}")
    sub = parser.add_subparsers(dest="subcommand", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    common = [common_options()]

    run = sub.add_parser("run", parents=common, help="run the hooks around a command")
    run.add_argument("--no-hooks", action="store_true",
                     help="run only the command (emergency): no hook directory is read")
    run.add_argument("--dry-run", action="store_true",
                     help="print the plan and the command, execute nothing")
    run.add_argument("--wait", nargs="?", const="inf", metavar="DURATION",
                     help="wait for the event's lock (for ever, or up to DURATION)")
    run.add_argument("--command-timeout", metavar="DURATION",
                     help="timeout of the command (default none; expiry exits 124)")
    run.add_argument("--metrics-file", metavar="FILE", help="Prometheus textfile to write")
    run.add_argument("--notify-url", metavar="URL", help="healthchecks-style URL to ping")
    run.add_argument("--metrics-push-url", metavar="URL",
                     help="Prometheus Pushgateway to push the metrics to")
    run.add_argument("command", nargs=argparse.REMAINDER, metavar="COMMAND [ARG...]")
    run.set_defaults(handler=do_run)

    listing = sub.add_parser("list", parents=common, help="print the plan, phase by phase")
    listing.add_argument("--all", action="store_true", help="show skipped files too")
    listing.set_defaults(handler=do_list)

    check = sub.add_parser("check", parents=common, help="check the hooks tree and config")
    check.set_defaults(handler=do_check)

    phase = sub.add_parser("phase", parents=common, help="run one phase directory")
    phase.add_argument("phase_dir", metavar="PHASE-DIR", help="e.g. pre-backup or finally")
    phase.add_argument("--status", choices=("success", "failure", "not-run"), default="success",
                       help="the command status post- hooks see (default success)")
    phase.add_argument("--wait", nargs="?", const="inf", metavar="DURATION",
                       help="wait for the event's lock")
    phase.set_defaults(handler=do_phase)

    defer = sub.add_parser("defer", help="register a cleanup (inside a hook only)")
    defer.add_argument("command", nargs=argparse.REMAINDER, metavar="COMMAND [ARG...]")
    defer.set_defaults(handler=do_defer)

    recover = sub.add_parser("recover", parents=common,
                             help="run the cleanups that crashed runs left pending")
    recover.set_defaults(handler=do_recover)

    history = sub.add_parser("history", parents=common, help="list recent runs")
    history.add_argument("-n", type=count, default=20, metavar="N",
                         help="how many (default 20)")
    history.set_defaults(handler=do_history)

    show = sub.add_parser("show", parents=common, help="show one run and its tasks")
    show.add_argument("run_id", metavar="RUN_ID|last")
    show.set_defaults(handler=do_show)
    return parser


MAX_COUNT = 1_000_000


def count(text):
    """A whole number of runs, 0 to MAX_COUNT, for ``history -n``."""
    if not text.strip().isdigit() or int(text) > MAX_COUNT:
        raise argparse.ArgumentTypeError(f"invalid count {text!r} (a whole number from 0 "
                                         f"to {MAX_COUNT})")
    return int(text)


def strip_separator(command):
    return command[1:] if command and command[0] == "--" else command


def wait_seconds(value):
    if value == "inf":
        return float("inf")
    from orchestrator.context import parse_option
    from orchestrator.settings import parse_duration

    return parse_option(value, parse_duration, "wait")


def do_run(args):
    from orchestrator.context import build_context
    from orchestrator.run import Run

    ctx = build_context(args, need_hooks=not args.no_hooks)
    run = Run(ctx, strip_separator(args.command), no_hooks=args.no_hooks, dry_run=args.dry_run,
              wait=wait_seconds(args.wait))
    return run.execute()


def do_list(args):
    from orchestrator import context, discovery, views

    ctx = context.build_context(args)
    planned, _problems = context.load_plan(ctx, discovery.phase_dirs(ctx.event), check=False)
    if args.json:
        views.dump_json(views.plan_items(planned, show_all=args.all))
    else:
        views.print_plan(planned, show_all=args.all)
    return c.EXIT_OK


def do_check(args):
    from orchestrator import context, views

    ctx = context.build_context(args)
    errors, problems, warnings = context.check_tree(ctx)
    views.print_check(ctx, errors, problems, warnings)
    if errors:
        return c.EXIT_CONFIG
    if problems and ctx.strict:
        return c.EXIT_UNSAFE
    return c.EXIT_OK


def do_phase(args):
    from orchestrator import discovery
    from orchestrator.context import build_context
    from orchestrator.run import phase_command

    found = discovery.phase_dir_named(args.phase_dir)
    if found is None:
        raise UsageError(f"phase: {args.phase_dir!r} is not a phase directory (pre-EVENT, "
                         "post-EVENT, on-error, on-success or finally)")
    implied = found[1]
    if implied and args.event and args.event != implied:
        raise UsageError(f"phase: {args.phase_dir} belongs to event {implied!r}, not "
                         f"{args.event!r}")
    ctx = build_context(args, event=implied)
    return phase_command(ctx, found[0], args.status, wait_seconds(args.wait))


def do_defer(args):
    from orchestrator.cleanup import defer

    defer(strip_separator(args.command), os.environ.get("HOOKRUN_CLEANUP"))
    return c.EXIT_OK


def do_recover(args):
    from orchestrator.context import build_context
    from orchestrator.run import recover_command

    return recover_command(build_context(args, need_hooks=False))


def open_history(args):
    from orchestrator.context import build_context
    from orchestrator.history import History

    ctx = build_context(args, need_hooks=False)
    try:
        history = History.existing(os.path.join(ctx.state_dir, c.HISTORY_NAME))
    except StateError as error:
        raise HookrunError(f"{error} (the next run moves a damaged history aside)", 1) from None
    if history is None:
        raise HookrunError(f"no history yet in {ctx.state_dir}", 1)
    return ctx, history


def do_history(args):
    from orchestrator import views

    ctx, history = open_history(args)
    runs = history.runs(args.event, args.n)
    if args.json:
        views.dump_json([views.public(run) for run in runs])
    else:
        views.print_history(runs)
    return c.EXIT_OK


def do_show(args):
    from orchestrator import views

    ctx, history = open_history(args)
    run = history.get(args.run_id, args.event)
    if args.json:
        views.dump_json(views.public(run))
    else:
        views.print_run(run)
    return c.EXIT_OK


VALUE_OPTIONS = {"-d", "--hooks-dir", "-c", "--config", "--state-dir", "-e", "--event",
                 "--log-file", "--timeout", "--kill-grace", "--color", "--command-timeout",
                 "--metrics-file", "--notify-url", "-n", "--status", "--metrics-push-url"}


def prepare(argv):
    """Let a bare ``--wait`` stand before the command: argparse would take the command's first
    word as its value. Only hookrun's own options are looked at, never the command's."""
    out = list(argv)
    position, seen_subcommand = 0, False
    while position < len(out):
        arg = out[position]
        if arg == "--":
            break
        if arg == "--wait":
            out[position] = "--wait=inf"
        elif arg in VALUE_OPTIONS:
            position += 1
        elif not arg.startswith("-"):
            if seen_subcommand:
                break
            seen_subcommand = True
        position += 1
    return out


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in argv
    try:
        args = build_parser().parse_args(prepare(argv))
        return args.handler(args)
    except HookrunError as error:
        if debug:
            raise
        # One line per problem: an unsafe tree names every unsafe path.
        print("\n".join(f"hookrun: {line}" for line in str(error).split("\n")),
              file=sys.stderr)
        return error.exit_status
    except KeyboardInterrupt:
        return c.SIGNAL_EXIT_BASE + 2
    except BrokenPipeError:
        return c.EXIT_OK
    except Exception as error:  # noqa: BLE001 - one line instead of a traceback, as promised
        if debug:
            raise
        print(f"hookrun: internal error: {type(error).__name__}: {error} (rerun with --debug "
              "for details)", file=sys.stderr)
        return INTERNAL_ERROR
