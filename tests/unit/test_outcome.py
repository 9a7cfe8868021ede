"""What a hook's exit status means, and hookrun's own exit status."""

import pytest

from orchestrator import constants as c
from orchestrator.outcome import (
    CommandState,
    RunState,
    RunStatus,
    TaskRecord,
    TaskStatus,
    Verdict,
    judge,
)
from orchestrator.process import ProcessResult


def exited(code, **kw):
    return ProcessResult(exit_code=code, **kw)


@pytest.mark.parametrize("kind, code, on_failure, status, retry, verdict", [
    ("pre", 0, "stop", TaskStatus.OK, False, Verdict.OK),
    ("pre", 62, "stop", TaskStatus.ABORTED, False, Verdict.CONTINUE),
    ("post", 62, "stop", TaskStatus.ABORTED, False, Verdict.CONTINUE),
    ("pre", 63, "warn", TaskStatus.FAILED, False, Verdict.STOP),
    # Outside pre- there is no run left to stop: 63 gives up as 62 does (design.md 10).
    ("post", 63, "stop", TaskStatus.ABORTED, False, Verdict.CONTINUE),
    ("finally", 63, "warn", TaskStatus.ABORTED, False, Verdict.CONTINUE),
    ("pre", 75, "stop", TaskStatus.ABORTED, False, Verdict.SOFT_SKIP),
    ("post", 75, "warn", TaskStatus.FAILED, True, Verdict.CONTINUE),
    ("post", 75, "stop", TaskStatus.FAILED, True, Verdict.STOP),
    ("pre", 1, "stop", TaskStatus.FAILED, True, Verdict.STOP),
    ("pre", 1, "warn", TaskStatus.FAILED, True, Verdict.CONTINUE),
    ("finally", 2, "warn", TaskStatus.FAILED, True, Verdict.CONTINUE),
    # Backrest's IGNORE and Barman's standard scripts: a failure is recorded, nothing more,
    # and 62, 63, 75 are failures like any other.
    ("pre", 1, "ignore", TaskStatus.FAILED, True, Verdict.IGNORE),
    ("pre", 63, "ignore", TaskStatus.FAILED, True, Verdict.IGNORE),
    ("pre", 75, "ignore", TaskStatus.FAILED, True, Verdict.IGNORE),
    ("post", 62, "ignore", TaskStatus.FAILED, True, Verdict.IGNORE),
    # Backrest's CANCEL: a failure skips the run as 75 does.
    ("pre", 1, "skip-run", TaskStatus.FAILED, True, Verdict.SOFT_SKIP),
    ("pre", 75, "skip-run", TaskStatus.ABORTED, False, Verdict.SOFT_SKIP),
    ("pre", 63, "skip-run", TaskStatus.FAILED, False, Verdict.STOP),
])
def test_exit_code_protocol(kind, code, on_failure, status, retry, verdict):
    judged = judge(kind, exited(code), on_failure)
    assert (judged.status, judged.retry, judged.verdict) == (status, retry, verdict)


def test_63_is_failed_with_reason_abort_stop():
    assert judge("pre", exited(63), "warn").reason == "ABORT_STOP"
    assert "ABORT_STOP" in judge("post", exited(63), "warn").reason


def test_timeout_signal_and_spawn_errors_are_failures_that_may_be_retried():
    timeout = judge("pre", exited(143, timed_out=True), "stop")
    assert (timeout.status, timeout.retry, timeout.verdict) == \
        (TaskStatus.TIMEOUT, True, Verdict.STOP)
    killed = judge("post", exited(137, killed_by=9), "warn")
    assert (killed.status, killed.retry, killed.verdict) == \
        (TaskStatus.FAILED, True, Verdict.CONTINUE)
    assert "SIGKILL" in killed.reason
    missing = judge("pre", exited(127, spawn_error="not found"), "stop")
    assert missing.status == TaskStatus.FAILED and missing.verdict == Verdict.STOP


def test_a_timeout_is_named_by_its_limit_and_a_stall_by_its_silence_in_one_place():
    assert judge("pre", exited(143, timed_out=True), "stop", timeout=1.0).reason == \
        "timed out after 1s"
    assert judge("command", exited(143, timed_out=True), "stop", timeout=90.0).exit_code == 124
    assert judge("pre", exited(143, timed_out=True, stalled=1800.0), "stop",
                 timeout=3600.0).reason == "no output for 30m"
    assert judge("pre", exited(143, timed_out=True), "stop").reason == "timed out"


def test_an_interrupted_hook_is_not_retried():
    judged = judge("pre", exited(130, killed_by=2, interrupted_by=2), "warn")
    assert judged.status == TaskStatus.FAILED and not judged.retry


def state(command=("restic", "backup"), ran=None, stopped=False, skipped=False,
          warned=False, interrupted=None):
    """A RunState as a run leaves it, told the facts through its transitions in a run's
    order: ``ran`` is the command's status (and exit code, 3 for a failure), None when it did
    not run; ``stopped`` a stop in pre- (when the command did not run) or in post-."""
    found = RunState(command)
    if warned:
        found.warn("pre/20-x failed (exit 1)")
    found.pre_finished(stopped and ran is None, "pre/10-x (soft skip (exit 75))"
                       if skipped else None)
    if ran is not None:
        found.command_finished(TaskRecord("command", command[0], ran,
                                          0 if ran == TaskStatus.OK else 3))
        found.post_finished(stopped)
    found.signal(interrupted)
    return found


OK, FAILED = TaskStatus.OK, TaskStatus.FAILED


@pytest.mark.parametrize("facts, status, code, handlers, command_state", [
    (dict(ran=OK), RunStatus.SUCCESS, 0, "on-success", CommandState.SUCCESS),
    (dict(ran=OK, warned=True), RunStatus.WARNING, 0, "on-success", CommandState.SUCCESS),
    (dict(ran=FAILED), RunStatus.FAILURE, 3, "on-error", CommandState.FAILURE),
    (dict(ran=FAILED, warned=True), RunStatus.FAILURE, 3, "on-error", CommandState.FAILURE),
    (dict(stopped=True), RunStatus.FAILURE, c.EXIT_HOOK_STOPPED, "on-error",
     CommandState.NOT_RUN),
    (dict(ran=OK, stopped=True), RunStatus.FAILURE, c.EXIT_HOOK_STOPPED, "on-error",
     CommandState.SUCCESS),
    (dict(ran=FAILED, stopped=True), RunStatus.FAILURE, 3, "on-error", CommandState.FAILURE),
    (dict(skipped=True), RunStatus.SKIPPED, 0, None, CommandState.NOT_RUN),
    (dict(interrupted=2), RunStatus.INTERRUPTED, 130, "on-error", CommandState.NOT_RUN),
    (dict(ran=FAILED, interrupted=15), RunStatus.INTERRUPTED, 143, "on-error",
     CommandState.FAILURE),
    (dict(skipped=True, interrupted=1), RunStatus.INTERRUPTED, 129, "on-error",
     CommandState.NOT_RUN),
    (dict(command=()), RunStatus.SUCCESS, 0, "on-success", CommandState.SUCCESS),
    (dict(command=(), stopped=True), RunStatus.FAILURE, c.EXIT_HOOK_STOPPED, "on-error",
     CommandState.NOT_RUN),
])
def test_run_state_table(facts, status, code, handlers, command_state):
    found = state(**facts)
    assert found.status == status
    assert found.exit_status() == code
    assert found.handlers() == handlers
    assert found.command_state() == command_state


@pytest.mark.parametrize("when, facts, interrupted_before, runs", [
    ("ran", dict(ran=OK), False, True),
    ("ran", dict(ran=FAILED), False, True),
    ("ran", dict(stopped=True), False, False),
    ("success", dict(ran=FAILED), False, False),
    ("failure", dict(ran=FAILED), False, True),
    ("always", dict(stopped=True), False, True),
    ("always", dict(interrupted=15), True, True),
    ("ran", dict(interrupted=15), True, False),
    ("always", dict(ran=OK, interrupted=15), False, False),
    ("always", dict(skipped=True), False, False),
])
def test_which_post_hooks_run(when, facts, interrupted_before, runs):
    reason = state(**facts).post_skip_reason(when, interrupted_before)
    assert (reason is None) is runs, reason


def test_the_error_line_puts_the_interruption_first():
    from orchestrator.outcome import Failure

    found = state(ran=FAILED)
    found.take_failure(Failure("post hook 10-x failed (exit 1)", "post", "10-x", "", False))
    found.take_failure(Failure("command restic failed (exit 3)", "command", "restic", "", True))
    found.take_failure(Failure("finally hook 90-y failed (exit 1)", "finally", "90-y", "",
                               False))
    assert found.error_line() == "command restic failed (exit 3)"
    found.signal(15)
    assert found.error_line() == "interrupted by SIGTERM; command restic failed (exit 3)"
    assert state(interrupted=2).error_line() == "interrupted by SIGINT"


def test_63_has_the_same_reason_in_every_phase():
    assert {judge(kind, exited(63), "stop").reason for kind in ("pre", "post", "finally")} == \
        {"ABORT_STOP"}


def test_a_dry_run_takes_the_command_it_reached_as_succeeded_and_only_that_one():
    reached = state()
    reached.command_finished(None, dry_run=True)
    assert (reached.command_state(), reached.status, reached.exit_status(),
            reached.handlers()) == (CommandState.SUCCESS, RunStatus.SUCCESS, 0, "on-success")
    # Stopped before the command: it was not reached, so post- is told it did not run.
    stopped = state(stopped=True)
    assert (stopped.command_state(), stopped.exit_status()) == \
        (CommandState.NOT_RUN, c.EXIT_HOOK_STOPPED)


def failure(decisive, line="pre hook 10-x failed (exit 1)"):
    from orchestrator.outcome import Failure

    return Failure(line, "pre", "10-x", "", decisive)


CMD_OK = TaskRecord("command", "restic", TaskStatus.OK, 0)
CMD_FAILED = TaskRecord("command", "restic", TaskStatus.FAILED, 3)
CMD_WARNED = TaskRecord("command", "restic", TaskStatus.WARNING, 3)


@pytest.mark.parametrize("facts, reason", [
    ([("pre_finished", True)], "pre- hook stopped the run"),
    # A fault (the state directory refused a hook's files) is no pre- hook's stop, also in a
    # run with no pre- hooks at all (--no-hooks).
    ([("fault", "cannot write", 73)], "a fault stopped the run (exit 73)"),
    ([("pre_finished", False, "pre/10-x (soft skip (exit 75))"), ("fault", "cannot write", 73)],
     "run skipped by pre/10-x (soft skip (exit 75))"),
    ([("fault", "cannot write", 73), ("signal", 15)], "interrupted"),
    ([], None),
])
def test_why_the_command_is_skipped_tells_the_truth(facts, reason):
    found = RunState(("restic", "backup"))
    for name, *args in facts:
        getattr(found, name)(*args)
    assert found.command_skip_reason() == reason


@pytest.mark.parametrize("facts, status, code, handlers", [
    # Each row: the transitions a run makes, in order, and where they leave it.
    ([], RunStatus.SUCCESS, 0, "on-success"),
    ([("warn", "x")], RunStatus.WARNING, 0, "on-success"),
    ([("take_failure", failure(False))], RunStatus.WARNING, 0, "on-success"),
    ([("take_failure", failure(True)), ("pre_finished", True)], RunStatus.FAILURE,
     c.EXIT_HOOK_STOPPED, "on-error"),
    ([("pre_finished", False, "pre/10-x (soft skip (exit 75))")], RunStatus.SKIPPED, 0, None),
    ([("pre_finished", False), ("command_finished", CMD_OK)], RunStatus.SUCCESS, 0,
     "on-success"),
    ([("pre_finished", False), ("command_finished", CMD_WARNED)], RunStatus.SUCCESS, 0,
     "on-success"),
    ([("pre_finished", False), ("command_finished", CMD_FAILED)], RunStatus.FAILURE, 3,
     "on-error"),
    ([("command_finished", CMD_OK), ("post_finished", True)], RunStatus.FAILURE,
     c.EXIT_HOOK_STOPPED, "on-error"),
    ([("command_finished", CMD_FAILED), ("post_finished", True)], RunStatus.FAILURE, 3,
     "on-error"),
    # Told when it happens, so the when=always post- hooks after it know; the end agrees.
    ([("command_finished", CMD_OK), ("post_stopped",)], RunStatus.FAILURE,
     c.EXIT_HOOK_STOPPED, "on-error"),
    ([("command_finished", CMD_OK), ("post_stopped",), ("post_finished", True)],
     RunStatus.FAILURE, c.EXIT_HOOK_STOPPED, "on-error"),
    # A later fact never makes a run better.
    ([("command_finished", CMD_FAILED), ("warn", "x"), ("post_finished", False)],
     RunStatus.FAILURE, 3, "on-error"),
    ([("pre_finished", False, "pre/10-x (skip-run after exit 1)"), ("warn", "cleanup failed"),
      ("cleanups_finished", "cleanup", True, 2)], RunStatus.SKIPPED, 0, None),
    ([("cleanups_finished", "cleanup", False, 1)], RunStatus.WARNING, 0, "on-success"),
    ([("cleanups_finished", "cleanup", True, 0)], RunStatus.WARNING, 0, "on-success"),
    ([("cleanups_finished", "cleanup", False, 0)], RunStatus.SUCCESS, 0, "on-success"),
    # A signal wins over everything, and only the first counts.
    ([("signal", 15), ("signal", 2)], RunStatus.INTERRUPTED, 143, "on-error"),
    ([("command_finished", CMD_FAILED), ("signal", 2)], RunStatus.INTERRUPTED, 130,
     "on-error"),
    ([("pre_finished", False, "pre/10-x (soft skip (exit 75))"), ("signal", 1)],
     RunStatus.INTERRUPTED, 129, "on-error"),
    ([("signal", None), ("signal", 0)], RunStatus.SUCCESS, 0, "on-success"),
    ([("fault", "internal fault: KeyError: 'x'", 70)], RunStatus.FAILURE, 70, "on-error"),
    ([("pre_finished", False, "pre/10-x (soft skip (exit 75))"), ("fault", "cannot write", 73)],
     RunStatus.FAILURE, 73, "on-error"),
    ([("signal", 15), ("fault", "cannot write", 73)], RunStatus.INTERRUPTED, 143, "on-error"),
])
def test_run_state_transitions_table(facts, status, code, handlers):
    found = RunState(("restic", "backup"))
    for name, *args in facts:
        getattr(found, name)(*args)
    assert (found.status, found.exit_status(), found.handlers()) == (status, code, handlers)


def test_the_warnings_of_the_wind_down_name_the_journal_and_what_was_lost():
    found = RunState()
    found.cleanups_finished("/state/runs/x/cleanup", True, 2)
    assert found.warnings == [
        "cleanup journal /state/runs/x/cleanup could not be read: its cleanups are left for "
        "'hookrun recover'", "cleanup journal /state/runs/x/cleanup: 2 damaged line(s) not run"]


def test_a_skipped_run_that_is_interrupted_still_tells_post_hooks_what_skipped_it():
    found = RunState(("restic",))
    found.pre_finished(False, "pre/10-x (soft skip (exit 75))")
    found.signal(15)
    assert found.post_skip_reason("always", False) == \
        "run skipped by pre/10-x (soft skip (exit 75))"
    assert found.command_skip_reason() == "interrupted"


def test_only_the_first_decisive_failure_is_the_runs_error():
    found = RunState()
    found.take_failure(failure(False, "post hook 20-y failed (exit 1)"))
    found.take_failure(failure(True, "pre hook 10-x failed (exit 1)"))
    found.take_failure(failure(True, "pre hook 30-z failed (exit 1)"))
    found.pre_finished(True)
    assert found.error_line() == "pre hook 10-x failed (exit 1)"


@pytest.mark.parametrize("kind, result, code, notice", [
    ("command", exited(143, timed_out=True), c.EXIT_COMMAND_TIMEOUT, None),
    ("pre", exited(143, timed_out=True), 143, None),
    ("command", exited(3), 3, None),
    ("pre", exited(62), 62, "gave up (exit 62, ABORT_CONTINUE)"),
    ("post", exited(63), 63, "exited 63 (ABORT_STOP), which only stops the run in pre-: the "
                             "chain goes on"),
    ("pre", exited(63), 63, None),
])
def test_the_judgement_gives_the_exit_status_to_record_and_what_to_warn(kind, result, code,
                                                                         notice):
    judgement = judge(kind, result, "stop")
    assert (judgement.exit_code, judgement.notice) == (code, notice)
