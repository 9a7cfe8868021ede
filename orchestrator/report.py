"""Everything a person reads: the terminal, the log file and the summary (design.md section 4).

Output arrives as bytes chunks and is handled as blocks: all the complete lines of a chunk,
joined by newlines. A block is prefixed with one bytes replace() and written with one
writev(), never in a Python loop per line; a line longer than MAX_LINE is cut into pieces and
the tail kept for error logs is bounded, so memory stays flat whatever a hook prints.
"""

import collections
import datetime
import os
import sys

from orchestrator import constants as c

MAX_LINE = 65536
TAIL_LINE = 4096  # bytes of a line kept for the error log and history; the log keeps all
TAIL_BYTES = 1 << 20  # at most this much output is kept (in blocks) for the tail
ERROR_LINE = 400  # bytes of the failed step's last line kept in HOOKRUN_ERROR
# Bytes the terminal must not get raw: controls other than tab and newline, and DEL.
UNSAFE = bytes(range(9)) + bytes(range(11, 32)) + b"\x7f"
CONTROL = {code: f"\\x{code:02x}" for code in list(range(32)) + [127] if code not in (9, 10)}
# C1 controls: a UTF-8 terminal may take U+009B for the escape that starts a command.
CONTROL.update({code: f"\\u{code:04x}" for code in range(0x80, 0xA0)})
LINE_CONTROL = {**CONTROL, 10: "\\x0a"}
STATUS_COLOURS = {"ok": "GREEN", "success": "GREEN", "failed": "RED", "failure": "RED",
                  "timeout": "RED", "interrupted": "RED", "aborted": "YELLOW",
                  "warning": "YELLOW", "skipped": "CYAN"}


def display(data):
    """Bytes as terminal text: UTF-8 with invalid bytes replaced, control characters (C0 other
    than tab and newline, DEL, C1) escaped."""
    return data.decode("utf-8", "replace").translate(CONTROL)


def display_name(name):
    """A file name (str with surrogate escapes, or bytes) as one line of text: undecodable
    bytes replaced, control characters, newline included, escaped. Every line hookrun shows
    or logs passes through it, so no name, argument or reason can forge a line."""
    if isinstance(name, str):
        name = name.encode("utf-8", "surrogateescape")
    return name.decode("utf-8", "replace").translate(LINE_CONTROL)


def now_iso():
    return datetime.datetime.now().astimezone().isoformat(timespec="milliseconds")


class LineSplitter:
    """Turns chunks into blocks of complete lines (joined by newlines, no final one), keeping
    the unterminated rest for the next chunk."""

    def __init__(self):
        self.rest = b""

    def feed(self, data):
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

    def flush(self):
        rest, self.rest = self.rest, b""
        return rest or None


def remove_quietly(path):
    try:
        os.unlink(path)
    except OSError:
        pass


def print_task_output(log_path, run_id, where, out=None):
    """Print every output line of the task ``where`` (``PHASE/NAME`` as the log and
    ``show`` name it) of run ``run_id``, from the log file and its rotations, oldest first,
    escaped as the terminal shows output; returns whether there was any."""
    if not log_path:
        return False
    out = out or sys.stdout
    run = b" " + run_id.encode() + b" " + display_name(where).encode() + b" "
    found = False
    for path in [f"{log_path}.{n}" for n in range(c.LOG_BACKUPS, 0, -1)] + [log_path]:
        try:
            with open(path, "rb") as handle:
                for line in handle:
                    start = line.find(b" ")
                    if line.startswith(run, start) and \
                            line[start + len(run):].startswith((b"stdout: ", b"stderr: ")):
                        text = line[start + len(run) + 8:].rstrip(b"\n")
                        out.write(display(text) + "\n")
                        found = True
        except OSError:
            continue
    return found


class LogFile:
    """The log file: bytes as they came, one prefixed line each, rotated at LOG_MAX_BYTES with
    LOG_BACKUPS kept (``hookrun.log.1`` is the newest old one, as logging.handlers names them).
    Written with one write() per chunk and no buffering, so a killed run leaves a useful log."""

    def __init__(self, path, run_id):
        self.path = path
        self.run_id = run_id.encode()
        self.fd = None
        self.size = 0
        self.error = None
        self.removers = []
        self.open()

    def open(self):
        from orchestrator.files import open_own

        self.fd = open_own(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        self.size = os.fstat(self.fd).st_size

    def rotate(self):
        os.close(self.fd)
        self.discard(f"{self.path}.{c.LOG_BACKUPS}")
        for n in range(c.LOG_BACKUPS - 1, 0, -1):
            older = f"{self.path}.{n}"
            if os.path.exists(older):
                os.replace(older, f"{self.path}.{n + 1}")
        os.replace(self.path, f"{self.path}.1")
        self.open()

    def discard(self, path):
        """Remove the oldest log out of the way at once, and free its blocks in a thread:
        unlinking 10 MiB costs a hook streaming output as much as writing it."""
        import threading

        doomed = f"{path}.removing"
        try:
            os.replace(path, doomed)
        except FileNotFoundError:
            return
        remover = threading.Thread(target=remove_quietly, args=(doomed,), daemon=True)
        remover.start()
        self.removers.append(remover)

    def write(self, *parts):
        if self.fd is None:
            return
        size = sum(map(len, parts))
        try:
            if self.size and self.size + size > c.LOG_MAX_BYTES:
                self.rotate()
            os.writev(self.fd, parts)
            self.size += size
        except OSError as error:
            # A full disk must not stop the backup: say so once, then go on without a log.
            self.error = f"log file {self.path}: {error.strerror}; logging stopped"
            self.close()

    def lines(self, where, stream, block):
        """A block of lines of ``where`` (e.g. ``pre/10-x``) on ``stream``, each prefixed."""
        prefix = b"%s %s %s %s: " % (now_iso().encode(), self.run_id, where, stream.encode())
        self.write(prefix, block.replace(b"\n", b"\n" + prefix), b"\n")

    def event(self, text):
        self.write(b"%s %s %s\n" % (now_iso().encode(), self.run_id,
                                    display_name(text).encode()))

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        for remover in self.removers:
            remover.join(timeout=5)
        self.removers = []


def raw_fd(stream):
    """The descriptor under a text stream, flushed through, or None (e.g. a test's capture)."""
    try:
        stream.buffer.flush()
        return stream.fileno()
    except (AttributeError, OSError, ValueError):
        return None


class Console:
    """The terminal: status lines, hook output and the summary; colour only when asked for or
    when writing to a terminal with NO_COLOR unset."""

    def __init__(self, color="auto", quiet=False, verbose=False, out=None, err=None):
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.quiet = quiet
        self.verbose = verbose
        self.colours = self.pick_colours(color)
        self.live_enabled = not quiet and self.out.isatty()
        self.live_shown = False
        self.fds = {"stdout": raw_fd(self.out), "stderr": raw_fd(self.err)}

    def pick_colours(self, color):
        if color == "never":
            return None
        if color == "auto" and (os.environ.get("NO_COLOR") or not self.out.isatty()):
            return None
        from colorama import Fore, Style

        palette = {name: getattr(Fore, name) for name in set(STATUS_COLOURS.values())}
        palette["RESET"] = Style.RESET_ALL
        palette["DIM"] = Style.DIM
        return palette

    def paint(self, text, colour):
        if not self.colours:
            return text
        return f"{self.colours[colour]}{text}{self.colours['RESET']}"

    def status_word(self, status):
        return self.paint(status, STATUS_COLOURS.get(status, "RESET"))

    def write(self, stream, text):
        """Write to the terminal (or pipe). One that is gone (a closed pipe, a hung-up
        terminal) must not stop the run, its cleanups or finally.d: see lost()."""
        target = self.out if stream == "stdout" else self.err
        try:
            target.write(text)
            target.flush()
        except (OSError, ValueError):
            self.lost(stream)

    def write_utf8(self, text):
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

    def lost(self, stream):
        """Send what follows on ``stream`` to /dev/null; the log file still has everything."""
        fd = self.fds[stream]
        self.fds[stream] = None
        self.live_enabled = self.live_enabled and stream != "stdout"
        if fd is not None:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, fd)
            os.close(devnull)
        target = self.out if stream == "stdout" else self.err
        try:
            target.flush()
        except (OSError, ValueError):
            pass

    def live(self, where, elapsed):
        """Show, on one line updated in place, that ``where`` has run ``elapsed`` seconds."""
        if self.live_enabled:
            self.write("stdout", f"\r\x1b[K... {where} running {elapsed:.0f}s")
            self.live_shown = True

    def clear_live(self):
        if self.live_shown:
            self.live_shown = False
            self.write("stdout", "\r\x1b[K")

    def output(self, where, stream, block):
        """A block of a task's output lines, each prefixed with ``where``."""
        if self.quiet:
            return
        self.clear_live()
        fd = self.fds[stream]
        if fd is not None and block.isascii() and len(block.translate(None, UNSAFE)) == len(block):
            # Plain ASCII needs no decoding or escaping: straight to the descriptor.
            prefix = f"{where}: ".encode("utf-8", "surrogateescape")
            try:
                os.writev(fd, [prefix, block.replace(b"\n", b"\n" + prefix), b"\n"])
            except OSError:
                self.lost(stream)
            return
        prefix = f"{where}: "
        text = display(block)
        self.write(stream, prefix + ("\n" + prefix).join(text.split("\n")) + "\n")

    def task(self, where, status, detail):
        self.clear_live()
        if self.quiet and status in ("ok", "skipped"):
            return
        self.write("stdout", f"==> {display_name(where)} {self.status_word(status)}"
                             f"{display_name(detail)}\n")

    def note(self, text):
        if self.verbose:
            self.write("stdout", self.paint(f"    {display_name(text)}", "DIM") + "\n")

    def warn(self, text):
        self.write("stderr", f"hookrun: warning: {display_name(text)}\n")

    def summary(self, run_status, records, exit_code):
        rows = [("PHASE", "HOOK", "STATUS", "EXIT", "TRIES", "DURATION")]
        for r in records:
            rows.append((r.phase, display_name(r.name), r.status.value,
                         "" if r.exit_code is None else str(r.exit_code), str(r.attempts),
                         f"{r.duration:.2f}s"))
        widths = [max(len(row[i]) for row in rows) for i in range(6)]
        lines = []
        for n, row in enumerate(rows):
            cells = [row[i].ljust(widths[i]) for i in range(6)]
            if n:
                cells[2] = self.status_word(row[2]) + " " * (widths[2] - len(row[2]))
            lines.append("  ".join(cells).rstrip())
        lines.append(f"run {self.status_word(run_status)}, exit {exit_code}")
        self.write("stdout", "\n".join(lines) + "\n")


class TaskOutput:
    """The sink of one task's output: the terminal, the log, and the last lines kept for the
    error log and the history (the last TAIL_BYTES of blocks; lines are counted only when
    the tail is read)."""

    def __init__(self, reporter, where):
        self.reporter = reporter
        self.where = where
        self.where_bytes = where.encode("utf-8", "surrogateescape")
        self.splitters = {"stdout": LineSplitter(), "stderr": LineSplitter()}
        self.tail = collections.deque()
        self.tail_size = 0
        self.live = reporter.console.live_enabled

    def tick(self, elapsed):
        if self.live:
            self.reporter.console.live(self.where, elapsed)
        if self.reporter.on_tick:
            self.reporter.on_tick()

    def __call__(self, stream, data):
        self.emit(stream, self.splitters[stream].feed(data))

    def emit(self, stream, block):
        if not block:
            return
        self.keep(block)
        self.reporter.console.output(self.where, stream, block)
        if self.reporter.log:
            self.reporter.log.lines(self.where_bytes, stream, block)

    def keep(self, block):
        self.tail.append(block)
        self.tail_size += len(block)
        while len(self.tail) > 1 and self.tail_size - len(self.tail[0]) >= TAIL_BYTES:
            self.tail_size -= len(self.tail.popleft())

    def finish(self):
        for stream, splitter in self.splitters.items():
            self.emit(stream, splitter.flush())

    def tail_list(self, lines=c.ERROR_LOG_LINES):
        """The last ``lines`` lines, each cut to TAIL_LINE bytes."""
        found = []
        for block in self.tail:
            found.extend(block.split(b"\n"))
        return [line[:TAIL_LINE] + b" [...]" if len(line) > TAIL_LINE else line
                for line in found[-lines:]]

    def tail_bytes(self):
        return b"".join(line + b"\n" for line in self.tail_list())

    def tail_text(self, lines=c.SUMMARY_OUTPUT_LINES, limit=c.SUMMARY_OUTPUT_BYTES):
        """The last ``lines`` lines as text, at most ``limit`` bytes of them (the last)."""
        data = b"\n".join(self.tail_list(lines))
        if len(data) > limit:
            data = b"[...]" + data[len(data) - limit + 5:]
        return data.decode("utf-8", "replace")

    def last_line(self, limit=ERROR_LINE):
        """The last output line that is not blank, as one line of text (or "")."""
        for block in reversed(self.tail):
            for line in reversed(block.split(b"\n")):
                if line.strip():
                    text = display_name(line.strip()[:limit])
                    return text + " [...]" if len(line.strip()) > limit else text
        for rest in self.splitters.values():
            if rest.rest.strip():
                return display_name(rest.rest.strip()[:limit])
        return ""


class Reporter:
    """The terminal and the log file together, as the lifecycle sees them."""

    def __init__(self, console, log=None):
        self.console = console
        self.log = log
        self.on_tick = None  # called about once a second while a task has run a second

    def sink(self, where):
        return TaskOutput(self, where)

    def started(self, where, text=""):
        if self.log:
            self.log.event(f"{where} start{text}")

    def finished(self, where, record):
        detail = []
        if record.exit_code is not None:
            detail.append(f"exit {record.exit_code}")
        if record.attempts > 1:
            detail.append(f"{record.attempts} attempts")
        if record.reason and record.status.value != "ok" \
                and record.reason != f"exit {record.exit_code}":
            detail.append(display_name(record.reason))
        if record.status.value != "skipped":
            detail.append(f"{record.duration:.2f}s")
        text = f" ({', '.join(detail)})" if detail else ""
        self.console.task(where, record.status.value, text)
        if self.log:
            self.log.event(f"{where} end status={record.status.value} exit={record.exit_code} "
                           f"attempts={record.attempts} duration={record.duration:.3f}"
                           + (f" reason={record.reason}" if record.reason else ""))
        self.check_log()

    def warn(self, text):
        self.console.warn(text)
        if self.log:
            self.log.event(f"warning: {text}")
        self.check_log()

    def note(self, text):
        self.console.note(text)

    def event(self, text):
        if self.log:
            self.log.event(text)

    def check_log(self):
        if self.log and self.log.error:
            error, self.log.error = self.log.error, None
            self.console.warn(error)
