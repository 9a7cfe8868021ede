"""Side doors (design.md section 8) that need no second user: what ``check`` prints, each
warning once, the config file as every subcommand reads it, and the commands hookrun runs
besides the hooks. The attacks by a real second user are in tests/e2e/test_side_doors.py."""

import json

import pytest

from tests.conftest import marker_hook, order, run_hookrun, show_last

EXIT_UNSAFE = 77
ESC = "\x1b"


def control_characters(text):
    return [char for char in text if ord(char) < 32 and char not in "\t\n"]


# 19. check escapes control characters; each damage of a journal is told once

def test_check_escapes_control_characters_in_every_line_it_prints(tree):
    tree.hook(f"pre-backup.d/10-bad{ESC}]0;owned\x07", header="bogus=1")
    tree.hook("pre-backup.d/2-new\nline")
    tree.hook(f"pre-backup.d/30-no-shebang{ESC}[2J", shebang="")
    tree.config(f"[hook pre-backup.d/99-gone{ESC}[31m]\ntimeout = 1m\n")
    result = run_hookrun("check", *tree.args())
    assert result.returncode == 78, result.stderr
    assert control_characters(result.stdout + result.stderr) == []
    assert "10-bad\\x1b]0;owned\\x07" in result.stderr
    assert "99-gone\\x1b[31m" in result.stderr and "2-new\\x0aline" in result.stderr


def test_check_escapes_a_hooks_directory_named_with_control_characters(tmp_path):
    hooks = tmp_path / f"hooks{ESC}[2J"
    (hooks / "pre-backup.d").mkdir(parents=True)
    result = run_hookrun("check", "-d", str(hooks), "--state-dir", str(tmp_path / "st"))
    assert result.returncode == 0, result.stderr
    assert control_characters(result.stdout + result.stderr) == []
    assert "hooks\\x1b[2J: OK" in result.stdout


def test_an_error_naming_a_file_with_control_characters_is_escaped_in_run_too(tree):
    tree.hook(f"pre-backup.d/10-bad{ESC}]0;owned\x07", header="bogus=1")
    result = run_hookrun("run", *tree.args(), "--", "true")
    assert result.returncode == 78
    assert control_characters(result.stderr) == [] and "\\x1b]0;owned" in result.stderr


DAMAGED = b"echo first\necho \0nul\necho torn"


def damage_lines(stderr):
    return [line for line in stderr.splitlines() if "not run, kept for inspection" in line]


def test_each_damage_of_a_runs_own_journal_is_told_once(tree):
    tree.hook("pre-backup.d/10-damage", r"""
        printf 'echo first\necho \000nul\necho torn' >> "$HOOKRUN_CLEANUP"
        """)
    result = run_hookrun("run", *tree.args(), "--", "true")
    assert result.returncode == 0, result.stderr
    found = damage_lines(result.stderr)
    assert len(found) == 2, result.stderr
    assert "line 2 holds a NUL byte" in found[0] and "line 3 is not complete" in found[1]
    record = show_last(tree)
    assert [t["name"] for t in record["tasks"] if t["phase"] == "cleanup"] == ["echo first"]
    # A registered undo that did not run is no success (design.md 10).
    assert record["status"] == "warning" and "2 damaged line(s) not run" in record["error"]


def test_each_damage_of_a_journal_replayed_by_a_runs_recovery_is_told_once(tree):
    assert run_hookrun("run", *tree.args(), "--", "true").returncode == 0
    run_dir = tree.state / "runs" / "20200101T000000-abcdef"
    run_dir.mkdir(mode=0o700)
    (run_dir / "owner.lock").write_bytes(b"")
    (run_dir / "cleanup").write_bytes(DAMAGED.replace(b"echo first",
                                                      f"touch {tree.mark('first')}".encode()))
    (run_dir / "cleanup").chmod(0o600)
    marker_hook(tree, "pre-backup.d/10-a")
    result = run_hookrun("run", *tree.args(), "--", "true")
    assert result.returncode == 0, result.stderr
    found = damage_lines(result.stderr)
    assert len(found) == 2, result.stderr
    assert tree.read("first") == "" and order(tree) == ["pre/10-a"]
    again = run_hookrun("run", *tree.args(), "--", "true")
    assert again.returncode == 0 and damage_lines(again.stderr) == []
    assert json.loads(run_hookrun("show", "last", "--json", *tree.args()).stdout)["status"] \
        == "success"


# 2. Every subcommand reads the config under the same rules

SUBCOMMANDS = [["run", "--", "true"], ["run", "--no-hooks", "--", "true"],
               ["run", "--dry-run", "--", "true"], ["recover"], ["phase", "pre-backup"],
               ["list"], ["check"], ["show", "last"], ["history"]]


@pytest.mark.parametrize("argv", SUBCOMMANDS, ids=" ".join)
def test_every_subcommand_refuses_a_config_others_can_write_whatever_it_says(tree, argv):
    marker_hook(tree, "pre-backup.d/10-a")
    assert run_hookrun("run", *tree.args(), "--", "true").returncode == 0
    # What a config that anyone can write could say to let itself through.
    tree.config("[hookrun]\nstrict_permissions = no\n").chmod(0o666)
    result = run_hookrun(argv[0], *tree.args(), *argv[1:])
    assert result.returncode == EXIT_UNSAFE, result.stderr
    assert "hookrun.conf is writable by group or others" in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert order(tree) == ["pre/10-a"]


def test_insecure_on_the_command_line_lets_an_unsafe_config_through_with_a_warning(tree):
    marker_hook(tree, "pre-backup.d/10-a")
    tree.config("[hookrun]\ntimeout = 1m\n").chmod(0o666)
    result = run_hookrun("run", *tree.args("--insecure"), "--", "true")
    assert result.returncode == 0, result.stderr
    assert "hookrun.conf is writable by group or others" in result.stderr
    assert order(tree) == ["pre/10-a"]
    assert run_hookrun("history", *tree.args("--insecure")).returncode == 0
