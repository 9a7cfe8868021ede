"""The lifecycle of ``hookrun run`` (design.md section 2), and of ``phase`` and ``recover``.

Run.execute does step 1 (the checks) and takes the lock; Lifecycle.run then reads top to
bottom like the design: recovery, pre-, the command, post-, on-error/on-success, cleanups and
finally.d (in a ``finally``, so nothing skips them), the record. What each step means for
the next is decided by the run's RunState (outcome.py), not here.
"""

from __future__ import annotations

import os
import time

from orchestrator import constants as c
from orchestrator import shell
from orchestrator.errors import HookrunError, StateError, fault_text
from orchestrator.files import write_private
from orchestrator.outcome import (
    Failure,
    RunState,
    TaskStatus,
    Verdict,
    When,
    when_skip_reason,
)
from orchestrator.phases import DRY_RUN_SKIP, run_phase, select_only
from orchestrator.plan import context, discovery
from orchestrator.report.printer import print_plan, print_warnings
from orchestrator.session import Session, new_run_id
from orchestrator.state.cleanup import count_dead_runs, recover
from orchestrator.state.history import NoHistory, Progress, RunRecord, open_history
from orchestrator.text import display_name
from orchestrator.timestamps import now_iso

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence
    from typing import Any

    from orchestrator.engine import Engine
    from orchestrator.outcome import TaskRecord
    from orchestrator.phases import PhaseResult
    from orchestrator.plan.context import Context, Plan, PlannedHook
    from orchestrator.plan.discovery import PhaseDir
    from orchestrator.state.history import History

    # The PlannedHooks of each phase of the run, by its phase (pre, post, ...).
    Hooks = dict[str, list[PlannedHook]]


def plan_warnings(plan: Plan) -> list[str]:
    """What a run says before it starts about its plan: permission problems let through by
    --insecure, comments that look like header directives."""
    warnings: list[str] = plan.warnings
    return [f"unsafe permissions (--insecure): {problem}" for problem in plan.problems] \
        + warnings


class Run:
    """One ``hookrun run``: the checks of step 1 and the lock, then its Lifecycle."""

    def __init__(self, ctx: Context, command: Iterable[str], no_hooks: bool = False,
                 dry_run: bool = False, wait: float | None = None) -> None:
        self.ctx = ctx
        self.command = list(command)
        self.no_hooks = no_hooks
        self.dry_run = dry_run
        self.wait = wait
        # Whether the run got past its checks and the lock: an error before is a refusal.
        self.started = False

    def execute(self) -> int:
        """Run the whole lifecycle; returns hookrun's exit status."""
        ctx = self.ctx
        phases = [] if self.no_hooks else discovery.phase_dirs(ctx.event)
        plan = context.load_plan(ctx, phases,
                                 commands=context.trusted_commands(ctx, self.command))
        warnings = plan_warnings(plan)
        hooks = {phase_dir.phase: planned for phase_dir, planned in plan.phases}
        if self.dry_run:
            print_warnings(warnings)
            print_plan(plan.phases, command=self.command, no_hooks=self.no_hooks)
            if not any(hook.entry.runs and hook.settings.dry_run
                       for planned in hooks.values() for hook in planned):
                return c.EXIT_OK  # nothing takes part: no lock, no state directory
            return self.dry(hooks)
        run_id = new_run_id()
        with Session(ctx, run_id, warnings, ctx.metrics_file) as session:
            if not session.take_lock(self.wait):
                return signal_exit(session)
            history = open_history(os.path.join(ctx.state_dir, c.HISTORY_NAME),
                                   session.reporter)
            try:
                progress = Progress(history, run_id, session.reporter)
                engine = session.open_run(self.command, progress=progress)
                if engine is None:
                    return signal_exit(session)
                self.started = True
                return Lifecycle(session, history, engine, self.command, self.no_hooks,
                                 hooks, progress, plan.warnings).run()
            finally:
                history.close()

    def dry(self, hooks: Hooks) -> int:
        """The hooks of a dry run (design.md 11), under the event's lock, its warnings
        already printed with the plan; returns the exit status. Nothing is recorded: no
        history is opened."""
        with Session(self.ctx, new_run_id()) as session:
            if not session.take_lock(self.wait):
                return signal_exit(session)
            engine = session.open_run(self.command, recorded=False)
            if engine is None:
                return signal_exit(session)
            self.started = True
            return DryRun(session, NoHistory(), engine, self.command, False, hooks).run()


class Lifecycle:
    """Steps 3 to 9 of one run, with everything they need from the start."""

    dry_run = False

    def __init__(self, session: Session, history: History | NoHistory, engine: Engine,
                 command: list[str], no_hooks: bool, hooks: Hooks,
                 progress: Progress | None = None, tree_warnings: Sequence[str] = ()) -> None:
        self.ctx = session.ctx
        self.session = session
        self.signals = session.signals
        self.reporter = session.reporter
        self.history = history
        self.engine = engine
        self.run_id = engine.run_id
        self.command = command
        self.no_hooks = no_hooks
        self.hooks = hooks
        self.state = RunState(command)
        # What the plan found wrong in the tree (near-miss directories, a phase hidden by
        # .hookignore, a [hook] section naming no file...): a run with them is no success.
        self.tree_warnings = list(tree_warnings)
        self.tasks: list[TaskRecord] = []
        # the backup's statistics (stats.KEYS), as they become known
        self.stats: dict[str, str | int] = {}
        self.stats_warned: set[str] = set()
        # Each error or warning line that ends in output, and the same line without it: what
        # a channel with send_output = no may carry.
        self.without_output: dict[str, str] = {}
        # told_so_far() as the later hooks' variables were last set (set_later_env)
        self.told: tuple[str, int] | None = None
        self.started = time.monotonic()
        self.started_iso = now_iso()
        # The engine's (a recorded run's), or one of its own that no task tells of.
        self.progress = progress if progress is not None else \
            Progress(history, self.run_id, self.reporter)

    def run(self) -> int:
        """The steps of design.md section 2, 3 to 9; returns hookrun's exit status. A step
        that raises fails the run (fault); what follows a stop follows it too: the command
        is skipped, post- runs as after a stop, and on-error.d, each if it had not begun."""
        self.begin()
        steps: list[tuple[str, Callable[[], None]]] = [
            ("the crashed runs", self.report_pending), ("the command", self.run_command)]
        if not self.no_hooks:
            steps = [("recovery", self.recover_dead), ("pre-", self.pre),
                     ("the command", self.run_command), ("post-", self.post),
                     ("on-error.d", self.handlers)]
        reached = 0
        try:
            for _what, step in steps:
                step()
                reached += 1
        except Exception as error:  # noqa: BLE001 - the wind-down and the record must follow
            self.fault(error)
            for what, step in steps[reached + 1:]:  # those after the one that raised
                if step in (self.run_command, self.post, self.handlers):
                    self.fault_safe(what, step)
        finally:
            if not self.no_hooks:
                self.wind_down()
        return self.finish()

    def recover_dead(self) -> None:
        """Step 3's recovery: the cleanups of crashed runs, then wait for any other run's."""
        recovered = recover(self.engine, self.history, self.ctx.state_dir)
        self.add_records(recovered.records)
        for line in recovered.problems + self.tree_warnings:
            self.state.warn(line)
        self.session.wait_for_recoveries(self.engine.run_dir)
        # After recovery, so that a crashed predecessor reads "interrupted".
        self.engine.set_previous(*self.history.previous(self.ctx.event, self.run_id))

    def fault(self, error: Exception) -> None:
        """A step raised ``error`` and the run cannot go on: it failed (the exit status of a
        known error, 70 for an internal one), and the wind-down, the record, the metrics and
        the notifications still follow."""
        if isinstance(error, HookrunError):
            line, code = str(error), error.exit_status
        else:
            line = f"internal fault: {type(error).__name__}: {fault_text(error)}"
            code = c.EXIT_INTERNAL
        self.state.fault(line, code)
        self.reporter.run_stops(line)

    def begin(self) -> None:
        try:
            self.history.start_run(self.run_id, self.ctx.event, self.command_text(),
                                   self.started_iso, self.no_hooks, self.ctx.trigger)
        except StateError as error:
            self.reporter.run_goes_on(error)
        self.reporter.on_tick = self.progress.flush
        if self.ctx.notify_url:
            from orchestrator.report import notify

            self.warn_if(notify.ping(self.ctx.notify_url, "/start", run_id=self.run_id))
        if self.ctx.config.notify:
            from orchestrator.plan.channel_config import START

            self.tell_channels(START)
        self.reporter.run_started(self.run_id, self.ctx.event, self.command_text(),
                                  self.no_hooks)

    def command_text(self) -> str:
        return shell.join(self.command) if self.command else ""

    def observe(self) -> None:
        """Tell the run's state of the signal received so far, if any."""
        self.state.signal(self.signals.first)

    def report_pending(self) -> None:
        pending, refused = count_dead_runs(self.ctx.state_dir)
        for refusal in refused:
            self.reporter.run_dir_refused(*refusal)
        if pending:
            self.reporter.crashed_runs_pending(pending)

    # Step 4: pre-EVENT.d
    def pre(self) -> None:
        def skip_reason(_hook: PlannedHook) -> str | None:
            return "interrupted" if self.signals.first else None

        result = self.run_hooks(c.PHASE_PRE, skip_reason)
        skipped_by: str | None = None
        if result.soft_skip:
            record = result.soft_skip
            skipped_by = f"{record.phase}/{display_name(record.name)} ({record.reason})"
        self.state.pre_finished(bool(result.stopped), skipped_by)

    # Step 5: the command
    def run_command(self) -> None:
        self.observe()
        if not self.command:
            return
        reason = self.state.command_skip_reason()
        if reason:
            self.tasks.append(self.engine.skipped(c.PHASE_COMMAND, self.command[0], reason))
            return
        record = self.engine.run_command(self.command)
        self.tasks.append(record)
        self.state.command_finished(record)
        from orchestrator.report import stats

        self.stats.update(stats.from_output(record.stdout))
        if self.state.command_failed:
            self.note_failure(record, decisive=True)
        elif record.status == TaskStatus.WARNING:
            self.warning(record)

    # Step 6: post-EVENT.d
    def post(self) -> None:
        self.observe()
        self.set_later_env(self.state.command_state())
        interrupted_before = bool(self.state.interrupted_by)

        def skip_reason(hook: PlannedHook) -> str | None:
            self.observe()
            return self.state.post_skip_reason(hook.settings.when, interrupted_before)

        # After a stop, the hooks that run "whatever happened" still do (Borgitory's
        # run-on-failure hooks).
        def always(hook: PlannedHook) -> bool:
            when: str | None = hook.settings.when
            return when == When.ALWAYS

        result = self.run_hooks(c.PHASE_POST, skip_reason, after_stop=always,
                                status=self.state.command_state)
        self.state.post_finished(bool(result.stopped))

    # Step 7: on-error.d or on-success.d
    def handlers(self) -> None:
        self.observe()
        self.set_later_env(self.state.status)
        phase = self.state.handlers()
        if phase:
            self.run_hooks(phase, decisive=False, status=lambda: self.state.status)

    # Step 8: cleanups (last registered first), then finally.d
    def wind_down(self) -> None:
        """Each step in turn, whatever the one before it raised (a MemoryError, any fault):
        finally.d and the remaining cleanups still run."""
        self.fault_safe("the cleanups", self.run_cleanups, cleanups=True)
        self.fault_safe("finally.d", self.run_finally)
        self.fault_safe("the cleanups", self.run_cleanups, cleanups=True)
        # Cleanups left for recovery, as their journal could not be read, and lines of it
        # too damaged to run: an undo that did not happen is not a success.
        journal = self.engine.journal
        self.state.cleanups_finished(display_name(journal.path), journal.unreadable,
                                     len(journal.damaged))

    def run_cleanups(self) -> None:
        self.observe()
        self.set_later_env(self.state.status)
        self.add_records(self.engine.run_cleanups())

    def run_finally(self) -> None:
        self.observe()
        self.set_later_env(self.state.status)
        self.run_hooks(c.PHASE_FINALLY, decisive=False, status=lambda: self.state.status)

    def fault_safe(self, what: str, step: Callable[[], None], cleanups: bool = False) -> None:
        """Run ``step``; a fault in it is a warning and makes the run no success. The
        cleanups a faulty step of ``cleanups`` may not have got to stay in the journal for
        recovery (marked ones are not run again), never lost."""
        try:
            step()
        except Exception as error:  # noqa: BLE001 - the wind-down must go on whatever failed
            self.engine.journal.unreadable = self.engine.journal.unreadable or cleanups
            line = (f"internal fault while running {what}: {type(error).__name__}: "
                    f"{fault_text(error)}")
            self.state.warn(line)
            self.reporter.wind_down_goes_on(line)

    def run_hooks(self, phase: str,
                  skip_reason: Callable[[PlannedHook], str | None] = lambda hook: None,
                  after_stop: Callable[[PlannedHook], bool] = lambda hook: False,
                  decisive: bool = True, status: Callable[[], str] | None = None
                  ) -> PhaseResult:
        """Run the phase ``phase`` (run_phase), taking each record as it comes (take); in a
        dry run only its hooks with dry-run=yes run, the others are skipped tasks. From
        post- on (``status``: what HOOKRUN_STATUS says), each hook is told the run so far:
        a failure or a warning of a hook before it in the phase is in its HOOKRUN_ERROR
        variables and HOOKRUN_WARNINGS, not only in the next phase's."""
        def reason(hook: PlannedHook) -> str | None:
            found = skip_reason(hook)  # asked first: it also looks at the signals
            if self.dry_run and not hook.settings.dry_run:
                return DRY_RUN_SKIP
            if status is not None and self.told != self.told_so_far():
                self.set_later_env(status())
            return found

        return run_phase(self.engine, self.hooks[phase], reason, after_stop,
                         taken=lambda record: self.take(record, decisive))

    def add_records(self, records: list[TaskRecord]) -> None:
        """Take cleanup and recovery records: a failed one makes the run a warning."""
        self.tasks += records
        for record in records:
            if record.failed:
                self.warning(record)

    def take(self, record: TaskRecord, decisive: bool = True) -> None:
        """Take a phase's record as it comes (one skipped is neither failed nor a warning):
        a failure makes the run a warning (and the first, or a decisive one, its
        HOOKRUN_ERROR), except that of an on-failure=ignore hook; a critical post- hook's
        fails it at once (post_stopped)."""
        self.tasks.append(record)
        if record.failed and record.verdict != Verdict.IGNORE:
            self.note_failure(record, decisive and record.verdict == Verdict.STOP)
            if decisive and record.verdict == Verdict.STOP and record.phase == c.PHASE_POST:
                self.state.post_stopped()
        elif record.status == TaskStatus.WARNING:
            self.warning(record)

    def note_failure(self, record: TaskRecord, decisive: bool) -> None:
        """Tell the run's state of a failure: the one that decides the run for HOOKRUN_ERROR,
        with its error log; any other for HOOKRUN_WARNINGS."""
        state = self.state
        if not state.takes_failure(decisive):
            self.warning(record)
            return
        what = "command" if record.phase == c.PHASE_COMMAND else f"{record.phase} hook"
        line = f"{what} {display_name(record.name)} {record.status} ({record.reason})"
        said = record.said
        if said:
            # What the failed step said last (restic's "Fatal: wrong password"), as resticm
            # hands BACKUP_ERROR on.
            self.without_output[f"{line}: {said}"] = line
            line += f": {said}"
        path, tail = self.engine.run_dir.file(c.RUN_ERROR_LOG), record.tail
        try:
            write_private(path, tail)
        except OSError as error:
            self.reporter.cannot_write(path, error.strerror)
        state.take_failure(Failure(line, record.phase, record.name, path, decisive, tail))

    def warning(self, record: TaskRecord) -> None:
        """Tell the run's state of a warning (HOOKRUN_WARNINGS) about ``record``."""
        line = warning_line(record, record.said)
        self.without_output[line] = warning_line(record, "")
        self.state.warn(line)

    def private(self, text: str | None) -> str | None:
        """``text`` (the record's error) without the output lines in it."""
        for full, bare in self.without_output.items():
            if full != bare and text:
                text = text.replace(full, bare)
        return text

    def collect_stats(self) -> None:
        """Add what the command and the hooks so far wrote to $HOOKRUN_STATS (it wins over
        what was read from the command's output); each bad line is warned about once."""
        from orchestrator.report import stats

        warnings: list[str] = []
        for path in [self.engine.env.stats_file] + self.engine.stats_files:
            found, said = stats.from_file(path)
            self.stats.update(found)
            warnings += said
        for warning in warnings:
            if warning not in self.stats_warned:
                self.stats_warned.add(warning)
                self.reporter.stats_refused(warning)

    def set_later_env(self, status: str) -> None:
        """The variables hooks get from post- on. The error variables are empty while the
        run has not failed: a hook that pings /fail when ERROR is set must not do so for a
        good backup with a warning."""
        from orchestrator.report.stats import environment

        self.collect_stats()
        self.told = self.told_so_far()
        failure, line = self.state.said_failure(), self.state.error_line()
        record = self.state.command_record
        exit_code = "" if record is None or record.exit_code is None else str(record.exit_code)
        self.engine.set_later_env({
            "HOOKRUN_STATUS": status, "BACKUP_STATUS": status, "HOOKRUN_EXIT_CODE": exit_code,
            "HOOKRUN_ERROR": line, "BACKUP_ERROR": line, "ERROR": line,
            "HOOKRUN_ERROR_PHASE": failure.phase if failure else "",
            "HOOKRUN_ERROR_HOOK": failure.hook if failure else "",
            "HOOKRUN_ERROR_LOG": failure.log if failure else "",
            "HOOKRUN_WARNINGS": "\n".join(self.state.warnings),
            **environment(self.stats),
        })

    def told_so_far(self) -> tuple[str, int]:
        """What the error variables and HOOKRUN_WARNINGS tell of: set_later_env() is done
        again when it changed."""
        return self.state.error_line(), len(self.state.warnings)

    # Step 9: record, metrics, notifications, release, exit
    def finish(self) -> int:
        self.observe()
        self.collect_stats()
        record = self.record()
        self.reporter.on_tick = None
        try:
            self.history.finish_run(record.as_json(), self.progress.pending)
        except StateError as error:
            self.reporter.not_recorded(error)
        self.reporter.run_ended(self.run_id, record.status, record.exit_code)
        if not self.ctx.json:
            self.reporter.console.summary(record.status, record.tasks, record.exit_code)
        if self.ctx.metrics_file or self.ctx.metrics_push_url:
            self.write_metrics(record)
        if self.ctx.notify_url or self.ctx.notify_command or self.ctx.config.notify:
            self.notify_end(record)
        self.session.close_run(self.engine)
        if self.ctx.json:
            import json

            # The very last line of stdout, whatever notify_command printed before it.
            self.reporter.console.write_utf8(
                json.dumps(record.as_json(), ensure_ascii=False) + "\n")
        return record.exit_code

    def record(self) -> RunRecord:
        """The run's RunRecord, built once: all that tells of the run derives from it."""
        state = self.state
        failure = state.said_failure()
        return RunRecord(
            id=self.run_id, event=self.ctx.event, status=state.status,
            exit_code=state.exit_status(), command=self.command_text(),
            started=self.started_iso, finished=now_iso(),
            duration=round(time.monotonic() - self.started, 6), no_hooks=self.no_hooks,
            error=state.error_line() or (state.warnings[0] if state.warnings else None),
            trigger=self.ctx.trigger, stats=self.stats, tasks=self.tasks,
            finished_unix=time.time(), failed_output=failure.output if failure else b"")

    def warn_if(self, problem: str | None) -> None:
        if problem:
            self.reporter.warn(problem)

    def write_metrics(self, record: RunRecord) -> None:
        """The metrics file, and the same series pushed to the Pushgateway; failures warn."""
        from orchestrator.report.metrics import STREAK_RUNS, write_metrics

        run = record.samples_input(
            self.history.last_success(self.ctx.event),
            self.history.recent_task_statuses(self.ctx.event, self.run_id, STREAK_RUNS))
        if self.ctx.metrics_file:
            try:
                self.warn_if(write_metrics(self.ctx.metrics_file, self.ctx.event, **run))
            except (OSError, MemoryError) as error:
                self.reporter.cannot_write_metrics(self.ctx.metrics_file, error)
        if self.ctx.metrics_push_url:
            from orchestrator.report import pushgateway

            self.warn_if(pushgateway.push(self.ctx.metrics_push_url, self.ctx.event, run))

    def notify_end(self, run: RunRecord) -> None:
        """The end ping, the [notify] channels and the notify_command, fed the run's record
        (as ``hookrun show --json`` prints it, but for the cleanups' lines) and the last
        output of the failure that decided it; failures only warn."""
        from orchestrator.report import notify

        record = notify.published(run.as_json())
        failed_output = run.failed_output
        if self.ctx.notify_url:
            self.warn_if(notify.ping(self.ctx.notify_url, notify.END_SUFFIX[record["status"]],
                                     notify.summary(record, failed_output), self.run_id))
        if self.ctx.config.notify:
            self.tell_channels(record["status"], record, failed_output)
        if self.ctx.notify_command:
            self.warn_if(self.engine.run_notify_command(self.ctx.notify_command, record))

    def tell_channels(self, status: str, record: dict[str, Any] | None = None,
                      failed_output: bytes = b"") -> None:
        """Send the [notify] channels that want ``status`` (channel_config.START, or the run's, with
        its published ``record``) their message; each failure is a warning."""
        import socket

        from orchestrator.report import channels, notify

        message = channels.Message(status=status, run_id=self.run_id, event=self.ctx.event,
                                   host=socket.gethostname(), trigger=self.ctx.trigger,
                                   record=record)
        if record is not None:
            private = self.private(record["error"])
            message.error, message.error_private = record["error"], private
            message.output = failed_output
            message.summary = notify.summary(record, failed_output).decode("utf-8", "replace")
            message.summary_private = notify.summary(record, b"", private or "").decode(
                "utf-8", "replace")
        for problem in channels.send_all(channels.channels_of(self.ctx.config), message,
                                         self.ctx.trigger):
            self.reporter.warn(problem)


class DryRun(Lifecycle):
    """A dry run with hooks that take part (design.md 11): the lifecycle of a run whose
    command is taken as succeeded, never run; only the hooks with dry-run=yes run, told
    HOOKRUN_DRY_RUN=1, and their cleanups; the others are skipped tasks. Nothing is
    recovered, recorded, measured or notified: a test of the tree is not a backup."""

    dry_run = True

    def run(self) -> int:
        self.begin()
        try:
            self.report_pending()
            self.pre()
            self.run_command()
            self.post()
            self.handlers()
        finally:
            self.wind_down()
        return self.finish()

    def begin(self) -> None:
        self.engine.set_dry_run()
        self.engine.set_previous(*previous_run(self.ctx))
        self.reporter.dry_run_started(self.run_id, self.ctx.event, self.command_text())

    def report_pending(self) -> None:
        pending, _refused = count_dead_runs(self.ctx.state_dir)
        if pending:
            self.reporter.crashed_runs_pending(pending, dry_run=True)

    def run_command(self) -> None:
        self.observe()
        reason = self.state.command_skip_reason()
        if reason is None:
            self.state.command_finished(None, dry_run=True)
        self.tasks.append(self.engine.skipped(c.PHASE_COMMAND, self.command[0],
                                              reason or "dry run"))

    def finish(self) -> int:
        self.observe()
        status, code = self.state.status, self.state.exit_status()
        self.reporter.dry_run_ended(self.run_id, status, code)
        if not self.ctx.json:
            self.reporter.console.summary(status, self.tasks, code, what="dry run")
        self.session.close_run(self.engine)
        return code


def warning_line(record: TaskRecord, said: str) -> str:
    """A HOOKRUN_WARNINGS line: ``pre/20-x failed (exit 1): what it said last``. A cleanup
    is named by its command word (its line may hold a password, and this line may become
    the record's ``error``, which notifications carry)."""
    from orchestrator.text import published_name

    name = published_name(record.phase, record.name)
    if record.phase == c.PHASE_COMMAND:
        name = os.path.basename(name) or name  # as its status line names it
    line = f"{record.phase}/{display_name(name)} {record.status} ({record.reason})"
    return f"{line}: {display_name(said)}" if said else line


def phase_command(ctx: Context, phase_dir: PhaseDir, status: str = When.SUCCESS,
                  wait: float | None = None, only: Sequence[str] = (),
                  dry_run: bool = False) -> int:
    """``hookrun phase``: one directory (a PhaseDir) by the rules of a run, with the lock and
    the deferred cleanups, recording nothing. ``only``: the names of the hooks to run (the
    others are passed over without a record); ``dry_run``: only the hooks with dry-run=yes
    run, told HOOKRUN_DRY_RUN=1, the others are skipped tasks. Returns the exit status
    (0, 69, 128+N)."""
    plan = context.load_plan(ctx, [phase_dir])
    hooks = plan.phases[0][1]
    selected = select_only(phase_dir, hooks, only, dry_run) if only else None
    with Session(ctx, new_run_id(), plan_warnings(plan)) as session:
        if not session.take_lock(wait):
            return signal_exit(session)
        engine = session.open_run(recorded=False)
        if engine is None:
            return signal_exit(session)
        engine.set_previous(*previous_run(ctx))
        if dry_run:
            engine.set_dry_run()
        if phase_dir.phase != c.PHASE_PRE:
            engine.set_later_env({"HOOKRUN_STATUS": status, "BACKUP_STATUS": status})

        def skip_reason(hook: PlannedHook) -> str | None:
            if session.signals.first and phase_dir.phase in (c.PHASE_PRE, c.PHASE_POST):
                return "interrupted"
            if dry_run and not hook.settings.dry_run:
                return DRY_RUN_SKIP
            return when_skip_reason(hook.settings.when, status)

        try:
            stopped = run_phase(engine, hooks, skip_reason, selected=selected).stopped
        finally:
            engine.run_cleanups()
            session.close_run(engine)
        if session.signals.first:
            return c.SIGNAL_EXIT_BASE + session.signals.first
        return c.EXIT_HOOK_STOPPED if stopped else c.EXIT_OK


def previous_run(ctx: Context) -> tuple[str, str] | tuple[None, None]:
    """(id, status) of the last recorded run of the event, without creating a history."""
    from orchestrator.state.history import History

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


def recover_command(ctx: Context) -> int:
    """``hookrun recover``: run the pending cleanups of crashed runs; returns 0. A state
    directory that does not exist (a mistyped ``--state-dir``) has nothing to recover: it is
    not created. One that cannot be looked at (EACCES) is the Session's refusal (73), never
    "nothing to recover"."""
    try:
        os.lstat(ctx.state_dir)
    except FileNotFoundError:
        from orchestrator.report.output import Reporter
        from orchestrator.report.printer import Console

        Reporter(Console(ctx.color, ctx.quiet, ctx.verbose), None).nothing_to_recover()
        return c.EXIT_OK
    except OSError:
        pass
    with Session(ctx, new_run_id()) as session:
        engine = session.open_run(recorded=False)
        assert engine is not None  # it gives way to no other run: it holds no event lock
        history = open_history(os.path.join(ctx.state_dir, c.HISTORY_NAME),
                               session.reporter)
        try:
            records = recover(engine, history, ctx.state_dir).records
            # Cleanups that the replayed cleanups registered themselves.
            engine.run_cleanups()
        finally:
            session.close_run(engine)
            history.close()
        if not records:
            session.reporter.nothing_to_recover()
        if session.signals.first:
            return c.SIGNAL_EXIT_BASE + session.signals.first
    return c.EXIT_OK


def signal_exit(session: Session) -> int:
    """The exit status (128+N) of a command that a signal stopped while it waited, for the
    event lock or for a recovery to end."""
    signum = session.signals.first
    assert signum is not None  # those waits end early only for a signal
    return c.SIGNAL_EXIT_BASE + signum
