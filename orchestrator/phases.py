"""One phase directory run by the rules of design.md section 1: order, skips, critical stops,
the exit-code protocol. Shared by ``hookrun run`` and ``hookrun phase``."""

from __future__ import annotations

from orchestrator.errors import UsageError
from orchestrator.outcome import Verdict
from orchestrator.text import display_name

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from orchestrator.engine import Engine
    from orchestrator.outcome import TaskRecord
    from orchestrator.plan.context import PlannedHook
    from orchestrator.plan.discovery import PhaseDir
    from orchestrator.report.output import Reporter

    # Why a hook must not run (or None); whether it is one of those --only chose; what is
    # told of each record as it comes.
    SkipReason = Callable[[PlannedHook], str | None]
    Selected = Callable[[PlannedHook], bool]
    Taken = Callable[[TaskRecord], None]

DRY_RUN_SKIP = "dry run: no dry-run=yes"


class PhaseResult:
    """What a phase's records decided: the record that stopped it or asked to skip the run,
    if any. Each record is handed to ``taken`` as it comes, before the next hook starts
    (the lifecycle keeps them)."""

    __slots__ = ("stopped", "soft_skip", "taken")

    def __init__(self, taken: Taken | None = None) -> None:
        self.stopped: TaskRecord | None = None
        self.soft_skip: TaskRecord | None = None
        self.taken = taken

    def add(self, record: TaskRecord) -> None:
        """Take the record of a hook that ran: the first that stops the phase stops it; one
        may skip the run."""
        if record.verdict == Verdict.STOP and not self.stopped:
            self.stopped = record
        elif record.verdict == Verdict.SOFT_SKIP:
            self.soft_skip = record
        if self.taken:
            self.taken(record)

    def skip(self, record: TaskRecord) -> None:
        """Take the record of a hook that did not run."""
        if self.taken:
            self.taken(record)


def runnable(hooks: Sequence[PlannedHook]) -> list[PlannedHook]:
    return [hook for hook in hooks if hook.entry.runs]


def select_only(phase_dir: PhaseDir, hooks: Sequence[PlannedHook], names: Sequence[str],
                dry_run: bool = False) -> Selected:
    """The names of ``hooks`` (the PlannedHooks of PhaseDir ``phase_dir``, layered) that
    ``phase --only`` chose: each of ``names`` must be a hook a run of the directory would
    start (UsageError, exit 2, naming the hooks there, or why a run passes it over); under
    a dry run it must also take part in one. Returns the ``selected`` of run_phase."""
    by_name: dict[str, PlannedHook] = {}
    for planned in hooks:
        # A name hidden by a later .hookignore comes after the earlier file that runs.
        by_name.setdefault(planned.entry.name, planned)
    for name in names:
        hook = by_name.get(name)
        if not name:
            raise UsageError("phase: --only: an empty value is not a value (give a hook's "
                             "file name)")
        if hook is None:
            there = [display_name(h.entry.name) for h in hooks if h.entry.runs]
            raise UsageError(f"phase: --only {name}: no such hook in {phase_dir.dirname} "
                             f"({'its hooks: ' + ', '.join(there) if there else 'it has none'})")
        entry = hook.entry
        if not entry.runs:
            raise UsageError(f"phase: --only {name}: {entry.key} is not run ({entry.reason}); "
                             "a run passes it over, and so does --only")
        if dry_run and not hook.settings.dry_run:
            raise UsageError(f"phase: --only {name}: {entry.key} has no dry-run=yes, so a dry "
                             "run does not run it")
    chosen = frozenset(names)
    return lambda hook: hook.entry.name in chosen


def note_silent_skips(reporter: Reporter, hooks: Sequence[PlannedHook]) -> None:
    """Note the files passed over without a word (shown with -v)."""
    for hook in hooks:
        entry = hook.entry
        if not entry.runs and not entry.warn:
            reporter.passed_over(entry.key, entry.reason)


def no_skip(_hook: PlannedHook) -> str | None:
    return None


def never(_hook: PlannedHook) -> bool:
    return False


def run_phase(engine: Engine, hooks: Sequence[PlannedHook], skip_reason: SkipReason = no_skip,
              after_stop: Selected = never, selected: Selected | None = None,
              taken: Taken | None = None) -> PhaseResult:
    """Run the runnable ``hooks`` in order; a hook that cannot start (not executable, a
    broken symlink, a missing interpreter) is a task ``failed``, judged by its settings like
    any failure; a directory, fifo, socket or device is a warning and a task ``skipped``,
    and so is a hook whose ``events=`` does not name the run's event. ``skip_reason(hook)``
    returns why a hook must not run (or None); it is asked before each hook, so it can see
    signals that came meanwhile. Once a hook stopped the phase, only the hooks for which
    ``after_stop(hook)`` is true still run. With ``selected`` (``phase --only``), the hooks
    for which it is false are passed over without a record or a warning, yet keep their
    places: HOOKRUN_INDEX and HOOKRUN_COUNT are what a whole run would give. ``taken`` is
    told of each record as it comes (PhaseResult)."""
    result = PhaseResult(taken)
    chosen = hooks if selected is None else [hook for hook in hooks if selected(hook)]
    for hook in hooks:
        if selected is not None and not selected(hook):
            engine.reporter.not_selected(hook.entry.key)
    note_silent_skips(engine.reporter, chosen)
    count = len(runnable(hooks))
    index = 0
    for hook in hooks:
        entry = hook.entry
        if selected is not None and not selected(hook):
            index += 1 if entry.runs else 0
            continue
        if entry.warn:
            engine.reporter.skipped_file(entry.key, entry.reason)
            result.skip(engine.skipped(entry.phase_dir.phase, entry.name, entry.reason))
            continue
        if not entry.runs:
            continue
        index += 1
        reason = why_not(engine, hook, result, skip_reason, after_stop)
        if reason is not None:
            result.skip(engine.skipped(entry.phase_dir.phase, entry.name, reason))
        elif entry.fails:
            result.add(engine.cannot_start(hook))
        else:
            result.add(engine.run_hook(hook, index, count))
    return result


def why_not(engine: Engine, hook: PlannedHook, result: PhaseResult, skip_reason: SkipReason,
            after_stop: Selected) -> str | None:
    """Why a runnable ``hook`` must not run now, or None: what ``skip_reason`` says (asked
    first: it also looks at the signals), a second signal, its events=, the phase stopped
    (unless ``after_stop``), the run skipped."""
    reason = skip_reason(hook)
    if reason is None and engine.signals.hard_stop:
        reason = "interrupted twice"
    events = hook.settings.events
    if reason is None and events and engine.ctx.event not in events:
        reason = f"event {engine.ctx.event} not in events={','.join(events)}"
    if reason is None and result.stopped and not after_stop(hook):
        reason = f"phase stopped by {display_name(result.stopped.name)}"
    if reason is None and result.soft_skip:
        skipper = result.soft_skip
        reason = f"run skipped by {display_name(skipper.name)} ({skipper.reason})"
    return reason
