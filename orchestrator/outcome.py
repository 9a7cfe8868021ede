"""Outcomes as data: the statuses of tasks and runs, task records, what a hook's exit status
means (``judge``), and what the state of a run means for what follows (``RunState``).

Each status is spelled once, here; metrics, SQL, notifications and the terminal derive their
spellings from these constants. (Plain classes and named tuples: ``enum`` and ``dataclasses``
cost more start-up than everything else hookrun imports.)
"""

from collections import namedtuple

from orchestrator import constants as c


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


class TaskRecord(namedtuple("TaskRecord", (
        "phase", "name", "status", "exit_code", "attempts", "started", "duration",
        "cpu_seconds", "max_rss_bytes", "reason", "output"),
        defaults=(None, 0, None, 0.0, 0.0, None, None, ""))):
    """One row of a run's tasks, as history and ``--json`` show it."""

    __slots__ = ()

    @property
    def failed(self):
        """A failure, which makes the run at least a ``warning`` (unless the hook ignores its
        failures). A hook that gave up (62) is not one: it stepped aside."""
        return self.status in TaskStatus.FAILURES


Judgement = namedtuple("Judgement", "status reason retry verdict")
Judgement.__doc__ = """The meaning of one attempt: the task status, the reason shown, whether a
retry is allowed, and the verdict if no retry follows."""


def judge(kind, outcome, on_failure, warning_codes=()):
    """Judge one attempt of a task of phase ``kind`` that ended with ``outcome`` (a
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
        return Judgement(TaskStatus.TIMEOUT, timeout_reason(outcome), True, broken)
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
    if failure != Verdict.IGNORE and kind != c.PHASE_COMMAND:
        if code == c.HOOK_ABORT_CONTINUE:
            return Judgement(TaskStatus.ABORTED, "ABORT_CONTINUE", False, Verdict.CONTINUE)
        if code == c.HOOK_ABORT_STOP and kind == c.PHASE_PRE:
            return Judgement(TaskStatus.FAILED, "ABORT_STOP", False, Verdict.STOP)
        if code == c.HOOK_ABORT_STOP:
            # Outside pre- there is no run left to stop: 63 gives up as 62 does.
            return Judgement(TaskStatus.ABORTED, "ABORT_STOP", False, Verdict.CONTINUE)
        if code == c.HOOK_SOFT_SKIP and kind == c.PHASE_PRE:
            return Judgement(TaskStatus.ABORTED, "soft skip (exit 75)", False, Verdict.SOFT_SKIP)
    if failure == Verdict.SOFT_SKIP:
        return Judgement(TaskStatus.FAILED, f"skip-run after exit {code}", True, failure)
    return Judgement(TaskStatus.FAILED, f"exit {code}", True, failure)


def timeout_reason(outcome):
    """``timed out``, or ``no output for 30m`` when the timeout was a stall."""
    if outcome.stalled:
        from orchestrator.plan.settings import format_duration

        return f"no output for {format_duration(outcome.stalled)}"
    return "timed out"


def cannot_start(reason, on_failure):
    """The judgement of a hook that cannot start (``not executable``, ``broken symlink``,
    ``interpreter ... not found``): a failure, never retried, and never a skip."""
    failure = OnFailure.VERDICTS[on_failure]
    return Judgement(TaskStatus.FAILED, reason, False,
                     Verdict.STOP if failure == Verdict.SOFT_SKIP else failure)


def signal_name(signum):
    import signal

    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


Failure = namedtuple("Failure", "line phase hook log decisive")
Failure.__doc__ = """The failure HOOKRUN_ERROR tells of: its line, the phase and name of the
failed step, the file with its last output lines, and whether it decided the run."""


class RunState:
    """What has happened in a run so far, and all that follows from it: the run's status,
    what post- hooks are told of the command, which handlers run, hookrun's exit status. The
    lifecycle tells it what happens; every decision is taken here, and tested as a table.

    ``stopped``: a hook stopped the run (a pre- stop or 63, or a critical post- failure after
    a successful command). ``skipped``: a pre- hook skipped the run (75, skip-run): what
    skipped it, ``pre/10-x (soft skip (exit 75))``, or True. ``warned``: something failed
    that does not fail the run; ``warnings`` its lines (HOOKRUN_WARNINGS). ``failure``: the
    failure that decided the run (HOOKRUN_ERROR). ``command``: the command given (a list,
    maybe empty); ``command_record``: its TaskRecord once it ran. ``dry_success``: a dry
    run reached the command, which it does not run, and takes it as succeeded.
    """

    __slots__ = ("command", "command_record", "stopped", "skipped", "warned", "interrupted_by",
                 "failure", "warnings", "dry_success")

    def __init__(self, command=()):
        self.command = list(command)
        self.command_record = None
        self.stopped = False
        self.skipped = False
        self.warned = False
        self.interrupted_by = None
        self.failure = None
        self.warnings = []
        self.dry_success = False

    @property
    def command_failed(self):
        record = self.command_record
        return record is not None and record.status not in TaskStatus.SUCCEEDED

    def status(self):
        if self.interrupted_by:
            return RunStatus.INTERRUPTED
        if self.skipped:
            return RunStatus.SKIPPED
        if self.stopped or self.command_failed:
            return RunStatus.FAILURE
        if self.warned:
            return RunStatus.WARNING
        return RunStatus.SUCCESS

    def skip_text(self):
        """``run skipped by pre/10-x (soft skip (exit 75))``: what skipped the run, in its
        own words (a skip-run after exit 1 is not an exit 75)."""
        return f"run skipped by {self.skipped}" if isinstance(self.skipped, str) \
            else "run skipped"

    def command_skip_reason(self):
        """Why the command must not run now, or None."""
        if self.interrupted_by:
            return "interrupted"
        if self.skipped:
            return self.skip_text()
        if self.stopped:
            return "pre- hook stopped the run"
        return None

    def command_state(self):
        """The command as post- hooks see it: success, failure or not-run. No command is a
        success, unless the run was stopped, skipped or interrupted before it."""
        if self.command_record is None:
            if self.dry_success:
                return CommandState.SUCCESS
            if self.command or self.command_skip_reason():
                return CommandState.NOT_RUN
            return CommandState.SUCCESS
        return CommandState.FAILURE if self.command_failed else CommandState.SUCCESS

    def post_skip_reason(self, when, interrupted_before):
        """Why a post- hook with ``when`` must not run, or None; ``interrupted_before`` says
        whether the interruption came before post- began."""
        if self.skipped:
            return self.skip_text()
        if self.interrupted_by and not interrupted_before:
            return "interrupted"
        if interrupted_before and when != When.ALWAYS:
            return f"when={when}: run interrupted"
        return when_skip_reason(when, self.command_state())

    def handlers(self):
        """The phase of handlers this run gets: on-error, on-success, or None (skipped)."""
        status = self.status()
        if status == RunStatus.SKIPPED:
            return None
        return c.PHASE_ON_ERROR if status in RunStatus.FAILURES else c.PHASE_ON_SUCCESS

    def exit_status(self):
        """hookrun's exit status (design.md section 2)."""
        if self.interrupted_by:
            return c.SIGNAL_EXIT_BASE + self.interrupted_by
        if self.skipped:
            return c.EXIT_OK
        if self.command_failed:
            return self.command_record.exit_code
        if self.stopped:
            return c.EXIT_HOOK_STOPPED
        return c.EXIT_OK

    def takes_failure(self, decisive):
        """Whether a failure (``decisive``: it decides the run) would now be the one
        HOOKRUN_ERROR tells of: the first decisive one. Others are warnings."""
        return decisive and self.failure is None

    def note_failure(self, failure):
        """Remember ``failure`` for HOOKRUN_ERROR if it takes it (see takes_failure); a
        failure that does not decide the run is a warning."""
        if self.takes_failure(failure.decisive):
            self.failure = failure

    def note_warning(self, line):
        """A failure that leaves the run a warning, for HOOKRUN_WARNINGS."""
        self.warned = True
        self.warnings.append(line)

    def error_line(self):
        """HOOKRUN_ERROR: what failed, after what interrupted the run; "" unless the run (so
        far) failed or was interrupted: a run that is a warning has no error to tell of."""
        if self.status() not in RunStatus.FAILURES:
            return ""
        line = self.failure.line if self.failure else ""
        if self.interrupted_by:
            interrupted = f"interrupted by {signal_name(self.interrupted_by)}"
            return f"{interrupted}; {line}" if line else interrupted
        return line

    def said_failure(self):
        """The failure HOOKRUN_ERROR_* tell of, or None while the run has not failed."""
        return self.failure if self.status() in RunStatus.FAILURES else None


def when_skip_reason(when, state):
    """Why a hook with ``when`` (None outside post-) must not run once the command's state
    is ``state``; None if it runs."""
    if when in (None, When.ALWAYS):
        return None
    if state == CommandState.NOT_RUN:
        return f"when={when}: the command did not run"
    if when in (When.RAN, state):
        return None
    return f"when={when}: the command's status is {state}"
