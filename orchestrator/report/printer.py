"""Everything a person reads, and its format: the terminal (status lines, output, the summary),
the text of ``list``, ``check``, ``history`` and ``show``, and JSON. The only module that knows
how hookrun's output looks (prefixes, status words, colours, tables, the live line); tasks and
runs reach it as data. The words of a run's warnings, notes and log lines are composed in this
wing too, by the named methods of the Reporter (output.py), which the engine, the lifecycle,
the cleanup journal and the history call with data; they reach this module as one line of
text, which it escapes and prefixes.

Some lines are composed elsewhere because they are data before they are a message, and are
shown as they are kept: the lines of HOOKRUN_WARNINGS and HOOKRUN_ERROR (the record's
``error``, which notifications carry), built where the run's state decides them (run.py,
outcome.py, cleanup.recover), and a plan's warnings, which ``check`` and ``list`` show too
(plan/); the problems a parser returns for each line it refuses (HOOKRUN_ENV, HOOKRUN_STATS);
and an error's own text (a HookrunError), said where it is raised. A Reporter method adds its
words around such a line (``...; the wind-down goes on``), never rewrites it.

Every line shown passes through display_name() or display() (orchestrator.text): control
characters are escaped, so no name, argument or output line can forge a line or move the cursor.
"""

from __future__ import annotations

import os
import sys

from orchestrator import constants as c
from orchestrator import files, shell
from orchestrator.outcome import RunStatus, TaskStatus
from orchestrator.text import UNSAFE, as_text, display, display_name

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence
    from typing import Any, TextIO

    from orchestrator.outcome import TaskRecord
    from orchestrator.plan.context import Context, PlannedHook, Problem
    from orchestrator.plan.discovery import PhaseDir

    # A run's record, or a trends item, as JSON carries it: values of many types.
    Record = Mapping[str, Any]
    # The plan: each phase's directory with its hooks in order.
    Planned = Iterable[tuple[PhaseDir, Sequence[PlannedHook]]]

STATUS_COLOURS = {TaskStatus.OK: "GREEN", RunStatus.SUCCESS: "GREEN", TaskStatus.FAILED: "RED",
                  RunStatus.FAILURE: "RED", TaskStatus.TIMEOUT: "RED",
                  RunStatus.INTERRUPTED: "RED", TaskStatus.ABORTED: "YELLOW",
                  RunStatus.WARNING: "YELLOW", TaskStatus.SKIPPED: "CYAN",
                  TaskStatus.RUNNING: "CYAN"}


def raw_fd(stream: TextIO) -> int | None:
    """The descriptor under a text stream, flushed through, or None (e.g. a test's capture)."""
    try:
        stream.buffer.flush()
        return stream.fileno()
    except (AttributeError, OSError, ValueError):
        return None


def is_null_device(fd: int | None) -> bool:
    """Whether ``fd`` is /dev/null (``> /dev/null`` in a crontab line), where output shown
    would be thrown away: then hookrun does not format it (as GNU tar does not read the files
    it archives to /dev/null)."""
    if fd is None:
        return False
    try:
        return files.is_null_device(os.fstat(fd))
    except OSError:
        return False


class Console:
    """The terminal: status lines, hook output and the summary; colour only when asked for or
    when writing to a terminal with NO_COLOR unset."""

    def __init__(self, color: str = "auto", quiet: bool = False, verbose: bool = False,
                 out: TextIO | None = None, err: TextIO | None = None) -> None:
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.quiet = quiet
        self.verbose = verbose
        self.colours = self.pick_colours(color)
        self.live_enabled = not quiet and self.out.isatty()
        self.live_shown = False
        self.fds = {"stdout": raw_fd(self.out), "stderr": raw_fd(self.err)}
        # Streams whose hook output is thrown away: /dev/null, or a stream that is gone.
        self.discarded = {stream: is_null_device(fd) for stream, fd in self.fds.items()}

    def pick_colours(self, color: str) -> dict[str, str] | None:
        if color == "never":
            return None
        if color == "auto" and (os.environ.get("NO_COLOR") or not self.out.isatty()):
            return None
        from colorama import Fore, Style

        palette: dict[str, str] = {name: getattr(Fore, name)
                                   for name in set(STATUS_COLOURS.values())}
        palette["RESET"] = Style.RESET_ALL
        palette["DIM"] = Style.DIM
        return palette

    def paint(self, text: str, colour: str) -> str:
        if not self.colours:
            return text
        return f"{self.colours[colour]}{text}{self.colours['RESET']}"

    def status_word(self, status: str) -> str:
        return self.paint(status, STATUS_COLOURS.get(status, "RESET"))

    def write(self, stream: str, text: str) -> None:
        """Write to the terminal (or pipe). One that is gone (a closed pipe, a hung-up
        terminal) must not stop the run, its cleanups or finally.d: see lost()."""
        target = self.out if stream == "stdout" else self.err
        try:
            target.write(text)
            target.flush()
        except (OSError, ValueError):
            self.lost(stream)

    def write_utf8(self, text: str) -> None:
        """Write ``text`` to stdout as UTF-8 whatever the locale's encoding (JSON is UTF-8)."""
        fd = self.fds["stdout"]
        if fd is None:
            self.write("stdout", text)
            return
        data = text.encode("utf-8", "replace")
        try:
            while data:
                data = data[os.write(fd, data):]
        except OSError:
            self.lost("stdout")

    def lost(self, stream: str) -> None:
        """Send what follows on ``stream`` to /dev/null; the log file still has everything."""
        fd = self.fds[stream]
        self.fds[stream] = None
        self.discarded[stream] = True
        self.live_enabled = self.live_enabled and stream != "stdout"
        if fd is not None:
            # So that Python's own last flush goes somewhere; if even that fails, the writes
            # that follow fail too, and write() catches them.
            try:
                devnull = os.open(os.devnull, os.O_WRONLY)
                try:
                    os.dup2(devnull, fd)
                finally:
                    os.close(devnull)
            except OSError:
                pass
        target = self.out if stream == "stdout" else self.err
        try:
            target.flush()
        except (OSError, ValueError):
            pass

    def live(self, where: str, elapsed: float) -> None:
        """Show, on one line updated in place, that ``where`` has run ``elapsed`` seconds."""
        if self.live_enabled:
            self.write("stdout", f"\r\x1b[K... {where} running {elapsed:.0f}s")
            self.live_shown = True

    def clear_live(self) -> None:
        if self.live_shown:
            self.live_shown = False
            self.write("stdout", "\r\x1b[K")

    def output(self, where: str, stream: str, block: bytes) -> None:
        """A block of a task's output lines, each prefixed with ``where``."""
        if self.quiet or self.discarded[stream]:
            return
        self.clear_live()
        fd = self.fds[stream]
        if fd is not None and block.isascii() and len(block.translate(None, UNSAFE)) == len(block):
            # Plain ASCII needs no decoding or escaping: straight to the descriptor.
            head = f"{where}: ".encode("utf-8", "surrogateescape")
            try:
                os.writev(fd, [head, block.replace(b"\n", b"\n" + head), b"\n"])
            except OSError:
                self.lost(stream)
            return
        prefix = f"{where}: "
        text = display(block)
        self.write(stream, prefix + ("\n" + prefix).join(text.split("\n")) + "\n")

    def passthrough(self, stream: str, data: bytes) -> None:
        """Bytes of the command's ``stream`` while it draws on the terminal itself, written
        at once and unchanged, as if it wrote them there: its prompts and progress (``\r``,
        colour) work, and escaping them would guard nothing, since its stdout is the
        terminal. Not affected by -q, as the command's own output never was."""
        if self.discarded[stream]:
            return
        fd = self.fds[stream]
        if fd is None:
            self.write(stream, data.decode("utf-8", "replace"))
            return
        try:
            while data:
                data = data[os.write(fd, data):]
        except OSError:
            self.lost(stream)

    def finished(self, where: str, record: TaskRecord) -> None:
        """The status line of a task that ended (or was skipped); not even formatted when
        stdout throws it away (/dev/null)."""
        self.clear_live()
        if self.quiet and record.status in (TaskStatus.OK, TaskStatus.SKIPPED) or \
                self.discarded["stdout"]:
            return
        detail = []
        if record.exit_code is not None:
            detail.append(f"exit {record.exit_code}")
        if record.attempts > 1:
            detail.append(f"{record.attempts} attempts")
        if record.status != TaskStatus.OK and record.reason \
                and reason_text(record.reason, record.exit_code):
            detail.append(record.reason)
        if record.status != TaskStatus.SKIPPED:
            detail.append(f"{record.duration:.2f}s")
        text = f" ({', '.join(detail)})" if detail else ""
        lines = [f"==> {display_name(where)} {self.status_word(record.status)}"
                 f"{display_name(text)}"]
        if self.quiet and record.status in TaskStatus.FAILURES:
            # Under -q (cron's mail) the output was not shown as it came: say why it failed.
            lines += [f"    | {display_name(line)}"
                      for line in (record.output or "").split("\n")[-c.SUMMARY_OUTPUT_LINES:]
                      if line]
        self.write("stdout", "\n".join(lines) + "\n")

    def note(self, text: str) -> None:
        if self.verbose and not self.discarded["stdout"]:
            self.write("stdout", self.paint(f"    {display_name(text)}", "DIM") + "\n")

    def warn(self, text: str) -> None:
        self.write("stderr", f"hookrun: warning: {display_name(text)}\n")

    def summary(self, run_status: str, records: Iterable[TaskRecord], exit_code: int,
                what: str = "run") -> None:
        rows: list[tuple[str, ...]] = [("PHASE", "HOOK", "STATUS", "EXIT", "TRIES", "DURATION")]
        for r in records:
            rows.append((r.phase, display_name(r.name), r.status,
                         "" if r.exit_code is None else str(r.exit_code), str(r.attempts),
                         f"{r.duration:.2f}s"))
        widths = [max(len(row[i]) for row in rows) for i in range(6)]
        lines = []
        for n, row in enumerate(rows):
            cells = [row[i].ljust(widths[i]) for i in range(6)]
            if n:
                cells[2] = self.status_word(row[2]) + " " * (widths[2] - len(row[2]))
            lines.append("  ".join(cells).rstrip())
        lines.append(f"{what} {self.status_word(run_status)}, exit {exit_code}")
        self.write("stdout", "\n".join(lines) + "\n")


def plan_items(planned: Planned, show_all: bool = False) -> list[dict[str, object]]:
    """``hookrun list --json`` items for [(PhaseDir, [PlannedHook])]."""
    items: list[dict[str, object]] = []
    for phase_dir, hooks in planned:
        for hook in hooks:
            entry, s = hook.entry, hook.settings
            if not show_all and not entry.runs and not entry.warn:
                continue
            items.append({
                "phase": phase_dir.phase, "dir": phase_dir.dirname,
                "name": as_text(entry.name),
                "path": as_text(entry.path), "runs": entry.runs, "reason": entry.reason,
                "critical": s.critical if s else None,
                "on_failure": s.on_failure if s else None, "timeout": s.timeout if s else None,
                "retries": s.retries if s else None, "retry_delay": s.retry_delay if s else None,
                "when": s.when if s else None,
                "events": list(s.events) if s and s.events else None,
                "origin": as_text(entry.origin), "overrides": [as_text(p) for p in
                                                               entry.overrides],
                "warning_codes": sorted(s.warning_codes) if s else None,
                "dry_run": s.dry_run if s else None,
                "stall": s.stall or None if s else None,
                "user": s.user if s else None})
    return items


def print_plan(planned: Planned, command: Sequence[str] | None = None, no_hooks: bool = False,
               show_all: bool = False, out: TextIO | None = None,
               origins: bool = False) -> None:
    """The plan as ``list`` and ``--dry-run`` print it; with ``origins`` (layered hooks
    directories) each hook's line names its hooks directory and what it replaces."""
    from orchestrator.plan.settings import describe

    out = out or sys.stdout
    lines: list[str] = []
    for phase, hooks in planned:
        lines.append(f"{phase.dirname}/")
        shown = [h for h in hooks if show_all or h.entry.runs or h.entry.warn]
        if not shown:
            lines.append("  (empty)")
        width = max((len(display_name(h.entry.name)) for h in shown), default=0)
        for hook in shown:
            entry, s = hook.entry, hook.settings
            name = display_name(entry.name).ljust(width)
            if entry.fails:
                line = f"  fail  {name}  {display_name(entry.fails)}: {describe(s)}"
            elif s:
                line = f"  run   {name}  {describe(s)}"
            else:
                line = f"  skip  {name}  {display_name(entry.reason)}"
            if origins and entry.origin:
                line += f"  [from {display_name(entry.origin)}"
                line += "".join(f"; replaces {display_name(p)}" for p in entry.overrides) + "]"
            lines.append(line)
    if no_hooks:
        lines.append("--no-hooks: no hook directory is read")
    if command is not None:
        lines.append(f"command: {display_name(shell.join(command)) if command else '(none)'}")
    out.write("\n".join(lines) + "\n")


def print_warnings(warnings: Iterable[str]) -> None:
    if warnings:
        sys.stderr.write("".join(f"hookrun: warning: {display_name(w)}\n" for w in warnings))


def print_check(ctx: Context, errors: Sequence[str], unsafe: Sequence[Problem],
                problems: Sequence[Problem], warnings: Sequence[str]) -> None:
    """What ``hookrun check`` found: problems on stderr, a last line when nothing fails."""
    lines = [f"hookrun: error: {display_name(line)}" for line in errors]
    # A fix that several paths share (another user's tree) is said once, after them.
    fixes = [p.fix for p in unsafe]
    shared = [fix for position, fix in enumerate(fixes)
              if fix and fixes.count(fix) > 1 and fixes.index(fix) == position]
    lines += [f"hookrun: error: unsafe permissions: "
              f"{problem_text(p._replace(fix='') if p.fix in shared else p)}" for p in unsafe]
    lines += [f"hookrun: error: unsafe permissions: the {fixes.count(fix)} paths above "
              f"(fix: {display_name(fix)})" for fix in shared]
    lines += [f"hookrun: error: {problem_text(p)}" for p in problems]
    lines += [f"hookrun: warning: {display_name(line)}" for line in warnings]
    if lines:
        sys.stderr.write("\n".join(lines) + "\n")
    if not (errors or unsafe or problems):
        print(f"{display_name(':'.join(ctx.hooks_dirs))}: OK"
              + (f" ({len(warnings)} warning(s))" if warnings else ""))


def problem_text(problem: Problem) -> str:
    """One line for a check Problem: ``PATH: what (fix: ...)``."""
    text = problem.what if problem.what.startswith(problem.path) \
        else f"{problem.path}: {problem.what}"
    return display_name(f"{text} (fix: {problem.fix})" if problem.fix else text)


def error_file(line: str) -> str | None:
    """The file an error line ``FILE:LINE: ...`` (or ``FILE: ...``) names, absolute (a
    ``-c`` given relative), or None when it names none."""
    head, sep, _rest = line.partition(":")
    if sep and head and (os.path.isabs(head) or os.path.exists(head)):
        return os.path.abspath(head)
    return None


def check_items(errors: Sequence[str], unsafe: Sequence[Problem], problems: Sequence[Problem],
                warnings: Sequence[str]) -> dict[str, object]:
    """``hookrun check --json``: {"ok", "problems": [{"path", "what", "fix"}], "warnings"}.
    Configuration errors and unsafe permissions are problems too."""
    items = [{"path": as_text(error_file(line) or line.split(":", 1)[0]), "what": as_text(line),
              "fix": ""} for line in errors]
    items += [{"path": as_text(p.path), "what": as_text(p.what), "fix": as_text(p.fix)}
              for p in list(unsafe) + list(problems)]
    return {"ok": not items, "problems": items, "warnings": [as_text(w) for w in warnings]}


def dump_json(value: object, out: TextIO | None = None) -> None:
    """JSON is UTF-8, whatever the locale says: written as bytes where there is a buffer."""
    import json

    text = json.dumps(value, indent=2, ensure_ascii=False) + "\n"
    out = out or sys.stdout
    buffer = getattr(out, "buffer", None)
    if buffer is None:
        out.write(text)
        return
    out.flush()
    buffer.write(text.encode("utf-8", "surrogateescape"))
    buffer.flush()


def table(rows: Sequence[Sequence[str]]) -> list[str]:
    """Lines of ``rows`` (tuples of text) in columns two spaces apart, the last one ragged."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return ["  ".join([cell.ljust(width) for cell, width in zip(row, widths)] + [row[-1]])
            .rstrip() for row in rows]


def print_history(runs: Iterable[Record], out: TextIO | None = None) -> None:
    out = out or sys.stdout
    rows: list[tuple[str, ...]] = [
        ("ID", "EVENT", "STARTED", "STATUS", "EXIT", "DURATION", "COMMAND")]
    for run in runs:
        command = ("[no-hooks] " if run["no_hooks"] else "") + (run["command"] or "")
        rows.append((display_name(run["id"]), display_name(run["event"]),
                     time_text(run["started"]), run["status"],
                     "" if run["exit_code"] is None else str(run["exit_code"]),
                     seconds_text(run["duration"]), display_name(command)))
    out.write("\n".join(table(rows)) + "\n")


def time_text(iso: str | None) -> str:
    """A recorded time as a table shows it: ``2026-11-21 23:23:27``, local as recorded."""
    return display_name(iso or "")[:19].replace("T", " ")


def can_encode(text: str, out: TextIO) -> bool:
    """Whether ``out`` (its encoding, the locale's) can write ``text``."""
    try:
        text.encode(getattr(out, "encoding", None) or "ascii")
    except (UnicodeEncodeError, LookupError):
        return False
    return True


def utf8_locale() -> bool:
    """Whether the locale (LC_ALL, else LC_CTYPE, else LANG) says UTF-8. Python reads a C
    locale as UTF-8 (PEP 538), but the terminal of a user who chose it may not."""
    for name in ("LC_ALL", "LC_CTYPE", "LANG"):
        value = os.environ.get(name)
        if value:
            return "utf-8" in value.lower() or "utf8" in value.lower()
    return False


def print_trends(found: Record, out: TextIO | None = None) -> None:
    """``hookrun stats``: a table of events, then one of hooks (trends.trends())."""
    from orchestrator.report.trends import BLOCKS, sparkline

    out = out or sys.stdout
    unicode = utf8_locale() and can_encode(BLOCKS, out)

    def cells(item: Record) -> tuple[str, ...]:
        rate = item["success_rate"]
        return (str(item["runs"]), str(item["failures"]),
                "" if rate is None else f"{rate * 100:.0f}%",
                seconds_text(item["median_duration"]), seconds_text(item["p95_duration"]),
                time_text(item["last_failure"]) or "-", sparkline(item["durations"], unicode))

    numbers = ("RUNS", "FAILURES", "SUCCESS", "MEDIAN", "P95", "LAST FAILURE", "LAST 20")
    rows: list[tuple[str, ...]] = [("EVENT",) + numbers]
    rows += [(display_name(item["event"]),) + cells(item) for item in found["events"]]
    lines = table(rows)
    if found["hooks"]:
        rows = [("EVENT", "HOOK") + numbers]
        rows += [(display_name(item["event"]),
                  f"{item['phase']}/{display_name(item['name'])}") + cells(item)
                 for item in found["hooks"]]
        lines += [""] + table(rows)
    out.write("\n".join(lines) + "\n")


def print_run(run: Record, out: TextIO | None = None) -> None:
    out = out or sys.stdout
    fields: list[tuple[str, object]] = [
        ("id", run["id"]), ("event", run["event"]), ("status", run["status"]),
        ("exit", run["exit_code"]), ("command", run["command"] or "(none)"),
        ("started", run["started"]), ("finished", run["finished"]),
        ("duration", seconds_text(run["duration"])),
        ("no hooks", "yes" if run["no_hooks"] else "no"),
        ("trigger", run.get("trigger")), ("error", run["error"])]
    if run.get("stats"):
        from orchestrator.report.stats import text

        fields.append(("stats", text(run["stats"])))
    lines = [f"{key + ':':10} {'' if value is None else display_name(str(value))}"
             for key, value in fields]
    lines.append("tasks:")
    rows: list[tuple[str, ...]] = [("  PHASE", "NAME", "STATUS", "EXIT", "TRIES", "DURATION",
                                    "CPU", "MAX RSS", "REASON")]
    outputs: list[list[str]] = []
    for task in run["tasks"]:
        ran = task["status"] not in (TaskStatus.SKIPPED, TaskStatus.RUNNING)
        rows.append((f"  {task['phase']}", display_name(task["name"]), task["status"],
                     "" if task["exit_code"] is None else str(task["exit_code"]),
                     str(task["attempts"] or ""),
                     seconds_text(task["duration"] if ran else None),
                     seconds_text(task["cpu_seconds"] if ran else None),
                     rss_text(task["max_rss_bytes"]) if ran else "",
                     reason_text(task["reason"], task["exit_code"])))
        outputs.append([f"      | {display_name(line)}"
                        for line in (task.get("output") or "").split("\n") if line])
    for row_line, output in zip(table(rows), [[]] + outputs):
        lines.append(row_line)
        lines.extend(output)
    out.write("\n".join(lines) + "\n")


def seconds_text(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}s"


def reason_text(reason: str | None, exit_code: int | None) -> str:
    """A task's reason, unless it only repeats its exit status."""
    if not reason or reason == f"exit {exit_code}":
        return ""
    return display_name(reason)


def rss_text(value: float | None) -> str:
    return "-" if value is None else f"{value / 1048576:.1f} MiB"
