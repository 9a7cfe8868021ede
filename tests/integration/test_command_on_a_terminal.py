"""The command when hookrun's stdout is a terminal (design.md sections 2 and 10): it keeps the
terminal as its stdout and stdin, its stderr passes through hookrun to the terminal as it
comes, and what it said there is kept for ERROR, HOOKRUN_ERROR_LOG, the log file and ``show``.
Every test runs the installed hookrun on a real pseudo-terminal."""

import os
import pty
import select
import signal
import subprocess
import time

from tests.conftest import hookrun_cmd, show_last

FATAL = "Fatal: wrong password or no key found"
DEADLINE = 60


def terminal_env():
    env = dict(os.environ, NO_COLOR="1")
    env.pop("HOOKRUN_CLEANUP", None)
    return env


class Terminal:
    """``argv`` run in environment ``env`` with a pseudo-terminal as its stdin, stdout and
    stderr; ``data`` holds what it printed so far (bytes as the terminal got them)."""

    def __init__(self, argv, env):
        master, slave = pty.openpty()
        self.master = master
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave,
                                     start_new_session=True, env=env)
        os.close(slave)
        self.data = b""

    def read(self, seconds):
        """Read what comes for at most ``seconds``; False once the terminal is closed."""
        ready, _, _ = select.select([self.master], [], [], seconds)
        if not ready:
            return True
        try:
            chunk = os.read(self.master, 65536)
        except OSError:  # EIO: every process holding the terminal is gone
            return False
        self.data += chunk
        return bool(chunk)

    def wait_for(self, expected, timeout=DEADLINE):
        """Whether ``expected`` (bytes) appears within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while expected not in self.data and time.monotonic() < deadline:
            if not self.read(0.2):
                break
        return expected in self.data

    def finish(self, timeout=DEADLINE):
        """Read until hookrun ends; returns its exit status."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.read(0.2):
            if self.proc.poll() is not None and not select.select([self.master], [], [], 0)[0]:
                break
        os.close(self.master)
        return self.proc.wait(timeout=10)


def run_on_terminal(tree, argv, *options):
    terminal = Terminal(hookrun_cmd() + ["run", *tree.args(*options), "--", *argv],
                        terminal_env())
    return terminal.finish(), terminal.data


def error_hooks(tree):
    """An on-error hook that keeps what it was told of the failure in marker files."""
    tree.hook("on-error.d/10-keep", f"""
        printf '%s\\n' "$ERROR" > "{tree.marks}/error"
        printf '%s\\n' "$BACKUP_ERROR" > "{tree.marks}/backup_error"
        printf '%s\\n' "$HOOKRUN_ERROR" > "{tree.marks}/hookrun_error"
        cat "$HOOKRUN_ERROR_LOG" > "{tree.marks}/error_log"
        """)


def command_task(tree):
    return next(t for t in show_last(tree)["tasks"] if t["phase"] == "command")


def logged(tree, stream="stderr"):
    """The lines the log file holds of the command on ``stream``, as bytes."""
    return [line for line in (tree.state / "hookrun.log").read_bytes().split(b"\n")
            if b" command/" in line and f" {stream}: ".encode() in line]


def test_a_failing_commands_error_on_a_terminal_reaches_the_error_hooks_log_and_history(tree):
    error_hooks(tree)
    command = tree.hook("restic", f"""
        [ -t 0 ] && [ -t 1 ] && echo "stdin and stdout are the terminal"
        printf 'scanning 50%%\\rscanning 100%%\\n'
        echo "{FATAL}" >&2
        exit 1
        """)
    status, shown = run_on_terminal(tree, [str(command)])
    assert status == 1
    assert b"stdin and stdout are the terminal" in shown
    assert b"scanning 100%" in shown and FATAL.encode() in shown
    expected = f"command {command} failed (exit 1): {FATAL}\n"
    for marker in ("error", "backup_error", "hookrun_error"):
        assert tree.read(marker) == expected
    assert tree.read("error_log") == FATAL + "\n"
    record = show_last(tree)
    assert record["status"] == "failure" and record["exit_code"] == 1
    task = command_task(tree)
    assert task["status"] == "failed" and task["exit_code"] == 1
    assert FATAL in task["output"]
    assert any(line.endswith(b" stderr: " + FATAL.encode()) for line in logged(tree))


def test_a_prompt_without_a_newline_reaches_the_terminal_while_the_command_waits(tree):
    """Each chunk is written as it is read: restic's password prompt has no newline yet."""
    answer = tree.mark("answer")
    command = tree.hook("ask", f"""
        printf 'enter password for repository: ' >&2
        i=0
        while [ ! -e "{answer}" ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
        [ -e "{answer}" ]
        """)
    terminal = Terminal(hookrun_cmd() + ["run", *tree.args(), "--", str(command)],
                        terminal_env())
    prompt_seen = terminal.wait_for(b"enter password for repository: ")
    answer.touch()
    status = terminal.finish()
    assert prompt_seen, terminal.data
    assert status == 0
    assert show_last(tree)["status"] == "success"


def test_progress_control_bytes_on_stderr_reach_the_terminal_and_the_log_unchanged(tree):
    """The command holds the terminal already (stdout): its stderr is passed on as bytes, not
    escaped, so a progress line drawn with \\r and colour works; the log keeps the bytes."""
    command = tree.hook("draw", r"""
        printf 'copying 10%%\r' >&2
        printf 'copying 20%%\r\033[1mdone\033[0m\n' >&2
        """)
    status, shown = run_on_terminal(tree, [str(command)])
    assert status == 0
    assert b"copying 10%\rcopying 20%\r\x1b[1mdone\x1b[0m" in shown
    assert b"\\x0d" not in shown and b"\\x1b" not in shown
    assert b"copying 10%\rcopying 20%\r\x1b[1mdone\x1b[0m" in b"\n".join(logged(tree))
    assert show_last(tree)["status"] == "success"


def test_a_daemon_keeping_the_commands_stderr_open_does_not_hang_the_run(tree):
    """The 2 s drain rule holds for the stderr pipe: the command's own exit ends the wait."""
    error_hooks(tree)
    command = tree.hook("leave", f"""
        sleep 60 >/dev/null &
        echo $! > "{tree.marks}/stray"
        echo "{FATAL}" >&2
        exit 1
        """)
    began = time.monotonic()
    try:
        status, shown = run_on_terminal(tree, [str(command)])
        took = time.monotonic() - began
    finally:
        stray = tree.read("stray")
        if stray:
            os.kill(int(stray), 9)
    assert status == 1
    assert took < 30, took
    assert b"left processes running that hold its output open" in shown
    assert FATAL in tree.read("error")
    record = show_last(tree)
    assert record["status"] == "failure" and record["exit_code"] == 1


def test_a_command_that_times_out_on_a_terminal_is_killed_and_its_error_kept(tree):
    """--command-timeout with the stderr pipe: SIGTERM ignored, SIGKILL after kill_grace
    reaches the command and its child, which both hold the pipe."""
    error_hooks(tree)
    command = tree.hook("hang", """
        trap '' TERM
        echo "still connecting to the repository" >&2
        sleep 60
        """)
    began = time.monotonic()
    status, _shown = run_on_terminal(tree, [str(command)], "--command-timeout", "1s",
                                     "--kill-grace", "1s")
    assert time.monotonic() - began < 40
    assert status == 124
    assert "still connecting to the repository" in tree.read("error")
    record = show_last(tree)
    assert record["status"] == "failure" and record["exit_code"] == 124
    task = command_task(tree)
    assert task["status"] == "timeout" and "still connecting" in task["output"]


def test_an_error_after_a_progress_line_on_stderr_is_the_error_line_without_the_progress(tree):
    """A progress line redrawn with \\r and then the error on the same line: ERROR says what
    the terminal shows last, not every state of the progress with its \\r escaped."""
    error_hooks(tree)
    command = tree.hook("restic", f"""
        printf 'scanning 10%%\\rscanning 20%%\\r{FATAL}\\r\\n' >&2
        exit 1
        """)
    status, shown = run_on_terminal(tree, [str(command)])
    assert status == 1
    assert b"scanning 20%\r" + FATAL.encode() in shown
    assert tree.read("error") == f"command {command} failed (exit 1): {FATAL}\n"
    assert b"scanning 10%\rscanning 20%\r" in tree.mark("error_log").read_bytes()
    assert show_last(tree)["status"] == "failure"


def test_ctrl_c_during_the_command_on_a_terminal_interrupts_it_and_keeps_what_it_said(tree):
    """SIGINT to hookrun (a terminal's Ctrl-C) reaches the command, whose child still holds
    the stderr pipe; the run is interrupted, and the error hooks are told what it said."""
    error_hooks(tree)
    command = tree.hook("restic", """
        echo "repository locked, waiting" >&2
        sleep 60
        """)
    terminal = Terminal(hookrun_cmd() + ["run", *tree.args("--kill-grace", "2s"), "--",
                                         str(command)], terminal_env())
    said = terminal.wait_for(b"repository locked, waiting")
    terminal.proc.send_signal(signal.SIGINT)
    status = terminal.finish()
    assert said, terminal.data
    assert status == 130
    assert "repository locked, waiting" in tree.read("error")
    record = show_last(tree)
    assert record["status"] == "interrupted" and record["exit_code"] == 130
    assert "repository locked, waiting" in command_task(tree)["output"]
