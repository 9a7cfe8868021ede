"""Where a task's output goes, a block at a time: the terminal, the log file, and the last
lines kept for the error log and the history (TaskOutput); and the Reporter that holds the
terminal and the log together for the lifecycle.

Output arrives as bytes chunks and is handled as blocks: all the complete lines of a chunk,
joined by newlines, never in a Python loop per line; a line longer than MAX_LINE is cut into
pieces and the tail kept for error logs is bounded, so memory stays flat whatever a hook prints.
"""

from __future__ import annotations

import collections

from orchestrator import constants as c
from orchestrator import shell
from orchestrator.errors import fault_text
from orchestrator.text import display_name, last_whole_characters, shown, whole_characters
from orchestrator.timestamps import format_duration

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    from orchestrator.outcome import TaskRecord
    from orchestrator.plan.settings import HookSettings
    from orchestrator.report.logfile import LogFile
    from orchestrator.report.printer import Console

MAX_LINE = 65536
TAIL_LINE = 4096  # bytes of a line kept for the error log and history; the log keeps all
TAIL_BYTES = 1 << 20  # at most this much output is kept (in blocks) for the tail
CUT_MARK = "[...]"  # where a task's output, a line or an error line was cut
ERROR_LINE = 400  # bytes of the failed step's last line kept in HOOKRUN_ERROR


class LineSplitter:
    """Turns chunks into blocks of complete lines (joined by newlines, no final one), keeping
    the unterminated rest for the next chunk."""

    def __init__(self) -> None:
        self.rest = b""

    def feed(self, data: bytes) -> bytes | None:
        """The block of complete lines in what came so far, or None."""
        if self.rest:
            data = self.rest + data
        cut = data.rfind(b"\n")
        if cut < 0:
            if len(data) > MAX_LINE:
                self.rest = b""
                return data
            self.rest = data
            return None
        self.rest = data[cut + 1:]
        if len(self.rest) > MAX_LINE:
            self.rest = b""
            return data
        return data[:cut]

    def flush(self) -> bytes | None:
        rest, self.rest = self.rest, b""
        return rest or None


class Tail(collections.deque[bytes]):
    """The last blocks of output: at least TAIL_BYTES of them, and no more blocks than that
    needs; its size is kept as blocks come, never summed again."""

    def __init__(self) -> None:
        super().__init__()
        self.size = 0

    def add(self, block: bytes) -> None:
        self.append(block)
        self.size += len(block)
        while len(self) > 1 and self.size - len(self[0]) >= TAIL_BYTES:
            self.size -= len(self.popleft())


class TaskOutput:
    """The sink of one task's output: the terminal, the log, and the last lines kept for the
    error log and the history (the last TAIL_BYTES of blocks; lines are counted only when
    the tail is read)."""

    def __init__(self, reporter: Reporter, where: str) -> None:
        self.reporter = reporter
        self.where = where
        self.where_bytes = where.encode("utf-8", "surrogateescape")
        self.splitters = {"stdout": LineSplitter(), "stderr": LineSplitter()}
        self.tail = Tail()
        self.live = reporter.console.live_enabled
        # Streams handed to the terminal as they come, bytes unchanged (the command's stderr
        # while it draws on the terminal itself); they are still kept and logged as lines.
        self.passed: tuple[str, ...] = ()
        # The last blocks of stdout alone, when the command's statistics are read from it.
        self.stdout_kept: Tail | None = None

    def tick(self, elapsed: float) -> None:
        if self.live:
            self.reporter.console.live(self.where, elapsed)
        if self.reporter.on_tick:
            self.reporter.on_tick()

    def __call__(self, stream: str, data: bytes) -> None:
        if stream in self.passed:
            # Written before it is split: a prompt or a progress line has no newline yet.
            self.reporter.console.passthrough(stream, data)
        self.emit(stream, self.splitters[stream].feed(data))

    def emit(self, stream: str, block: bytes | None) -> None:
        if not block:
            return
        self.tail.add(block)
        if stream == "stdout" and self.stdout_kept is not None:
            self.stdout_kept.add(block)
        if stream not in self.passed:
            self.reporter.console.output(self.where, stream, block)
        if self.reporter.log:
            self.reporter.log.lines(self.where_bytes, stream, block)

    def finish(self) -> None:
        for stream, splitter in self.splitters.items():
            self.emit(stream, splitter.flush())

    def tail_list(self, lines: int = c.ERROR_LOG_LINES) -> list[bytes]:
        """The last ``lines`` lines, each cut to TAIL_LINE bytes."""
        found: list[bytes] = []
        for block in self.tail:
            found.extend(block.split(b"\n"))
        return [cut_line(line) if len(line) > TAIL_LINE else line for line in found[-lines:]]

    def keep_stdout(self) -> None:
        """Keep the last blocks of stdout apart too, for stdout_bytes()."""
        self.stdout_kept = Tail()

    def stdout_bytes(self) -> bytes:
        """The last part of stdout (with keep_stdout()): at most about TAIL_BYTES."""
        return b"\n".join(self.stdout_kept or ()) + b"\n"

    def tail_bytes(self) -> bytes:
        return b"".join(line + b"\n" for line in self.tail_list())

    def tail_text(self, lines: int = c.SUMMARY_OUTPUT_LINES,
                  limit: int = c.SUMMARY_OUTPUT_BYTES) -> str:
        """The last ``lines`` lines as text (invalid bytes replaced), at most ``limit`` bytes
        of it in UTF-8 (the last, behind ``[...]``), cut where a character begins: cut
        before decoding, a character split in two grew the text by a replacement one."""
        text = b"\n".join(self.tail_list(lines)).decode("utf-8", "replace")
        data = text.encode("utf-8")
        if len(data) <= limit:
            return text
        return CUT_MARK + last_whole_characters(data, limit - len(CUT_MARK)).decode("utf-8")

    def last_line(self, limit: int = ERROR_LINE) -> str:
        """The last output line that is not blank, as one line of text (or ""): of a line
        redrawn with carriage returns (a progress line), what a terminal shows last."""
        for block in reversed(self.tail):
            for line in reversed(block.split(b"\n")):
                said = redrawn(line)
                if said:
                    text = display_name(whole_characters(said, limit))
                    return f"{text} {CUT_MARK}" if len(said) > limit else text
        for rest in self.splitters.values():
            said = redrawn(rest.rest)
            if said:
                return display_name(whole_characters(said, limit))
        return ""


def cut_line(line: bytes) -> bytes:
    """``line``'s first TAIL_LINE bytes (whole characters) and `` [...]``."""
    return whole_characters(line, TAIL_LINE) + b" " + CUT_MARK.encode()


def redrawn(line: bytes) -> bytes:
    """The last stretch of ``line`` (bytes) after a carriage return that is not blank,
    stripped: "scanning 20%\\rFatal: ..." ends in the error, and a CRLF line in its text."""
    for part in reversed(line.split(b"\r")):
        part = part.strip()
        if part:
            return part
    return b""


class Reporter:
    """The terminal and the log file together, as the lifecycle sees them, and the words of
    what a run tells a person: each warning, note (-v) and log line the lifecycle, the
    engine, the hand-off, the cleanup journal and the history give is a method named for
    what it tells, given data (names, paths, numbers, errors), grouped below by the module
    that tells it. warn() itself takes a line already composed elsewhere in this wing
    (notify, metrics, channels) or one that is also data (a plan's warning, an error's
    own text): see printer.py."""

    def __init__(self, console: Console, log: LogFile | None = None) -> None:
        self.console = console
        self.log = log
        # Called about once a second while a task has run a second.
        self.on_tick: Callable[[], object] | None = None

    def sink(self, where: str) -> TaskOutput:
        return TaskOutput(self, where)

    def started(self, where: str, attempt: int = 1) -> None:
        """The log's line that ``where`` starts its ``attempt``-th attempt (a number from
        the second)."""
        if self.log:
            self.log.event(f"{where} start attempt={attempt}" if attempt > 1
                           else f"{where} start")

    def finished(self, where: str, record: TaskRecord) -> None:
        self.console.finished(where, record)
        if self.log:
            self.log.finished(where, record)
        self.check_log()

    def warn(self, text: str) -> None:
        """A warning line, on stderr and in the log."""
        self.console.warn(text)
        if self.log:
            self.log.event(f"warning: {text}")
        self.check_log()

    @property
    def notes_shown(self) -> bool:
        """Whether notes (-v) are shown: a note that is not is not worth composing."""
        return self.console.verbose and not self.console.discarded["stdout"]

    def note(self, text: str) -> None:
        """A note line, shown with -v."""
        self.console.note(text)

    def check_log(self) -> None:
        if self.log and self.log.error:
            error, self.log.error = self.log.error, None
            self.console.warn(error)

    # What a task's attempts tell (engine.py). Only what did not go as it should composes a
    # line; a hook that succeeds at once costs none of these.

    def hook_settings(self, where: str, settings: HookSettings) -> None:
        """Note (-v) the settings a hook runs with, before it starts."""
        if self.notes_shown:
            from orchestrator.plan.settings import describe

            self.note(f"{where}: {describe(settings)}")

    def hook_notice(self, where: str, notice: str) -> None:
        """Warn of what an exit status did that a person may not expect (outcome.judge's
        ``notice``: exit 62 or 63)."""
        self.warn(f"{where} {notice}")

    def retrying(self, where: str, reason: str | None, attempt: int, retries: int,
                 delay: float) -> None:
        """Warn that ``where`` failed for ``reason`` and is tried again in ``delay`` seconds,
        after ``attempt`` of its ``retries`` retries."""
        self.warn(f"{where}: {reason}; retry {attempt} of {retries} in {format_duration(delay)}")

    def strays(self, where: str, names: Iterable[str]) -> None:
        """Warn that ``where`` left processes (``names``) holding its output open."""
        self.warn(f"{where} left processes running that hold its output open "
                  f"(not killed): {', '.join(names)}")

    def command_argv(self, where: str, argv: Sequence[str]) -> None:
        """Log the command's arguments, as a shell would read them."""
        if self.log:
            self.log.event(f"{where} argv={shell.join(argv)}")

    # What a phase passes over (phases.py): ``key`` is a hook's phase directory and name.

    def passed_over(self, key: str, reason: str) -> None:
        """Note (-v) a file of a phase directory that is not a hook, and why."""
        if self.notes_shown:
            self.note(f"{display_name(key)}: skipped: {reason}")

    def not_selected(self, key: str) -> None:
        """Note (-v) a hook that ``phase --only`` passes over."""
        if self.notes_shown:
            self.note(f"{display_name(key)}: not selected by --only")

    def skipped_file(self, key: str, reason: str) -> None:
        """Warn of a file of a phase directory that looks meant to run and cannot (a
        directory, a fifo...): it is a task ``skipped``."""
        self.warn(f"{display_name(key)}: skipped: {reason}")

    # What the HOOKRUN_ENV hand-off tells (environment.py).

    def cannot_empty(self, path: str, strerror: str | None) -> None:
        """Warn that a hand-off file (HOOKRUN_ENV, HOOKRUN_STATS) could not be emptied."""
        self.warn(f"cannot empty {path}: {strerror}")

    def handoff_refused(self, where: str, problem: str) -> None:
        """Warn of a line of ``where``'s HOOKRUN_ENV that was not taken (``problem``: what
        environment.parse_handoff found wrong with it)."""
        self.warn(f"{where}: HOOKRUN_ENV {problem}")

    def hands_on(self, where: str, name: str) -> None:
        """Note (-v) a variable ``where`` hands on to the tasks after it."""
        if self.notes_shown:
            self.note(f"{where} hands on {name}")

    def handoff_too_large(self, where: str, limit: int) -> None:
        """Warn that ``where``'s HOOKRUN_ENV is over ``limit`` bytes (whole MiB) and ignored."""
        self.warn(f"{where}: HOOKRUN_ENV is larger than {limit >> 20} MiB: ignored")

    def cannot_read_handoff(self, where: str, error: OSError) -> None:
        """Warn that ``where``'s HOOKRUN_ENV (a hook run as another user) could not be read."""
        self.warn(f"{where}: cannot read its HOOKRUN_ENV: {error.strerror or error}")

    # What the lifecycle of a run tells (run.py, session.py).

    def run_started(self, run_id: str, event: str, command: str, no_hooks: bool) -> None:
        """Log the start of a run (``command``: as a shell would read it, or "")."""
        if self.log:
            self.log.event(f"run {run_id} event={event} start command={command or '-'} "
                           f"no_hooks={no_hooks}")

    def run_ended(self, run_id: str, status: str, exit_code: int) -> None:
        """Log the end of a run."""
        if self.log:
            self.log.event(f"run {run_id} end status={status} exit={exit_code}")

    def dry_run_started(self, run_id: str, event: str, command: str) -> None:
        """Log the start of a dry run with hooks that take part."""
        if self.log:
            self.log.event(f"run {run_id} event={event} start dry-run command={command or '-'}")

    def dry_run_ended(self, run_id: str, status: str, exit_code: int) -> None:
        """Log the end of a dry run."""
        if self.log:
            self.log.event(f"run {run_id} end dry-run status={status} exit={exit_code}")

    def run_stops(self, line: str) -> None:
        """Warn that a step could not go on (``line``: its HOOKRUN_ERROR) and the run stops."""
        self.warn(f"{line}; the run stops, its wind-down goes on")

    def wind_down_goes_on(self, line: str) -> None:
        """Warn of a fault in a step of the wind-down (``line``: its HOOKRUN_WARNINGS line),
        which goes on."""
        self.warn(f"{line}; the wind-down goes on")

    def run_goes_on(self, error: Exception) -> None:
        """Warn that the history refused a write (``error``) the run does without."""
        self.warn(f"{error}; the run goes on")

    def not_recorded(self, error: Exception) -> None:
        """Warn that the history refused the run's record (``error``)."""
        self.warn(f"{error}; this run is not recorded")

    def crashed_runs_pending(self, count: int, dry_run: bool = False) -> None:
        """Warn that ``count`` crashed runs left cleanups that this run, with --no-hooks or
        a dry run (``dry_run``), does not recover."""
        which = "a dry run" if dry_run else "--no-hooks"
        self.warn(f"{count} crashed run(s) left cleanups pending; {which} does not run them: "
                  "run 'hookrun recover'")

    def recovery_goes_on(self, run_id: object) -> None:
        """Warn that another process still runs the cleanups of crashed run ``run_id`` and
        the run goes on without waiting longer."""
        self.warn(f"the cleanups of crashed run {display_name(str(run_id))} are still being "
                  "run by another process; the run goes on")

    def cannot_write(self, path: str, strerror: str | None) -> None:
        """Warn that the file at ``path`` (the error log) could not be written."""
        self.warn(f"cannot write {path}: {strerror}")

    def cannot_write_metrics(self, path: str, error: OSError | MemoryError) -> None:
        """Warn that the metrics file at ``path`` could not be written."""
        self.warn(metrics_not_written(path, error))

    def stats_refused(self, problem: str) -> None:
        """Warn of a line of HOOKRUN_STATS that was not taken (``problem``: what
        stats.from_file found wrong with it)."""
        self.warn(f"HOOKRUN_STATS {problem}")

    def log_not_written(self, why: str) -> None:
        """Warn that the log file is not written (``why``: it is a FIFO or a device)."""
        self.warn(f"log file not written: {why}")

    def nothing_to_recover(self) -> None:
        """Say that ``hookrun recover`` found no crashed run's cleanups."""
        self.console.write("stdout", "nothing to recover\n")

    # What the history tells (state/history.py).

    def history_unusable(self, error: Exception) -> None:
        """Warn that the history could not be opened (``error``): the run goes unrecorded."""
        self.warn(f"{error}; this run will not be recorded")

    def history_damaged(self, path: str, error: Exception, aside: str) -> None:
        """Warn that SQLite found the history at ``path`` damaged (``error``): it is moved
        aside to ``aside`` and a new one started."""
        self.warn(f"history {path} is damaged ({error}): moved aside to {aside}, a new one "
                  "started")

    def history_replaced(self, path: str) -> None:
        """Warn that the history at ``path`` was replaced during the run (another run found
        it damaged): the record goes into the new one."""
        self.warn(f"history {path} was moved aside or replaced during this run: this run's "
                  "record goes into the one there now")

    # What the cleanup journal and recovery tell (state/cleanup.py).

    def cannot_reserve_marks(self, marks_path: str, error: OSError) -> None:
        """Warn that the space to mark cleanups done could not be reserved."""
        self.warn(f"cannot reserve space to mark cleanups done in {marks_path}: "
                  f"{error.strerror or error}; a cleanup cut off by a crash now may run again "
                  "at recovery")

    def cannot_read_cleanups(self, path: str, error: BaseException) -> None:
        """Warn that the cleanup journal at ``path`` could not be read: its cleanups wait."""
        self.warn(f"cannot read the cleanups of {path}: {fault_text(error)}; they are left "
                  "pending for 'hookrun recover' and the next run")

    def journal_line_not_run(self, path: str, number: int | None, why: str) -> None:
        """Warn of line ``number`` of a cleanup journal (None: the whole journal) that is
        never run, and ``why``."""
        where = f"line {number}" if number else "it"
        self.warn(f"cleanup journal {display_name(path)}: {where} {why}: not run, kept for "
                  "inspection")

    def cannot_mark_done(self, number: int, marks_path: str, error: OSError) -> None:
        """Warn that cleanup ``number`` (from 1) could not be marked done."""
        self.warn(f"cannot mark cleanup {number} done in {marks_path}: {error.strerror or error}")

    def journal_set_aside(self, path: str, kept: str) -> None:
        """Warn that recovery could not read the journal at ``path``: its run directory is
        set aside in ``kept``, its cleanups not run."""
        self.warn(f"cleanup journal {display_name(path)} cannot be read: its run directory is "
                  f"set aside as damaged in {kept}, its cleanups not run (fix: inspect it, run "
                  "what is still needed, then remove it)")

    def interrupted_twice(self) -> None:
        """Warn that a second signal left cleanups pending."""
        self.warn("interrupted twice: cleanups left pending for 'hookrun recover'")

    def journal_kept(self, kept: str) -> None:
        """Warn that a journal with damaged lines is kept, in ``kept``, for a person."""
        self.warn(f"cleanup journal kept for inspection in {kept}")

    def run_dir_refused(self, path: str, problem: str | None, damaged: bool,
                        kept: str | None) -> None:
        """Warn of a dead run's directory at ``path`` that is not replayed, and why
        (``problem``): not hookrun's own, or ``damaged``, then set aside in ``kept`` (or
        left for 'hookrun recover' to set aside, ``kept`` None)."""
        if not damaged:
            self.warn(f"run directory {shown(path)} is not replayed: {problem} (fix: inspect "
                      "it, then remove it)")
        elif kept is not None:
            self.warn(f"run directory {shown(path)} is damaged ({problem}): set aside as "
                      f"{shown(kept)}, its cleanups not run (fix: inspect it, run what is "
                      "still needed, then remove it)")
        else:
            self.warn(f"run directory {shown(path)} is damaged ({problem}); 'hookrun recover' "
                      "sets it aside")

    def recovering(self, run_id: str) -> None:
        """Warn that the cleanups of dead run ``run_id`` are run now."""
        self.warn(f"recovering run {display_name(run_id)}: it ended without running its "
                  "cleanups")

    def end_not_recorded(self, run_id: str) -> None:
        """Warn that run ``run_id``'s end was never written, and its row is now interrupted."""
        self.warn(f"run {display_name(run_id)} ended without its end written to the history "
                  "(a full disk?): its row, still running, is now interrupted")

    def ended_leftovers(self, run_id: str, names: Iterable[str]) -> None:
        """Warn of the processes (``names``) dead run ``run_id`` left running, now ended."""
        self.warn(f"ended what run {display_name(run_id)} left running: {', '.join(names)}")


def metrics_not_written(path: str, error: OSError | MemoryError) -> str:
    """The warning that the metrics file at ``path`` could not be written: for a run, and
    for a refused one (refusal.py), which has no Reporter."""
    return f"cannot write metrics file {path}: {fault_text(error)}"
