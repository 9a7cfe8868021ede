"""Output handling: blocks of lines, display escaping, the bounded tail, the log format."""

import errno
import io
import os

import pytest

from orchestrator.report import printer
from orchestrator.report.logfile import LogFile
from orchestrator.report.output import MAX_LINE, TAIL_LINE, LineSplitter, Reporter, TaskOutput
from orchestrator.report.printer import Console
from orchestrator.text import display, display_name


def test_splitter_returns_complete_lines_and_keeps_the_rest():
    splitter = LineSplitter()
    assert splitter.feed(b"one\ntw") == b"one"
    assert splitter.feed(b"o\nthree\nfo") == b"two\nthree"
    assert splitter.feed(b"ur") is None
    assert splitter.flush() == b"four"
    assert splitter.flush() is None


def test_an_endless_line_is_cut_so_memory_stays_flat():
    splitter = LineSplitter()
    pieces = [splitter.feed(b"x" * 40000) for _ in range(10)]
    emitted = [p for p in pieces if p]
    assert emitted and all(len(p) <= 2 * MAX_LINE for p in emitted)
    assert len(splitter.rest) <= MAX_LINE


def test_display_escapes_controls_and_replaces_invalid_utf8():
    assert display(b"tab\tok \x1b[31m red \xff\x7f") == "tab\tok \\x1b[31m red \ufffd\\x7f"
    assert display_name("a\nb") == "a\\x0ab"


def sink(quiet=True):
    out, err = io.StringIO(), io.StringIO()
    return TaskOutput(Reporter(Console("never", quiet=quiet, out=out, err=err)), "pre/x"), out


def test_the_tail_keeps_the_last_lines_each_cut_to_a_bounded_length():
    output, _ = sink()
    for n in range(1000):
        output("stdout", b"line %d\n" % n)
    output("stderr", b"y" * (TAIL_LINE * 3) + b"\n")
    output.finish()
    tail = output.tail_list()
    assert len(tail) == 200
    assert tail[-2] == b"line 999"
    assert len(tail[-1]) < TAIL_LINE + 10
    assert output.tail_text(2, limit=1 << 20).splitlines()[0] == "line 999"
    assert len(output.tail_text(2).encode()) <= 4096  # what show --json keeps per task
    assert output.last_line().startswith("yyyy") and output.last_line().endswith("[...]")


@pytest.mark.parametrize("char", ["\u00e9", "\u20ac", "\U0001f600"])
@pytest.mark.parametrize("lines", [1, 30])
def test_the_output_kept_for_the_history_is_cut_where_a_character_begins(char, lines):
    output, _ = sink()
    for _ in range(lines):
        output("stdout", (char * 3001).encode() + b"\n")
    output.finish()
    text = output.tail_text()
    assert len(text.encode()) <= 4096
    assert len(text.encode()) > 4096 - len(char.encode())
    assert text.startswith("[...]" + char) and "\ufffd" not in text


@pytest.mark.parametrize("char", ["\u00e9", "\u20ac", "\U0001f600"])
def test_the_error_line_is_cut_where_a_character_begins(char):
    """HOOKRUN_ERROR's last line (ERROR_LINE bytes) ends on a whole character."""
    from orchestrator.report.output import ERROR_LINE

    output, _ = sink()
    output("stdout", b"a" + (char * 300).encode() + b"\n")
    output.finish()
    said = output.last_line()
    assert said.endswith(char + " [...]") and "\ufffd" not in said
    assert ERROR_LINE - 3 <= len(said[:-len(" [...]")].encode()) <= ERROR_LINE


def test_invalid_bytes_replaced_in_the_kept_output_still_fit_its_limit():
    output, _ = sink()
    output("stdout", b"\xff" * 3000 + b"\n")
    output.finish()
    text = output.tail_text()
    assert len(text.encode()) <= 4096 and text.startswith("[...]\ufffd")


def test_the_tail_is_bounded_in_bytes():
    output, _ = sink()
    for _ in range(200):
        output("stdout", b"z" * 60000 + b"\n")
    assert output.tail.size <= 2 * 1024 * 1024


def test_terminal_lines_are_prefixed_with_their_task():
    output, out = sink(quiet=False)
    output("stdout", b"hello\nw\xffrld\n")
    assert out.getvalue() == "pre/x: hello\npre/x: w\ufffdrld\n"


def test_log_lines_carry_time_run_id_task_and_stream(tmp_path):
    log = LogFile(str(tmp_path / "log"), "RUN1")
    log.lines(b"pre/x", "stderr", b"a\nb\xff")
    log.close()
    lines = (tmp_path / "log").read_bytes().splitlines()
    assert len(lines) == 2
    assert all(b" RUN1 pre/x stderr: " in line for line in lines)
    assert lines[1].endswith(b"b\xff")


def test_the_log_rotates_at_10_mib_and_keeps_5(tmp_path):
    log = LogFile(str(tmp_path / "hookrun.log"), "RUN1")
    block = b"\n".join([b"x" * 99] * 10000)
    for _ in range(80):
        log.lines(b"pre/x", "stdout", block)
    log.close()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["hookrun.log"] + [f"hookrun.log.{n}" for n in range(1, 6)]
    assert all((tmp_path / name).stat().st_size <= 10 * 1024 * 1024 for name in names)
    assert all((tmp_path / name).stat().st_mode & 0o777 == 0o600 for name in names)


def test_a_log_behind_a_link_of_its_own_user_is_rotated_where_the_file_is(tmp_path):
    (tmp_path / "disk").mkdir()
    (tmp_path / "hookrun.log").symlink_to(tmp_path / "disk" / "hookrun.log")
    from orchestrator.files import log_target

    log = LogFile(log_target(str(tmp_path / "hookrun.log"), None), "RUN1")
    block = b"\n".join([b"x" * 99] * 10000)
    for _ in range(12):
        log.lines(b"pre/x", "stdout", block)
    log.close()
    assert (tmp_path / "hookrun.log").is_symlink()
    assert sorted(p.name for p in (tmp_path / "disk").iterdir()) == ["hookrun.log",
                                                                     "hookrun.log.1"]


def test_a_rotation_that_fails_stops_logging_with_a_warning_and_never_raises(tmp_path):
    log = LogFile(str(tmp_path / "hookrun.log"), "RUN1")
    # The oldest log cannot be moved aside: a non-empty directory sits where it would go.
    (tmp_path / "hookrun.log.5").write_bytes(b"old\n")
    (tmp_path / "hookrun.log.5.removing").mkdir()
    (tmp_path / "hookrun.log.5.removing" / "keep").write_bytes(b"")
    log.size = 10 * 1024 * 1024
    log.lines(b"pre/x", "stdout", b"one more line")
    assert log.fd is None and "logging stopped" in log.error
    log.lines(b"pre/x", "stdout", b"and nothing after it")
    log.close()


def test_a_lost_stdout_never_stops_the_run_even_when_dev_null_cannot_be_opened(monkeypatch):
    read_end, write_end = os.pipe()
    os.close(read_end)  # every write now fails with EPIPE, as to a closed pipe
    out = os.fdopen(write_end, "w")
    console = Console(color="never", out=out, err=io.StringIO())

    def full_disk(*_args):
        raise OSError(errno.ENOSPC, "No space left on device", os.devnull)

    monkeypatch.setattr(printer.os, "open", full_disk)
    console.write("stdout", "a line\n")
    console.write("stdout", "another\n")
    assert console.fds["stdout"] is None
    monkeypatch.undo()
    try:
        out.close()
    except OSError:
        pass


def test_only_the_null_device_counts_as_throwing_output_away(tmp_path):
    read_end, write_end = os.pipe()
    try:
        with open(os.devnull, "wb") as null, open("/dev/zero", "rb") as zero, \
                open(tmp_path / "file", "wb") as regular:
            assert printer.is_null_device(null.fileno())
            assert not printer.is_null_device(zero.fileno())
            assert not printer.is_null_device(regular.fileno())
            assert not printer.is_null_device(write_end)
            assert not printer.is_null_device(None)
    finally:
        os.close(read_end)
        os.close(write_end)


def test_output_for_a_null_stdout_is_not_formatted_but_a_pipe_gets_it(monkeypatch):
    read_end, write_end = os.pipe()
    written = []
    real_writev = os.writev
    monkeypatch.setattr(os, "writev", lambda fd, parts: written.append(fd) or
                        real_writev(fd, parts))
    try:
        with open(os.devnull, "w") as null, os.fdopen(write_end, "w", closefd=False) as pipe:
            Console(out=null, err=pipe).output("pre/10-x", "stdout", b"to nowhere")
            assert written == []
            Console(out=pipe, err=null).output("pre/10-x", "stdout", b"to the pipe")
            assert written == [write_end]
        assert os.read(read_end, 100) == b"pre/10-x: to the pipe\n"
    finally:
        os.close(read_end)
        os.close(write_end)


def test_a_passed_stream_reaches_its_descriptor_at_once_unchanged_and_is_still_kept():
    """The command's stderr on a terminal: each chunk written as read (a prompt has no
    newline), control bytes unchanged, no prefix; kept for the error line all the same; a
    terminal that is gone sends the rest to /dev/null without stopping anything."""
    read_end, write_end = os.pipe()
    os.set_blocking(read_end, False)
    err = os.fdopen(write_end, "w")

    def written():
        try:
            return os.read(read_end, 100)
        except BlockingIOError:
            return b""

    try:
        output = TaskOutput(Reporter(Console("never", quiet=True, out=io.StringIO(), err=err)),
                            "command/restic")
        output.passed = ("stderr",)
        output("stderr", b"enter password for repository: ")
        assert written() == b"enter password for repository: "
        output("stderr", b"\n\x1b[1mscanning\r\x1b[0mFatal: wrong password\n")
        assert written() == b"\n\x1b[1mscanning\r\x1b[0mFatal: wrong password\n"
        os.close(read_end)  # the terminal is gone: writes fail with EPIPE
        output("stderr", b"Fatal: still said\n")
        output.finish()
        assert output.reporter.console.discarded["stderr"]
        assert output.last_line() == "Fatal: still said"
        assert b"Fatal: wrong password" in output.tail_bytes()
    finally:
        try:
            err.close()
        except OSError:
            pass


def test_the_last_line_of_a_line_redrawn_with_carriage_returns_is_what_shows_last():
    output, _out = sink()
    output("stdout", b"copying 10%\rcopying 20%\rFatal: no space left\n")
    assert output.last_line() == "Fatal: no space left"
    output("stdout", b"Fatal: crlf line\r\n\r\n")
    assert output.last_line() == "Fatal: crlf line"
    output("stdout", b"working\rstill redrawing, no newline yet\r  ")
    output.finish()
    assert output.last_line() == "still redrawing, no newline yet"


def test_a_tail_keeps_the_fewest_last_blocks_that_hold_tail_bytes_and_knows_its_size():
    from orchestrator.report.output import TAIL_BYTES, Tail

    tail = Tail()
    blocks = [bytes([65 + i % 26]) * (1 + i * 37 % 900) for i in range(5000)]
    for block in blocks:
        tail.add(block)
        assert tail.size == sum(map(len, tail))
        # Every block but the oldest is needed to hold TAIL_BYTES.
        assert len(tail) == 1 or tail.size - len(tail[0]) < TAIL_BYTES
    assert list(tail) == blocks[-len(tail):] and tail.size >= TAIL_BYTES


def test_a_record_keeps_what_a_task_said_only_when_it_failed_or_warned():
    from orchestrator.engine import said_of

    output, _out = sink()
    output("stdout", b"first\nprogress 10%\rdone\n")
    output.finish()
    assert said_of("ok", output) == ("", b"", b"")
    assert said_of("warning", output) == ("done", b"", b"")
    assert said_of("failed", output) == ("done", b"first\nprogress 10%\rdone\n", b"")
    output.keep_stdout()
    output("stdout", b"{\"files_new\": 3}\n")
    assert said_of("ok", output)[2] == b'{"files_new": 3}\n'
