"""One phase directory run by the rules of design.md section 1: order, skips, critical stops,
the exit-code protocol. Shared by ``hookrun run`` and ``hookrun phase``."""

from orchestrator.outcome import Verdict
from orchestrator.printer import display_name


class PhaseResult:
    """The task runs of a phase, the records of all its tasks (run or skipped), and the run
    that stopped it or asked to skip the run, if any."""

    __slots__ = ("runs", "records", "stopped", "soft_skip")

    def __init__(self):
        self.runs = []
        self.records = []
        self.stopped = None
        self.soft_skip = None


def runnable(hooks):
    return [hook for hook in hooks if hook.entry.runs]


def note_silent_skips(reporter, hooks):
    """Note the files passed over without a word (shown with -v)."""
    for hook in hooks:
        entry = hook.entry
        if not entry.runs and not entry.warn:
            reporter.note(f"{display_name(entry.key)}: skipped: {entry.reason}")


def run_phase(engine, hooks, skip_reason=lambda hook: None, after_stop=lambda hook: False):
    """Run the runnable ``hooks`` in order; a hook that cannot start (not executable, a
    broken symlink, a missing interpreter) is a task ``failed``, judged by its settings like
    any failure; a directory, fifo, socket or device is a warning and a task ``skipped``,
    and so is a hook whose ``events=`` does not name the run's event. ``skip_reason(hook)``
    returns why a hook must not run (or None); it is asked before each hook, so it can see
    signals that came meanwhile. Once a hook stopped the phase, only the hooks for which
    ``after_stop(hook)`` is true still run."""
    result = PhaseResult()
    note_silent_skips(engine.reporter, hooks)
    todo = runnable(hooks)
    index = 0
    for hook in hooks:
        entry = hook.entry
        if entry.warn:
            engine.reporter.warn(f"{display_name(entry.key)}: skipped: {entry.reason}")
            result.records.append(engine.skipped(entry.phase.kind, entry.name, entry.reason))
            continue
        if not entry.runs:
            continue
        index += 1
        reason = skip_reason(hook)
        if reason is None and engine.signals.hard_stop:
            reason = "interrupted twice"
        if reason is None and hook.settings.events and engine.ctx.event not in \
                hook.settings.events:
            reason = f"event {engine.ctx.event} not in events={','.join(hook.settings.events)}"
        if reason is None and result.stopped and not after_stop(hook):
            reason = f"phase stopped by {display_name(result.stopped.record.name)}"
        if reason is None and result.soft_skip:
            skipper = result.soft_skip.record
            reason = f"run skipped by {display_name(skipper.name)} ({skipper.reason})"
        if reason is not None:
            result.records.append(engine.skipped(entry.phase.kind, entry.name, reason))
            continue
        if entry.fails:
            run = engine.cannot_start(hook)
        else:
            run = engine.run_hook(hook, index, len(todo))
        result.runs.append(run)
        result.records.append(run.record)
        if run.verdict == Verdict.STOP and not result.stopped:
            result.stopped = run
        elif run.verdict == Verdict.SOFT_SKIP:
            result.soft_skip = run
    return result
