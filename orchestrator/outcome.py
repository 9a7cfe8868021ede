"""Outcomes as data: the statuses of tasks and runs, task records, what a hook's exit status
means (``judge``), and what the state of a run means for what follows (``RunState``).

Each status is spelled once, here; metrics, SQL, notifications and the terminal derive their
spellings from these constants. (Plain classes and named tuples: ``enum`` and ``dataclasses``
cost more start-up than everything else hookrun imports.)
"""

from __future__ import annotations

from collections import namedtuple

from orchestrator import constants as c

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Collection, Iterable
    from typing import NamedTuple

    from orchestrator.process import ProcessResult


class TaskStatus:
    OK = "ok"
    WARNING = "warning"  # exited with one of its warning codes: succeeded, with a warning
    FAILED = "failed"
    TIMEOUT = "timeout"
    ABORTED = "aborted"  # the hook gave up (62), or skipped the run (75 in pre-)
    SKIPPED = "skipped"  # not run; the reason says why
    RUNNING = "running"  # only while a run goes on, in the history
    ALL = (OK, WARNING, FAILED, TIMEOUT, ABORTED, SKIPPED)
    FAILURES = (FAILED, TIMEOUT)
    SUCCEEDED = (OK, WARNING)  # the step did its job: when=success hooks run


class RunStatus:
    RUNNING = "running"
    SUCCESS = "success"
    WARNING = "warning"
    FAILURE = "failure"
    SKIPPED = "skipped"
    INTERRUPTED = "interrupted"
    ALL = (SUCCESS, WARNING, FAILURE, SKIPPED, INTERRUPTED)
    SUCCESSES = (SUCCESS, WARNING)
    FAILURES = (FAILURE, INTERRUPTED)


class CommandState:
    """What post- hooks are told of the command (HOOKRUN_STATUS in post-, ``--status``)."""

    SUCCESS = "success"
    FAILURE = "failure"
    NOT_RUN = "not-run"
    ALL = (SUCCESS, FAILURE, NOT_RUN)


class When:
    """The values of a post- hook's ``when`` directive."""

    RAN = "ran"
    SUCCESS = CommandState.SUCCESS
    FAILURE = CommandState.FAILURE
    ALWAYS = "always"
    ALL = (RAN, SUCCESS, FAILURE, ALWAYS)


class Verdict:
    """What the run does after a hook's last attempt."""

    OK = "ok"                # success
    CONTINUE = "continue"    # a failure that is only a warning (62, 63 outside pre-, warn)
    STOP = "stop"            # stop the phase (on-failure=stop) and, in pre-, the run
    SOFT_SKIP = "soft-skip"  # 75 in pre-, or on-failure=skip-run: skip the run, not an error
    IGNORE = "ignore"        # on-failure=ignore: recorded as failed, and nothing more


class OnFailure:
    """The values of the ``on-failure`` directive, and the verdict of a failure for each."""

    STOP = "stop"
    WARN = "warn"
    IGNORE = "ignore"
    SKIP_RUN = "skip-run"
    ALL = (STOP, WARN, IGNORE, SKIP_RUN)
    VERDICTS = {STOP: Verdict.STOP, WARN: Verdict.CONTINUE, IGNORE: Verdict.IGNORE,
                SKIP_RUN: Verdict.SOFT_SKIP}


# The named tuples below are collections.namedtuple at run time (typing costs start-up); the
# checker sees a typed twin of each: the same fields, in the same order, with the same defaults.
if TYPE_CHECKING:
    class TaskRecordFields(NamedTuple):
        phase: str
        name: str
        status: str
        exit_code: int | None = None
        attempts: int = 0
        started: str | None = None
        duration: float = 0.0
        cpu_seconds: float = 0.0
        max_rss_bytes: int | None = None
        reason: str | None = None
        output: str = ""
        verdict: str = Verdict.OK
        said: str = ""
        tail: bytes = b""
        stdout: bytes = b""
else:
    TaskRecordFields = namedtuple("TaskRecord", (
        "phase", "name", "status", "exit_code", "attempts", "started", "duration",
        "cpu_seconds", "max_rss_bytes", "reason", "output", "verdict", "said", "tail",
        "stdout"),
        defaults=(None, 0, None, 0.0, 0.0, None, None, "", Verdict.OK, "", b"", b""))


class TaskRecord(TaskRecordFields):
    """A finished task. Its fields up to ``output`` are its row in history and ``--json``
    (history.TASK_FIELDS); the others are what the run makes of it and are not kept: its
    ``verdict`` (Verdict: what it means for the run), and, for a failure or a warning, the
    last line it said (``said``, for HOOKRUN_ERROR and HOOKRUN_WARNINGS), for a failure its
    last output lines (``tail``, the error log), for the command its kept stdout (``stdout``,
    for the backup's statistics)."""

    __slots__ = ()

    @property
    def failed(self) -> bool:
        """A failure, which makes the run at least a ``warning`` (unless the hook ignores its
        failures). A hook that gave up (62) is not one: it stepped aside."""
        return self.status in TaskStatus.FAILURES


if TYPE_CHECKING:
    class Judgement(NamedTuple):
        status: str
        reason: str | None
        retry: bool
        verdict: str
        exit_code: int | None = None
        notice: str | None = None
else:
    Judgement = namedtuple("Judgement", "status reason retry verdict exit_code notice",
                           defaults=(None, None))
Judgement.__doc__ = """The meaning of one attempt: the task status, the reason shown, whether a
retry is allowed, the verdict if no retry follows, the exit status its record keeps (124 for
a command that timed out), and a notice to warn with (what exit 62 or 63 did), or None."""


NOT_HOOKS = (c.PHASE_COMMAND, c.PHASE_CLEANUP, c.PHASE_RECOVER)


def judge(phase: str, outcome: ProcessResult, on_failure: str,
          warning_codes: Collection[int] = (), timeout: float | None = None) -> Judgement:
    """Judge one attempt of a task of ``phase`` that ended with ``outcome`` (see
    judge_status; ``timeout``: its limit, which a timeout's reason names), with the exit
    status its record keeps: a command that timed out exits 124, as timeout(1)'s does."""
    status, reason, retry, verdict, _code, notice = judge_status(phase, outcome, on_failure,
                                                                warning_codes, timeout)
    code = c.EXIT_COMMAND_TIMEOUT if phase == c.PHASE_COMMAND and status == TaskStatus.TIMEOUT \
        else outcome.exit_code
    # Built anew rather than with _replace, which costs three times as much: once a hook.
    return Judgement(status, reason, retry, verdict, code, notice)


def judge_status(phase: str, outcome: ProcessResult, on_failure: str,
                 warning_codes: Collection[int] = (), timeout: float | None = None
                 ) -> Judgement:
    """Judge one attempt of a task of ``phase`` that ended with ``outcome`` (a
    process.ProcessResult), given what its failures do (``on_failure``) and which exit statuses
    are only warnings (``warning_codes``: restic's 3, borg's 1, rsync's 24). With
    ``ignore``, exit statuses 62, 63 and 75 mean nothing special. The command is judged
    with ``stop``. A check that could not give its answer (a timeout, a signal, a failure
    to start) is a failure even when its failures skip the run: a broken check is not a
    skip."""
    code = outcome.exit_code
    failure = OnFailure.VERDICTS[on_failure]
    broken = Verdict.STOP if failure == Verdict.SOFT_SKIP else failure
    if outcome.timed_out:
        return Judgement(TaskStatus.TIMEOUT, timeout_reason(outcome, timeout), True, broken)
    if outcome.interrupted_by:
        return Judgement(TaskStatus.FAILED, f"interrupted ({signal_name(outcome.interrupted_by)})",
                         False, broken)
    if outcome.spawn_error:
        return Judgement(TaskStatus.FAILED, outcome.spawn_error, True, broken)
    if outcome.killed_by:
        return Judgement(TaskStatus.FAILED, f"killed by {signal_name(outcome.killed_by)}", True,
                         broken)
    if code == 0:
        return Judgement(TaskStatus.OK, None, False, Verdict.OK)
    if code in warning_codes:
        return Judgement(TaskStatus.WARNING, f"exit {code}: a warning code", False, Verdict.OK)
    # The exit-code protocol (62, 63, 75) is the hooks': a command or a cleanup line that
    # happens to exit 62 failed like any other.
    if failure != Verdict.IGNORE and phase not in NOT_HOOKS:
        if code == c.HOOK_ABORT_CONTINUE:
            return Judgement(TaskStatus.ABORTED, "ABORT_CONTINUE", False, Verdict.CONTINUE,
                             notice="gave up (exit 62, ABORT_CONTINUE)")
        if code == c.HOOK_ABORT_STOP and phase == c.PHASE_PRE:
            return Judgement(TaskStatus.FAILED, "ABORT_STOP", False, Verdict.STOP)
        if code == c.HOOK_ABORT_STOP:
            # Outside pre- there is no run left to stop: 63 gives up as 62 does.
            return Judgement(TaskStatus.ABORTED, "ABORT_STOP", False, Verdict.CONTINUE,
                             notice="exited 63 (ABORT_STOP), which only stops the run in "
                                    "pre-: the chain goes on")
        if code == c.HOOK_SOFT_SKIP and phase == c.PHASE_PRE:
            return Judgement(TaskStatus.ABORTED, "soft skip (exit 75)", False, Verdict.SOFT_SKIP)
    if failure == Verdict.SOFT_SKIP:
        return Judgement(TaskStatus.FAILED, f"skip-run after exit {code}", True, failure)
    return Judgement(TaskStatus.FAILED, f"exit {code}", True, failure)


def timeout_reason(outcome: ProcessResult, timeout: float | None = None) -> str:
    """``no output for 30m`` when the timeout was a stall, else ``timed out after 1s`` with
    the limit ``timeout`` (the limit, not the time taken: "timed out" after 4.25s says
    nothing of a 1s timeout that one slow machine made late), or ``timed out``."""
    from orchestrator.timestamps import format_duration

    if outcome.stalled:
        return f"no output for {format_duration(outcome.stalled)}"
    return f"timed out after {format_duration(timeout)}" if timeout else "timed out"


def cannot_start(reason: str, on_failure: str) -> Judgement:
    """The judgement of a hook that cannot start (``not executable``, ``broken symlink``,
    ``interpreter ... not found``): a failure, never retried, and never a skip."""
    failure = OnFailure.VERDICTS[on_failure]
    return Judgement(TaskStatus.FAILED, reason, False,
                     Verdict.STOP if failure == Verdict.SOFT_SKIP else failure)


def signal_name(signum: int) -> str:
    import signal

    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


if TYPE_CHECKING:
    class Failure(NamedTuple):
        line: str
        phase: str
        hook: str
        log: str
        decisive: bool
        output: bytes = b""
else:
    Failure = namedtuple("Failure", "line phase hook log decisive output", defaults=(b"",))
Failure.__doc__ = """The failure HOOKRUN_ERROR tells of: its line, the phase and name of the
failed step, the file with its last output lines (HOOKRUN_ERROR_LOG), whether it decided the
run, and those last output lines themselves (what notifications carry)."""


class RunState:
    """What has happened in a run so far, and all that follows from it: the run's status,
    what post- hooks are told of the command, which handlers run, hookrun's exit status. The
    lifecycle tells it the facts of each step, through its transitions (signal,
    pre_finished, command_finished, post_stopped, post_finished, cleanups_finished, and
    take_failure and warn for a task's failure or warning); every decision is taken here,
    and tested as a table.

    ``status`` is its one state field: the run's status so far. It only moves up RANK (success,
    warning, failure, skipped, interrupted): a later fact can make a run worse, never better;
    but a fault (a step that could not go on) fails a skipped run too. The rest is what that
    state is about: ``interrupted_by``, the first signal; ``skipped_by``, what skipped the run
    (``pre/10-x (soft skip (exit 75))``); ``failure``, the failure HOOKRUN_ERROR tells of;
    ``warnings``, HOOKRUN_WARNINGS's lines; ``command``, the command given (a list, maybe
    empty); ``command_record``, its TaskRecord once it ran; ``dry_success``: a dry run reached
    the command, which it does not run, and takes it as succeeded.
    """

    RANK = (RunStatus.SUCCESS, RunStatus.WARNING, RunStatus.FAILURE, RunStatus.SKIPPED,
            RunStatus.INTERRUPTED)

    __slots__ = ("status", "command", "command_record", "skipped_by", "interrupted_by",
                 "failure", "warnings", "dry_success", "fault_exit")

    def __init__(self, command: Iterable[str] = ()) -> None:
        self.status: str = RunStatus.SUCCESS
        self.command = list(command)
        self.command_record: TaskRecord | None = None
        self.skipped_by: str | None = None
        self.interrupted_by: int | None = None
        self.failure: Failure | None = None
        self.warnings: list[str] = []
        self.dry_success = False
        self.fault_exit: int | None = None

    def become(self, status: str) -> None:
        """Move to ``status`` if it is worse than the status so far."""
        if self.RANK.index(status) > self.RANK.index(self.status):
            self.status = status

    # The transitions: the facts of each step.

    def signal(self, signum: int | None) -> None:
        """hookrun received ``signum`` (the first signal; None or 0 if none came yet)."""
        if signum and self.interrupted_by is None:
            self.interrupted_by = signum
            self.become(RunStatus.INTERRUPTED)

    def pre_finished(self, stopped: bool, skipped_by: str | None = None) -> None:
        """pre- ended: a hook ``stopped`` the run, or one skipped it (``skipped_by``: what
        skipped it, in its own words)."""
        if skipped_by:
            self.skipped_by = skipped_by
            self.become(RunStatus.SKIPPED)
        elif stopped:
            self.become(RunStatus.FAILURE)

    def command_finished(self, record: TaskRecord | None, dry_run: bool = False) -> None:
        """The command ended with ``record``; in a dry run (``dry_run``) it was reached, not
        run (``record`` None), and is taken as succeeded."""
        if dry_run:
            self.dry_success = True
            return
        self.command_record = record
        if self.command_failed:
            self.become(RunStatus.FAILURE)

    def post_stopped(self) -> None:
        """A critical post- hook failed: a run whose command succeeded is a failure from
        now on, so the post- hooks that still run (when=always) are told it failed."""
        self.become(RunStatus.FAILURE)

    def post_finished(self, stopped: bool) -> None:
        """post- ended; a critical post- hook that failed ``stopped`` the run (post_stopped,
        told when it happened)."""
        if stopped:
            self.post_stopped()

    def cleanups_finished(self, journal_path: str, unreadable: bool, damaged: int) -> None:
        """The wind-down ended, its cleanups' journal ``unreadable`` (left for recovery) or
        with ``damaged`` lines not run: an undo that did not happen is not a success."""
        if unreadable:
            self.warn(f"cleanup journal {journal_path} could not be read: its cleanups are "
                      "left for 'hookrun recover'")
        if damaged:
            self.warn(f"cleanup journal {journal_path}: {damaged} damaged line(s) not run")

    def fault(self, line: str, exit_status: int) -> None:
        """A step could not go on (the state directory refused a hook's files, an internal
        fault): the run failed, with ``exit_status`` unless the command's own failure or a
        signal says otherwise, and ``line`` is its HOOKRUN_ERROR if none came before."""
        self.take_failure(Failure(line, "", "", "", True))
        if self.status != RunStatus.INTERRUPTED:
            # The one move down RANK: a skip must not hide that a step could not go on.
            self.status = RunStatus.FAILURE
        if self.fault_exit is None:
            self.fault_exit = exit_status

    def takes_failure(self, decisive: bool) -> bool:
        """Whether a failure (``decisive``: it decides the run) would now be the one
        HOOKRUN_ERROR tells of: the first decisive one. Others are warnings."""
        return decisive and self.failure is None

    def take_failure(self, failure: Failure) -> None:
        """A task failed, and its ``failure`` is the one HOOKRUN_ERROR tells of (see
        takes_failure). A failure alone makes a run a warning; what stops it, fails it."""
        if self.takes_failure(failure.decisive):
            self.failure = failure
        self.become(RunStatus.WARNING)

    def warn(self, line: str) -> None:
        """Something failed, or warned, that leaves the run a warning: ``line`` is for
        HOOKRUN_WARNINGS."""
        self.warnings.append(line)
        self.become(RunStatus.WARNING)

    # What follows from the state.

    @property
    def command_failed(self) -> bool:
        record = self.command_record
        return record is not None and record.status not in TaskStatus.SUCCEEDED

    def skip_text(self) -> str:
        """``run skipped by pre/10-x (soft skip (exit 75))``: what skipped the run, in its
        own words (a skip-run after exit 1 is not an exit 75)."""
        return f"run skipped by {self.skipped_by}" if self.skipped_by else "run skipped"

    def command_skip_reason(self) -> str | None:
        """Why the command must not run now, or None."""
        if self.interrupted_by:
            return "interrupted"
        if self.skipped_by:
            return self.skip_text()
        if self.fault_exit is not None:
            return f"a fault stopped the run (exit {self.fault_exit})"
        if self.status == RunStatus.FAILURE:
            return "pre- hook stopped the run"
        return None

    def command_state(self) -> str:
        """The command as post- hooks see it: success, failure or not-run. No command is a
        success, unless the run was stopped, skipped or interrupted before it."""
        if self.command_record is None:
            if self.dry_success:
                return CommandState.SUCCESS
            if self.command or self.command_skip_reason():
                return CommandState.NOT_RUN
            return CommandState.SUCCESS
        return CommandState.FAILURE if self.command_failed else CommandState.SUCCESS

    def post_skip_reason(self, when: str | None, interrupted_before: bool) -> str | None:
        """Why a post- hook with ``when`` must not run, or None; ``interrupted_before`` says
        whether the interruption came before post- began."""
        if self.skipped_by:
            return self.skip_text()
        if self.interrupted_by and not interrupted_before:
            return "interrupted"
        if interrupted_before and when != When.ALWAYS:
            return f"when={when}: run interrupted"
        return when_skip_reason(when, self.command_state())

    def handlers(self) -> str | None:
        """The phase of handlers this run gets: on-error, on-success, or None (skipped)."""
        if self.status == RunStatus.SKIPPED:
            return None
        return c.PHASE_ON_ERROR if self.status in RunStatus.FAILURES else c.PHASE_ON_SUCCESS

    def exit_status(self) -> int:
        """hookrun's exit status (design.md section 2)."""
        if self.status == RunStatus.INTERRUPTED:
            # Only signal() interrupts a run, and it keeps the signal before it does.
            assert self.interrupted_by is not None
            return c.SIGNAL_EXIT_BASE + self.interrupted_by
        if self.status == RunStatus.FAILURE:
            # A command that ran has an exit status (126 or 127 if it could not start).
            record = self.command_record
            code = record.exit_code if record is not None and self.command_failed else None
            if code is None:
                code = self.fault_exit
            return c.EXIT_HOOK_STOPPED if code is None else code
        return c.EXIT_OK

    def error_line(self) -> str:
        """HOOKRUN_ERROR: what failed, after what interrupted the run; "" unless the run (so
        far) failed or was interrupted: a run that is a warning has no error to tell of."""
        if self.status not in RunStatus.FAILURES:
            return ""
        line = self.failure.line if self.failure else ""
        if self.interrupted_by:
            interrupted = f"interrupted by {signal_name(self.interrupted_by)}"
            return f"{interrupted}; {line}" if line else interrupted
        return line

    def said_failure(self) -> Failure | None:
        """The failure HOOKRUN_ERROR_* tell of, or None while the run has not failed."""
        return self.failure if self.status in RunStatus.FAILURES else None


def when_skip_reason(when: str | None, state: str) -> str | None:
    """Why a hook with ``when`` (None outside post-) must not run once the command's state
    is ``state``; None if it runs."""
    if when in (None, When.ALWAYS):
        return None
    if state == CommandState.NOT_RUN:
        return f"when={when}: the command did not run"
    if when in (When.RAN, state):
        return None
    return f"when={when}: the command's status is {state}"
