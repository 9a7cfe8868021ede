"""One function per subcommand: parsed arguments -> the work -> exit status. Each imports
what it needs, so that a subcommand pays only for its own modules."""

from __future__ import annotations

import os

from orchestrator import constants as c
from orchestrator.errors import HookrunError, StateError, UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from orchestrator.cli import Arguments
    from orchestrator.plan.context import Context, Problem
    from orchestrator.run import Run
    from orchestrator.state.history import History


def strip_separator(command: list[str]) -> list[str]:
    return command[1:] if command and command[0] == "--" else command


def wait_seconds(value: str | None) -> float | None:
    if value is None:
        return None
    if value == "inf":
        return float("inf")
    from orchestrator.plan.context import parse_option
    from orchestrator.plan.values import parse_duration

    return parse_option(value, parse_duration, "wait")


def run(args: Arguments) -> int:
    from orchestrator.plan.context import build_context
    from orchestrator.run import Run

    command = strip_separator(args.command)
    if command and not command[0]:
        raise UsageError("run: the command's name is empty")
    if not command:
        raise UsageError("run: needs a command (hookrun run [OPTIONS] -- COMMAND [ARG...]): "
                         "without one it would back up nothing, yet count as a success; to "
                         "run the hooks of one directory alone, use 'hookrun phase'")
    ctx: Context | None = None
    runner: Run | None = None
    try:
        ctx = build_context(args, need_hooks=not args.no_hooks,
                            refuse_unsafe_config=False)
        runner = Run(ctx, command, no_hooks=args.no_hooks, dry_run=args.dry_run,
                     wait=wait_seconds(args.wait))
        return runner.execute()
    except HookrunError as error:
        # A run refused for a reason that refuses every later run too is made seen
        # (design.md section 10); a dry run only shows what would happen.
        if not args.dry_run and not (runner and runner.started):
            from orchestrator.report.refusal import report

            report(args, ctx, error)
        raise


def list_plan(args: Arguments) -> int:
    from orchestrator.plan import context, discovery
    from orchestrator.report import printer

    ctx = context.build_context(args)
    plan = context.load_plan(ctx, discovery.phase_dirs(ctx.event), check=False)
    printer.print_warnings(plan.warnings)
    if args.json:
        printer.dump_json(printer.plan_items(plan.phases, show_all=args.all))
    else:
        printer.print_plan(plan.phases, show_all=args.all, origins=len(ctx.hooks_dirs) > 1)
    return c.EXIT_OK


def check(args: Arguments) -> int:
    from orchestrator.plan import context
    from orchestrator.report import printer

    try:
        ctx = context.build_context(args, refuse_unsafe_config=False)
        errors, unsafe, problems, warnings = context.check_tree(ctx, all_events=not args.event)
    except HookrunError as error:
        if not args.json or error.exit_status not in (c.EXIT_CONFIG, c.EXIT_UNSAFE):
            raise
        # check --json answers with its object whatever it finds (hookrun(8)): a monitor
        # that parses stdout must not read nothing as nothing wrong.
        printer.dump_json(printer.check_items([], [], [refusal_problem(args, error)], []))
        return error.exit_status
    if not ctx.strict:
        warnings = [f"unsafe permissions: {p.what} (fix: {p.fix})" for p in unsafe] + warnings
        unsafe = []
    if args.json:
        printer.dump_json(printer.check_items(errors, unsafe, problems, warnings))
    else:
        printer.print_check(ctx, errors, unsafe, problems, warnings)
    if errors:
        return c.EXIT_CONFIG
    if unsafe:
        return c.EXIT_UNSAFE
    return c.EXIT_CHECK_FAILED if problems else c.EXIT_OK


def refusal_problem(args: Arguments, error: HookrunError) -> Problem:
    """The problem ``check --json`` reports for an ``error`` that stopped the check (a bad
    config file, an unknown event, a missing hooks directory): about the file its message
    starts with (``FILE:LINE: ...``), else the hooks directory that is missing, else the
    last hooks directory, where the fix goes."""
    from orchestrator.plan import context
    from orchestrator.report.printer import error_file
    from orchestrator.text import display_name

    what = str(error)
    named = error_file(what)
    if named:
        return context.Problem(named, what, "")
    dirs = context.find_hooks_dirs(args, required=False)
    missing = [directory for directory in dirs if not os.path.isdir(directory)]
    return context.Problem(display_name((missing or dirs)[-1]), what, "")


def phase(args: Arguments) -> int:
    from orchestrator.plan import discovery
    from orchestrator.plan.context import build_context, require_known_event
    from orchestrator.run import phase_command
    from orchestrator.text import display_name

    found = discovery.phase_dir_named(args.phase_dir)
    if found is None:
        raise UsageError(f"phase: {args.phase_dir!r} is not a phase directory (pre-EVENT, "
                         "post-EVENT, on-error, on-success or finally)")
    implied = found[1]
    if implied and args.event and args.event != implied:
        # An unknown event is refused as run refuses it (78); a known one contradicts.
        require_known_event(build_context(args, event=args.event))
        raise UsageError(f"phase: {args.phase_dir} belongs to event {implied!r}, not "
                         f"{args.event!r}")
    ctx = build_context(args, event=implied)
    if args.event:
        require_known_event(ctx)  # before the directory: 78 whether or not it is there
    paths = [os.path.join(d, found[0].dirname) for d in ctx.hooks_dirs]
    # A directory hookrun cannot read, or a link loop, is no directory to run either.
    if not any(os.path.isdir(p) and discovery.phase_dir_kind(p) is None for p in paths):
        troubles = discovery.phase_dir_troubles(ctx.hooks_dirs, found[0])
        if troubles:
            path, what, _fix = troubles[-1]
            raise UsageError(f"phase: {display_name(path)} is {what}")
        raise UsageError(f"phase: there is no directory {found[0].dirname} in "
                         f"{':'.join(ctx.hooks_dirs)}{discovery.events_hint(ctx.hooks_dirs)}")
    return phase_command(ctx, found[0], args.status, wait_seconds(args.wait),
                         only=args.only or (), dry_run=args.dry_run)


def defer(args: Arguments) -> int:
    from orchestrator.state.cleanup import defer as register

    _line, warning = register(strip_separator(args.command), os.environ.get("HOOKRUN_CLEANUP"),
                              os.environ.get("HOOKRUN_CLEANUP_MARKS"))
    if warning:
        from orchestrator.report.printer import print_warnings

        print_warnings([warning])
    return c.EXIT_OK


def recover(args: Arguments) -> int:
    from orchestrator.plan.context import build_context
    from orchestrator.run import recover_command

    return recover_command(build_context(args, need_hooks=False))


def open_history(args: Arguments) -> tuple[Context, History]:
    from orchestrator.plan.context import build_context
    from orchestrator.state.history import DamagedHistory, History

    ctx = build_context(args, need_hooks=False)
    try:
        history = History.existing(os.path.join(ctx.state_dir, c.HISTORY_NAME))
    except DamagedHistory as error:
        raise HookrunError(f"{error} (the next run moves a damaged history aside)", 1) from None
    except StateError as error:
        raise HookrunError(str(error), 1) from None
    if history is None:
        try:
            os.lstat(os.path.join(ctx.state_dir, c.HISTORY_NAME))
        except PermissionError:
            raise HookrunError(f"cannot read the history in {ctx.state_dir}: permission denied "
                               "(another user's state directory: run as its owner, or give "
                               "--state-dir)", 1) from None
        except OSError:
            pass
        raise HookrunError(f"no history yet in {ctx.state_dir}", 1)
    return ctx, history


def since_seconds(text: str | None, command: str) -> float | None:
    """The Unix time ``--since DURATION`` ago: ``90``, ``90s``, ``30m``, ``12h``, ``7d``
    (plan.values.parse_duration with days); UsageError (2) for anything else."""
    if text is None:
        return None
    import time

    from orchestrator.plan.values import parse_duration

    try:
        return time.time() - parse_duration(text, days=True)
    except ValueError:
        from orchestrator.text import display_name

        raise UsageError(f"{command}: --since: bad duration {display_name(text)!r} (e.g. 7d, "
                         "12h, 30m, 90s)") from None


def history(args: Arguments) -> int:
    from orchestrator.report import printer

    since = since_seconds(args.since, "history")
    _ctx, found = open_history(args)
    runs = found.runs(args.event, args.n, status=args.status, since=since)
    if args.json:
        printer.dump_json(runs)
    else:
        printer.print_history(runs)
    return c.EXIT_OK


def stats(args: Arguments) -> int:
    """``hookrun stats``: runs, failures, success rate, median and p95 duration, the last
    failure and the last durations, per event and per hook."""
    from orchestrator.report import printer
    from orchestrator.report.trends import trends

    since = since_seconds(args.since, "stats")
    _ctx, found = open_history(args)
    result = trends(found.ended_runs(args.event, since), found.ended_tasks(args.event, since))
    if args.json:
        printer.dump_json(result)
    else:
        printer.print_trends(result)
    return c.EXIT_OK


def check_run_id(run_id: str) -> None:
    """UsageError (2) for a run id no run can have: empty, or not valid UTF-8 (a byte that
    the command line could not decode), which the history could not even be asked for."""
    if not run_id:
        raise UsageError("show: the run id is empty (give RUN_ID, last or last~N)")
    try:
        run_id.encode("utf-8")
    except UnicodeEncodeError:
        from orchestrator.text import display_name

        raise UsageError(f"show: the run id {display_name(run_id)!r} is not valid UTF-8 "
                         "(see hookrun history for the ids)") from None


def show(args: Arguments) -> int:
    from orchestrator.report import printer

    check_run_id(args.run_id)
    if args.output == "":
        raise UsageError("show: --output: an empty value is not a value (give PHASE/NAME)")
    ctx, found = open_history(args)
    record = found.get(args.run_id, args.event)
    if args.output:
        from orchestrator.report.logfile import print_task_output

        tasks = [f"{task['phase']}/{task['name']}" for task in record["tasks"]]
        if args.output not in tasks:
            raise HookrunError(f"show: run {record['id']} has no task {args.output} (its tasks: "
                               f"{', '.join(dict.fromkeys(tasks)) or 'none'})", 1)
        from orchestrator.files import log_target

        log = ctx.log_file
        try:
            log = log and log_target(log, ctx.state_dir)
        except OSError:
            log = None  # NotOwnFile: read through no link another user owns; nothing is found
        if not print_task_output(log, record["id"], args.output):
            raise HookrunError(f"no output of {args.output} in run {record['id']} in the log "
                               f"{ctx.log_file or '(off)'} (a task that printed nothing, a log "
                               "file that was off, or rotated away)", 1)
        return c.EXIT_OK
    if args.json:
        printer.dump_json(record)
    else:
        printer.print_run(record)
    return c.EXIT_OK


def completion(args: Arguments) -> int:
    """Print the completion script of ``args.shell``: a virtualenv install cannot put it where
    bash-completion looks, so the user redirects this output there (or sources it)."""
    import sys

    # Package data beside the code, also where a package manager installed the package.
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "contrib", "completion",
                        "hookrun")
    try:
        with open(path, "rb") as script:
            text = script.read()
    except OSError as error:
        raise HookrunError(f"completion: cannot read {path}: {error.strerror} (reinstall "
                           "hookrun)", 1) from None
    sys.stdout.flush()
    sys.stdout.buffer.write(text)
    return c.EXIT_OK


HANDLERS: dict[str, Callable[[Arguments], int]] = {
    "run": run, "list": list_plan, "check": check, "phase": phase, "defer": defer,
    "recover": recover, "history": history, "stats": stats, "show": show,
    "completion": completion}
