"""What ``list``, ``check``, ``history`` and ``show`` print, as text or JSON."""

import json
import re
import shlex
import sys

from orchestrator.history import text
from orchestrator.report import display_name
from orchestrator.settings import format_duration

NUMERIC_PREFIX = re.compile(r"(\d+)")


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
                "critical": s.critical if s else None, "timeout": s.timeout if s else None,
                "retries": s.retries if s else None, "retry_delay": s.retry_delay if s else None,
                "when": s.when if s else None})
    return items


def print_plan(planned, command=None, no_hooks=False, show_all=False, out=None):
    out = out or sys.stdout
    lines = []
    for phase, hooks in planned:
        lines.append(f"{phase.dirname}/")
        shown = [h for h in hooks if show_all or h.entry.runs or h.entry.warn]
        if not shown:
            lines.append("  (empty)")
        for hook in shown:
            entry, s = hook.entry, hook.settings
            if s:
                detail = (f"critical={'yes' if s.critical else 'no'} "
                          f"timeout={format_duration(s.timeout)} retries={s.retries}"
                          + (f" when={s.when}" if s.when else ""))
                lines.append(f"  run   {display_name(entry.name)}  {detail}")
            else:
                lines.append(f"  skip  {display_name(entry.name)}  ({entry.reason})")
    if no_hooks:
        lines.append("--no-hooks: no hook directory is read")
    if command is not None:
        lines.append(f"command: {shlex.join(command) if command else '(none)'}")
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
    out = out or sys.stdout
    out.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")


def public(run):
    """A run dict without the private ``outputs`` list."""
    return {key: value for key, value in run.items() if key != "outputs"}


def print_history(runs, out=None):
    out = out or sys.stdout
    out.write(f"{'ID':24} {'EVENT':10} {'STATUS':11} {'EXIT':>4} {'DURATION':>9}  COMMAND\n")
    for run in runs:
        exit_code = "" if run["exit_code"] is None else run["exit_code"]
        duration = "" if run["duration"] is None else f"{run['duration']:.1f}s"
        command = ("[no-hooks] " if run["no_hooks"] else "") + (run["command"] or "")
        out.write(f"{display_name(run['id']):24} {run['event']:10} {run['status']:11} "
                  f"{exit_code:>4} {duration:>9}  {display_name(command)}\n")


def print_run(run, out=None):
    out = out or sys.stdout
    for key in ("id", "event", "status", "exit_code", "command", "started", "finished",
                "duration", "no_hooks", "error"):
        out.write(f"{key + ':':11} {'' if run[key] is None else display_name(str(run[key]))}\n")
    out.write("tasks:\n")
    for task, output in zip(run["tasks"], run["outputs"]):
        exit_code = "" if task["exit_code"] is None else f" exit {task['exit_code']}"
        reason = f" ({display_name(task['reason'])})" if task["reason"] else ""
        out.write(f"  {task['phase']}/{display_name(task['name'])}: {task['status']}"
                  f"{exit_code}{reason}, "
                  f"{task['attempts']} attempt(s), {task['duration'] or 0:.2f}s, "
                  f"cpu {task['cpu_seconds'] or 0:.2f}s, "
                  f"max rss {rss_text(task['max_rss_bytes'])}\n")
        for line in (output or "").split("\n")[-5:]:
            if line:
                out.write(f"      | {display_name(line)}\n")


def rss_text(value):
    return "below hookrun's own" if value is None else f"{value // 1024} KiB"
