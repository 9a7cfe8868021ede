"""Real restic run by the installed hookrun on a pseudo-terminal (design.md section 10, "The
command's error is kept on a terminal too"): restic's own "Fatal:" line, which it writes to
stderr, reaches the terminal and is kept for the error hooks, the log file and ``show``."""

from tests.conftest import show_last
from tests.e2e import test_example_tree as example_tree
from tests.e2e.test_example_tree import hermetic_env, hookrun_path, snapshots
from tests.integration.test_command_on_a_terminal import Terminal

# The example tree's fixture: an initialised restic repository of the test's own.
restic_repo = example_tree.restic_repo

WRONG_PASSWORD = "Fatal: wrong password or no key found"


def restic_backup_on_a_terminal(tree, values, data):
    argv = [hookrun_path(), "run", *tree.args(), "--", "restic", "backup", str(data)]
    terminal = Terminal(argv, {**hermetic_env(), **{k: str(v) for k, v in values.items()}})
    return terminal.finish(), terminal.data


def test_restic_with_a_wrong_password_on_a_terminal_tells_the_error_hooks_why(
        tree, tmp_path, restic_repo):
    tree.hook("on-error.d/10-keep", f"""
        printf '%s\\n' "$ERROR" > "{tree.marks}/error"
        cat "$HOOKRUN_ERROR_LOG" > "{tree.marks}/error_log"
        """)
    data = tmp_path / "data"
    data.mkdir()
    (data / "file").write_text("precious\n")
    wrong = tmp_path / "wrong-password"
    wrong.write_text("not the password\n")
    status, shown = restic_backup_on_a_terminal(
        tree, dict(restic_repo, RESTIC_PASSWORD_FILE=wrong), data)
    assert status == 1
    assert WRONG_PASSWORD.encode() in shown
    assert tree.read("error") == f"command restic failed (exit 1): {WRONG_PASSWORD}\n"
    assert WRONG_PASSWORD in tree.read("error_log")
    record = show_last(tree)
    assert record["status"] == "failure" and record["exit_code"] == 1
    command = next(t for t in record["tasks"] if t["phase"] == "command")
    assert command["exit_code"] == 1 and WRONG_PASSWORD in command["output"]
    assert WRONG_PASSWORD in (tree.state / "hookrun.log").read_text()
    assert snapshots(restic_repo) == []


def test_restic_with_the_right_password_on_a_terminal_backs_up(tree, tmp_path, restic_repo):
    data = tmp_path / "data"
    data.mkdir()
    (data / "file").write_text("precious\n")
    status, _shown = restic_backup_on_a_terminal(tree, restic_repo, data)
    assert status == 0
    assert show_last(tree)["status"] == "success"
    assert len(snapshots(restic_repo)) == 1
