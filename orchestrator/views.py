"""What ``list``, ``check``, ``history`` and ``show`` print, as text or JSON."""

import json
import re
import shlex
import sys

from orchestrator.history import text
from orchestrator.report import display_name
from orchestrator.settings import describe

NUMERIC_PREFIX = re.compile(r"([0-9]+)")


def plan_items(planned, show_all=False):
    """``hookrun list --json`` items for [(PhaseDir, [PlannedHook])]."""
    items = []
    for phase, hooks in planned:
        for hook in hooks:
            entry, s = hook.entry, hook.settings
            if not show_all and not entry.runs and not entry.warn:
                continue
            items.append({
                "phase": phase.kind, "dir": phase.dirname, "name": text(entry.name),
                "path": text(entry.path), "runs": entry.runs, "reason": entry.reason,
                "critical": s.critical if s else None,
                "on_failure": s.on_failure if s else None, "timeout": s.timeout if s else None,
                "retries": s.retries if s else None, "retry_delay": s.retry_delay if s else None,
                "when": s.when if s else None,
                "events": list(s.events) if s and s.events else None})
    return items


def print_plan(planned, command=None, no_hooks=False, show_all=False, out=None):
    out = out or sys.stdout
    lines = []
    for phase, hooks in planned:
        lines.append(f"{phase.dirname}/")
        shown = [h for h in hooks if show_all or h.entry.runs or h.entry.warn]
        if not shown:
            lines.append("  (empty)")
        width = max((len(display_name(h.entry.name)) for h in shown), default=0)
        for hook in shown:
            entry, s = hook.entry, hook.settings
            name = display_name(entry.name).ljust(width)
            if s:
                lines.append(f"  run   {name}  {describe(s)}")
            else:
                lines.append(f"  skip  {name}  {entry.reason}")
    if no_hooks:
        lines.append("--no-hooks: no hook directory is read")
    if command is not None:
        lines.append(f"command: {display_name(shlex.join(command)) if command else '(none)'}")
    out.write("\n".join(lines) + "\n")


def uneven_prefixes(planned):
    """Warnings for phases whose numeric prefixes have different widths (100-x sorts before
    20-x)."""
    warnings = []
    for phase, hooks in planned:
        widths = {}
        for hook in hooks:
            match = NUMERIC_PREFIX.match(hook.entry.name)
            if match and hook.entry.runs:
                widths.setdefault(len(match.group(1)), hook.entry.name)
        if len(widths) > 1:
            names = ", ".join(display_name(n) for n in widths.values())
            warnings.append(f"{phase.dirname}: numeric prefixes of different widths ({names}) "
                            "sort byte-wise, not numerically: pad them to one width")
    return warnings


def missing_shebangs(planned):
    warnings = []
    for _phase, hooks in planned:
        for hook in hooks:
            if not hook.entry.runs:
                continue
            try:
                with open(hook.entry.path, "rb") as handle:
                    head = handle.read(2)
            except OSError:
                continue
            if head != b"#!" and head != b"\x7fE":
                warnings.append(f"{display_name(hook.entry.key)}: no shebang line, "
                                "run by /bin/sh")
    return warnings


def print_warnings(warnings):
    if warnings:
        sys.stderr.write("".join(f"hookrun: warning: {display_name(w)}\n" for w in warnings))


def print_check(ctx, errors, problems, warnings):
    """What ``hookrun check`` found: problems on stderr, a last line when nothing refuses."""
    lines = [f"hookrun: error: {line}" for line in errors]
    severity = "error" if ctx.strict else "warning"
    lines += [f"hookrun: {severity}: unsafe permissions: {line}" for line in problems]
    lines += [f"hookrun: warning: {line}" for line in warnings]
    if lines:
        sys.stderr.write("\n".join(lines) + "\n")
    if not errors and not (problems and ctx.strict):
        print(f"{ctx.hooks_dir}: OK" + (f" ({len(warnings)} warning(s))" if warnings else ""))


def dump_json(value, out=None):
    """JSON is UTF-8, whatever the locale says: written as bytes where there is a buffer."""
    text = json.dumps(value, indent=2, ensure_ascii=False) + "\n"
    out = out or sys.stdout
    buffer = getattr(out, "buffer", None)
    if buffer is None:
        out.write(text)
        return
    out.flush()
    buffer.write(text.encode("utf-8", "surrogateescape"))
    buffer.flush()


def public(run):
    """A run as ``--json`` prints it."""
    return run


def table(rows):
    """Lines of ``rows`` (tuples of text) in columns two spaces apart, the last one ragged."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return ["  ".join([cell.ljust(width) for cell, width in zip(row, widths)] + [row[-1]])
            .rstrip() for row in rows]


def print_history(runs, out=None):
    out = out or sys.stdout
    rows = [("ID", "EVENT", "STATUS", "EXIT", "DURATION", "COMMAND")]
    for run in runs:
        command = ("[no-hooks] " if run["no_hooks"] else "") + (run["command"] or "")
        rows.append((display_name(run["id"]), display_name(run["event"]), run["status"],
                     "" if run["exit_code"] is None else str(run["exit_code"]),
                     seconds_text(run["duration"]), display_name(command)))
    out.write("\n".join(table(rows)) + "\n")


def print_run(run, out=None):
    out = out or sys.stdout
    fields = [("id", run["id"]), ("event", run["event"]), ("status", run["status"]),
              ("exit", run["exit_code"]), ("command", run["command"] or "(none)"),
              ("started", run["started"]), ("finished", run["finished"]),
              ("duration", seconds_text(run["duration"])),
              ("no hooks", "yes" if run["no_hooks"] else "no"), ("error", run["error"])]
    lines = [f"{key + ':':10} {'' if value is None else display_name(str(value))}"
             for key, value in fields]
    lines.append("tasks:")
    rows = [("  PHASE", "NAME", "STATUS", "EXIT", "TRIES", "DURATION", "CPU", "MAX RSS",
             "REASON")]
    outputs = []
    for task in run["tasks"]:
        ran = task["status"] not in ("skipped", "running")
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


def seconds_text(value):
    return "" if value is None else f"{value:.2f}s"


def reason_text(reason, exit_code):
    """A task's reason, unless it only repeats its exit status."""
    if not reason or reason == f"exit {exit_code}":
        return ""
    return display_name(reason)


def rss_text(value):
    return "-" if value is None else f"{value / 1048576:.1f} MiB"
