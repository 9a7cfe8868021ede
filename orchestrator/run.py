"""The lifecycle of ``hookrun run`` (design.md section 2), and of ``phase`` and ``recover``.

Run.execute reads top to bottom like the design: checks, lock, recovery, pre-, command, post-,
on-error/on-success, cleanups and finally.d (in a ``finally``, so nothing skips them), record.
"""

import os
import shlex
import sys
import time

from orchestrator import constants as c
from orchestrator import context, discovery, notify
from orchestrator.cleanup import Journal
from orchestrator.engine import Engine
from orchestrator.errors import StateError, UnsafeError
from orchestrator.files import NotOwnFile, output_file_problems, write_private
from orchestrator.history import Progress, run_record
from orchestrator.lock import EventLock
from orchestrator.outcome import RunStatus, TaskStatus, Verdict, exit_status, signal_name
from orchestrator.phases import PhaseResult, run_phase, when_skip_reason
from orchestrator.process import Signals, Supervisor
from orchestrator.report import Console, LogFile, Reporter, display_name, now_iso
from orchestrator.statedir import RunDir, count_dead_runs, dead_runs, ensure_state_dir, live_rivals

ERROR_LOG = "error.log"


def new_run_id():
    return time.strftime("%Y%m%dT%H%M%S") + "-" + os.urandom(3).hex()


def check_output_files(paths):
    """Refuse (UnsafeError, 77) to write a log or metrics file through another user's
    symbolic link, or to append to a log file another user owns or can write to.
    ``paths`` maps each path (None: not written) to whether it is appended to."""
    problems = []
    for path, appended in paths.items():
        if path:
            problems += output_file_problems(path, appended)
    if problems:
        raise UnsafeError("\n".join(f"unsafe output file: {line}" for line in problems))


def open_log(path, run_id):
    """The LogFile at ``path`` (parents created 0700), None if logging is off; StateError."""
    if not path:
        return None
    parent = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(parent, mode=0o700, exist_ok=True)
        return LogFile(path, run_id)
    except FileExistsError:
        raise StateError(f"cannot open log file {path}: {parent} is not a directory") from None
    except NotOwnFile as error:
        raise UnsafeError(f"unsafe output file: {error.strerror}") from None
    except OSError as error:
        raise StateError(f"cannot open log file {path}: {error.strerror or error}") from None


class Session:
    """What every command that runs things holds: the state directory, the log, the terminal,
    the signal watch and the process supervisor. Use as a context manager."""

    def __init__(self, ctx, run_id, warnings=(), metrics_file=None):
        self.ctx = ctx
        self.run_id = run_id
        ensure_state_dir(ctx.state_dir)
        check_output_files({ctx.log_file: True, metrics_file: False})
        console = Console(ctx.color, ctx.quiet, ctx.verbose)
        self.reporter = Reporter(console, open_log(ctx.log_file, run_id))
        for warning in warnings:
            self.reporter.warn(warning)
        self.signals = Signals()
        self.supervisor = None
        self.lock = None

    def __enter__(self):
        self.signals.install()
        self.supervisor = Supervisor(self.signals)
        return self

    def __exit__(self, *exc):
        if self.lock:
            self.lock.release()
        self.signals.restore()
        if self.reporter.log:
            self.reporter.log.close()

    def take_lock(self, wait):
        """The event lock (LockBusy, 75); False if a signal came while waiting for it."""
        self.lock = EventLock(self.ctx.state_dir, self.ctx.event)
        return self.lock.acquire(wait, self.signals)

    def open_run(self, command=(), recorded=True):
        """Create the run's directory (locked for its life) and the Engine that runs its
        tasks. ``recorded`` False: no history row belongs to it (phase, recover). A run that
        holds the event lock gives way (LockBusy, 75) to any other live run of its event:
        that one took the lock too, so the lock file was deleted under it. (Two that start
        in the same instant of such a deletion may both give way: never both run.)"""
        exclusive = self.lock is not None
        run_dir = RunDir.create(self.ctx.state_dir, self.run_id, {
            "run_id": self.run_id, "event": self.ctx.event, "recorded": recorded,
            "exclusive": exclusive, "pid": os.getpid()})
        if exclusive:
            rivals = live_rivals(self.ctx.state_dir, run_dir)
            if rivals:
                run_dir.remove()
                raise self.lock.busy(holder=rivals[0].get("pid"))
        try:
            return Engine(self.ctx, self.reporter, self.supervisor, self.run_id, run_dir,
                          command)
        except OSError as error:
            run_dir.remove()
            raise StateError(f"cannot create the cleanup journal in {run_dir.path}: "
                             f"{error.strerror or error}") from None

    def close_run(self, engine):
        """Remove the run's directory, unless a second signal left cleanups pending in it
        for ``hookrun recover``, or its journal had lines that were not run."""
        close_run_dir(self.reporter, engine.run_dir, engine.journal, self.signals.hard_stop)


def close_run_dir(reporter, run_dir, journal, hard_stop):
    """Remove a run directory whose cleanups have run. Keep it, for ``hookrun recover``,
    when its journal could not be read or a second signal (``hard_stop``) left cleanups
    pending; keep it aside, for a person to look at, when its journal was damaged."""
    if journal.unreadable:
        run_dir.release()
        return
    if hard_stop:
        try:
            pending = bool(journal.pending())
        except OSError:
            pending = True
        if pending:
            reporter.warn("interrupted twice: cleanups left pending for 'hookrun recover'")
            run_dir.release()
            return
    if journal.damaged:
        reporter.warn(f"cleanup journal kept for inspection in {run_dir.keep()}")
    else:
        run_dir.remove()


def plan_warnings(plan):
    """What a run says before it starts about its plan: permission problems let through by
    --insecure, comments that look like header directives."""
    return [f"unsafe permissions (--insecure): {problem}" for problem in plan.problems] \
        + plan.warnings


def event_warnings(ctx):
    """A run of an event the hooks directory has neither a pre- nor a post- directory for is
    surely a typo (``-e bakup``): say which events it has."""
    if any(os.path.isdir(os.path.join(ctx.hooks_dir, f"{kind}-{ctx.event}.d"))
           for kind in (c.PHASE_PRE, c.PHASE_POST)):
        return []
    return [f"no pre-{ctx.event}.d or post-{ctx.event}.d in {ctx.hooks_dir}"
            f"{discovery.events_hint(ctx.hooks_dir)}"]


def recover(engine, history, state_dir):
    """Replay the pending cleanups of every dead run, last registered first, recording them
    in the dead run's history (phase ``recover``); returns the records. The processes a dead
    run left running are ended first, so that no undo races the hook it undoes."""
    records = []
    found_dead, refused = dead_runs(state_dir)
    for line in refused:
        engine.reporter.warn(line)
    for dead in found_dead:
        if engine.signals.hard_stop:
            dead.release()
            continue
        dead_id = dead.run_id
        engine.reporter.warn(f"recovering run {display_name(dead_id)}: it ended without "
                             "running its cleanups")
        ended = engine.supervisor.end_leftovers(dead_id, engine.ctx.kill_grace)
        if ended:
            engine.reporter.warn(f"ended what run {display_name(dead_id)} left running: "
                                 f"{', '.join(ended)}")
        journal = Journal(dead.path)
        runs = engine.run_cleanups(journal, c.PHASE_RECOVER, dead.lock_fd)
        found = [run.record for run in runs]
        if dead.meta.get("recorded", True):
            try:
                history.add_recovered(dead_id, dead.meta.get("event"), found)
            except StateError as error:
                engine.reporter.warn(str(error))
        records.extend(found)
        close_run_dir(engine.reporter, dead, journal, engine.signals.hard_stop)
    return records


class Run:
    """One ``hookrun run``."""

    def __init__(self, ctx, command, no_hooks=False, dry_run=False, wait=None):
        self.ctx = ctx
        self.command = list(command)
        self.no_hooks = no_hooks
        self.dry_run = dry_run
        self.wait = wait
        self.run_id = new_run_id()
        self.tasks = []
        self.error = None
        self.failed = False
        self.hook_stopped = False
        self.soft_skip = None
        self.warned = False
        self.command_run = None
        self.started = None

    def execute(self):
        """Run the whole lifecycle; returns hookrun's exit status."""
        ctx = self.ctx
        phases = [] if self.no_hooks else discovery.phase_dirs(ctx.event)
        plan = context.load_plan(ctx, phases)
        warnings = plan_warnings(plan) + ([] if self.no_hooks else event_warnings(ctx))
        planned = dict(plan.phases)
        if self.dry_run:
            for warning in warnings:
                print(f"hookrun: warning: {display_name(warning)}", file=sys.stderr)
            from orchestrator import views

            views.print_plan(list(planned.items()), command=self.command, no_hooks=self.no_hooks)
            return c.EXIT_OK
        from orchestrator.history import open_history

        with Session(ctx, self.run_id, warnings, ctx.metrics_file) as session:
            if not session.take_lock(self.wait):
                return c.SIGNAL_EXIT_BASE + session.signals.first
            self.session = session
            self.signals = session.signals
            self.reporter = session.reporter
            self.history = open_history(os.path.join(ctx.state_dir, c.HISTORY_NAME),
                                        session.reporter.warn)
            try:
                return self.lifecycle({phase.kind: hooks for phase, hooks in planned.items()})
            finally:
                self.history.close()

    def lifecycle(self, hooks):
        self.engine = self.session.open_run(self.command)
        self.run_dir = self.engine.run_dir
        self.started = time.monotonic()
        self.started_iso = now_iso()
        try:
            self.history.start_run(self.run_id, self.ctx.event, self.command_text(),
                                   self.started_iso, self.no_hooks)
        except StateError as error:
            self.reporter.warn(f"{error}; the run goes on")
        self.progress = Progress(self.history, self.run_id, self.reporter.warn)
        self.engine.progress = self.progress
        self.reporter.on_tick = self.progress.flush
        if self.ctx.notify_url:
            self.warn_if(notify.ping(self.ctx.notify_url, "/start"))
        self.reporter.event(f"run {self.run_id} event={self.ctx.event} start "
                            f"command={self.command_text() or '-'} no_hooks={self.no_hooks}")
        try:
            if self.no_hooks:
                self.report_pending()
                self.run_command()
            else:
                self.add_recovered(recover(self.engine, self.history, self.ctx.state_dir))
                # After recovery, so that a crashed predecessor reads "interrupted".
                self.engine.set_previous(*self.history.previous(self.ctx.event, self.run_id))
                self.pre(hooks[c.PHASE_PRE])
                self.run_command()
                self.post(hooks[c.PHASE_POST])
                self.handlers(hooks)
        finally:
            if not self.no_hooks:
                self.wind_down(hooks[c.PHASE_FINALLY])
        return self.finish()

    def command_text(self):
        return shlex.join(self.command) if self.command else ""

    def report_pending(self):
        pending = count_dead_runs(self.ctx.state_dir)
        if pending:
            self.reporter.warn(f"{pending} crashed run(s) left cleanups pending; --no-hooks does "
                               "not run them: run 'hookrun recover'")

    # Step 4: pre-EVENT.d
    def pre(self, hooks):
        def skip_reason(_hook):
            return "interrupted" if self.signals.first else None

        result = run_phase(self.engine, hooks, skip_reason)
        self.absorb(result)
        if result.stopped:
            self.failed = self.hook_stopped = True
        self.soft_skip = result.soft_skip

    # Step 5: the command
    def run_command(self):
        if self.signals.first or self.failed or self.soft_skip:
            if self.command:
                reason = ("interrupted" if self.signals.first else "run skipped (exit 75)"
                          if self.soft_skip else "pre- hook stopped the run")
                self.tasks.append(self.engine.skipped(c.PHASE_COMMAND, self.command[0], reason))
            return
        if not self.command:
            return
        run = self.engine.run_command(self.command)
        self.command_run = run
        self.tasks.append(run.record)
        if run.record.status != TaskStatus.OK:
            self.failed = self.warned = True
            self.note_error(run, decisive=True)

    def command_state(self):
        """``success``, ``failure`` or ``not-run``, as post- hooks see it."""
        if self.command_run is None:
            return "not-run" if (self.command or self.failed or self.soft_skip
                                 or self.signals.first) else "success"
        return "success" if self.command_run.record.status == TaskStatus.OK else "failure"

    # Step 6: post-EVENT.d
    def post(self, hooks):
        state = self.command_state()
        self.set_later_env(state)
        interrupted_before = bool(self.signals.first)

        def skip_reason(hook):
            when = hook.settings.when
            if self.soft_skip:
                return "run skipped (exit 75)"
            if self.signals.first and not interrupted_before:
                return "interrupted"
            if interrupted_before and when != "always":
                return f"when={when}: run interrupted"
            return when_skip_reason(when, state)

        # After a stop, the hooks that run "whatever happened" still do (Borgitory's
        # run-on-failure hooks).
        result = run_phase(self.engine, hooks, skip_reason,
                           after_stop=lambda hook: hook.settings.when == "always")
        self.absorb(result)
        if result.stopped and not self.failed:
            self.failed = self.hook_stopped = True

    # Step 7: on-error.d or on-success.d
    def handlers(self, hooks):
        status = self.status()
        self.set_later_env(status.value)
        if status == RunStatus.SKIPPED:
            return
        kind = c.PHASE_ON_ERROR if status in (RunStatus.FAILURE, RunStatus.INTERRUPTED) \
            else c.PHASE_ON_SUCCESS
        self.absorb(run_phase(self.engine, hooks[kind]), decisive=False)

    # Step 8: cleanups (last registered first), then finally.d
    def wind_down(self, finally_hooks):
        self.set_later_env(self.status().value)
        self.add_cleanups(self.engine.run_cleanups())
        self.set_later_env(self.status().value)
        self.absorb(run_phase(self.engine, finally_hooks), decisive=False)
        self.add_cleanups(self.engine.run_cleanups())

    def add_recovered(self, records):
        self.tasks += records
        self.warned = self.warned or any(record.failed for record in records)

    def add_cleanups(self, runs):
        """Cleanups are tasks too; a failed one makes the run a warning."""
        self.tasks += [run.record for run in runs]
        self.warned = self.warned or any(run.record.failed for run in runs)

    def absorb(self, result: PhaseResult, decisive=True):
        """Take a phase's records; its failures make the run a warning (and the first, or a
        decisive one, its HOOKRUN_ERROR), except those of on-failure=ignore hooks."""
        self.tasks += result.records
        for run in result.runs:
            if run.record.failed and run.verdict != Verdict.IGNORE:
                self.warned = True
                self.note_error(run, decisive and run.verdict == Verdict.STOP)

    def note_error(self, run, decisive):
        """Remember the first failure (a decisive one wins over earlier warnings) for
        HOOKRUN_ERROR and its error log."""
        if self.error is not None and not (decisive and not self.error["decisive"]):
            return
        record = run.record
        what = "command" if record.phase == c.PHASE_COMMAND else f"{record.phase} hook"
        line = f"{what} {display_name(record.name)} {record.status.value} ({record.reason})"
        said = run.output.last_line()
        if said:
            # What the failed step said last (restic's "Fatal: wrong password"), as resticm
            # hands BACKUP_ERROR on.
            line += f": {said}"
        path = self.run_dir.file(ERROR_LOG)
        try:
            write_private(path, run.output.tail_bytes())
        except OSError as error:
            self.reporter.warn(f"cannot write {path}: {error.strerror}")
        self.error = {"line": line, "phase": record.phase, "hook": record.name, "log": path,
                      "decisive": decisive}

    def error_line(self):
        if self.signals.first:
            interrupted = f"interrupted by {signal_name(self.signals.first)}"
            return f"{interrupted}; {self.error['line']}" if self.error else interrupted
        return self.error["line"] if self.error else ""

    def set_later_env(self, status):
        error = self.error or {}
        line = self.error_line()
        exit_code = self.command_run.record.exit_code if self.command_run else None
        self.engine.set_later_env({
            "HOOKRUN_STATUS": status, "BACKUP_STATUS": status,
            "HOOKRUN_EXIT_CODE": "" if exit_code is None else str(exit_code),
            "HOOKRUN_ERROR": line, "BACKUP_ERROR": line, "ERROR": line,
            "HOOKRUN_ERROR_PHASE": error.get("phase", ""),
            "HOOKRUN_ERROR_HOOK": error.get("hook", ""),
            "HOOKRUN_ERROR_LOG": error.get("log", ""),
        })

    def status(self):
        if self.signals.first:
            return RunStatus.INTERRUPTED
        if self.soft_skip:
            return RunStatus.SKIPPED
        if self.failed:
            return RunStatus.FAILURE
        if self.warned:
            return RunStatus.WARNING
        return RunStatus.SUCCESS

    # Step 9: record, metrics, release, exit
    def finish(self):
        status = self.status()
        command_code = None
        if self.command_run and self.command_run.record.status != TaskStatus.OK:
            command_code = self.command_run.record.exit_code
        code = exit_status(status, self.signals.first, command_code, self.hook_stopped)
        duration = round(time.monotonic() - self.started, 6)
        record = run_record(self.tasks, id=self.run_id, event=self.ctx.event,
                            status=status.value, exit_code=code, command=self.command_text(),
                            started=self.started_iso, finished=now_iso(), duration=duration,
                            no_hooks=self.no_hooks, error=self.error_line() or None)
        self.reporter.on_tick = None
        try:
            self.history.finish_run(record, self.progress.pending)
        except StateError as error:
            self.reporter.warn(f"{error}; this run is not recorded")
        self.reporter.event(f"run {self.run_id} end status={status.value} exit={code}")
        if not self.ctx.json:
            self.reporter.console.summary(status.value, self.tasks, code)
        if self.ctx.metrics_file or self.ctx.metrics_push_url:
            self.write_metrics(status, code, duration)
        if self.ctx.notify_url or self.ctx.notify_command:
            self.notify_end(record)
        self.session.close_run(self.engine)
        if self.ctx.json:
            import json

            # The very last line of stdout, whatever notify_command printed before it.
            self.reporter.console.write_utf8(json.dumps(record, ensure_ascii=False) + "\n")
        return code

    def warn_if(self, problem):
        if problem:
            self.reporter.warn(problem)

    def write_metrics(self, status, code, duration):
        """The metrics file, and the same series pushed to the Pushgateway; failures warn."""
        from orchestrator.metrics import STREAK_RUNS, write_metrics

        run = dict(status=status.value, exit_code=code, finished=round(time.time(), 3),
                   duration=duration, last_success=self.history.last_success(self.ctx.event),
                   tasks=self.tasks, earlier=self.history.recent_task_statuses(
                       self.ctx.event, self.run_id, STREAK_RUNS))
        if self.ctx.metrics_file:
            try:
                write_metrics(self.ctx.metrics_file, self.ctx.event, **run)
            except OSError as error:
                self.reporter.warn(f"cannot write metrics file {self.ctx.metrics_file}: "
                                   f"{error.strerror or error}")
        if self.ctx.metrics_push_url:
            from orchestrator import pushgateway

            self.warn_if(pushgateway.push(self.ctx.metrics_push_url, self.ctx.event, run))

    def notify_end(self, record):
        """The end ping and the notify_command, fed the run's record (as ``hookrun show
        --json`` prints it, but for the cleanups' lines); failures only warn."""
        record = notify.published(record)
        if self.ctx.notify_url:
            failed_output = b""
            if self.error:
                try:
                    with open(self.error["log"], "rb") as handle:
                        failed_output = handle.read()
                except OSError:
                    pass
            self.warn_if(notify.ping(self.ctx.notify_url, notify.END_SUFFIX[record["status"]],
                                     notify.summary(record, failed_output)))
        if self.ctx.notify_command:
            self.warn_if(self.engine.run_notify_command(self.ctx.notify_command, record))


def phase_command(ctx, phase, status="success", wait=None):
    """``hookrun phase``: one directory (a PhaseDir) by the rules of a run, with the lock and
    the deferred cleanups, recording nothing. Returns the exit status (0, 69, 128+N)."""
    plan = context.load_plan(ctx, [phase])
    hooks = plan.phases[0][1]
    with Session(ctx, new_run_id(), plan_warnings(plan)) as session:
        if not session.take_lock(wait):
            return c.SIGNAL_EXIT_BASE + session.signals.first
        engine = session.open_run(recorded=False)
        engine.set_previous(*previous_run(ctx))
        if phase.kind != c.PHASE_PRE:
            engine.set_later_env({"HOOKRUN_STATUS": status, "BACKUP_STATUS": status})

        def skip_reason(hook):
            if session.signals.first and phase.kind in (c.PHASE_PRE, c.PHASE_POST):
                return "interrupted"
            return when_skip_reason(hook.settings.when, status)

        try:
            stopped = run_phase(engine, hooks, skip_reason).stopped
        finally:
            engine.run_cleanups()
            session.close_run(engine)
        if session.signals.first:
            return c.SIGNAL_EXIT_BASE + session.signals.first
        return c.EXIT_HOOK_STOPPED if stopped else c.EXIT_OK


def previous_run(ctx):
    """(id, status) of the last recorded run of the event, without creating a history."""
    from orchestrator.history import History

    try:
        history = History.existing(os.path.join(ctx.state_dir, c.HISTORY_NAME))
        if history is None:
            return None, None
        try:
            return history.previous(ctx.event, "")
        finally:
            history.close()
    except StateError:
        return None, None


def recover_command(ctx):
    """``hookrun recover``: run the pending cleanups of crashed runs; returns 0."""
    from orchestrator.history import open_history

    with Session(ctx, new_run_id()) as session:
        history = open_history(os.path.join(ctx.state_dir, c.HISTORY_NAME),
                               session.reporter.warn)
        engine = session.open_run(recorded=False)
        try:
            records = recover(engine, history, ctx.state_dir)
            # Cleanups that the replayed cleanups registered themselves.
            engine.run_cleanups()
        finally:
            session.close_run(engine)
            history.close()
        if not records:
            session.reporter.console.write("stdout", "nothing to recover\n")
        if session.signals.first:
            return c.SIGNAL_EXIT_BASE + session.signals.first
    return c.EXIT_OK
