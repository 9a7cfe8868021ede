"""Trust inside root's own state directory and output (design.md section 8): no link
followed, no journal replayed that is not hookrun's own, nothing secret published, no line
forged. The attacks by a real second user are in tests/e2e/test_root_safety.py."""

import json
import os
import re
import shutil

import pytest

from tests.conftest import marker_hook, order, run_hookrun, show_last

RECORD_START = re.compile(rb"^\d{4}-\d\d-\d\dT[\d:.]+[+-]\d\d:\d\d \d{8}T\d{6}-[0-9a-f]{6} ")


def first_run(tree):
    """One run, so that the state directory and its subdirectories exist."""
    assert run_hookrun("run", *tree.args(), "--", "true").returncode == 0


@pytest.mark.parametrize("name, status", [
    ("locks/backup.lock", 73), ("hookrun.log", 73), ("runs", 77), ("locks", 77)])
def test_links_in_the_state_directory_are_never_followed(tree, name, status):
    first_run(tree)
    victim = tree.base / "victim"
    victim.mkdir() if name in ("runs", "locks") else victim.write_text("precious\n")
    target = tree.state / name
    if target.is_dir():
        shutil.rmtree(target)
    elif target.exists():
        target.unlink()
    os.symlink(victim, target)
    marker_hook(tree, "pre-backup.d/10-a")
    result = run_hookrun("run", *tree.args(), "--", "true")
    assert result.returncode == status, result.stderr
    assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.stderr
    assert order(tree) == []
    if victim.is_dir():
        assert list(victim.iterdir()) == []
    else:
        assert victim.read_text() == "precious\n"


def test_a_history_that_is_a_link_is_not_followed_and_the_run_goes_on(tree):
    first_run(tree)
    (tree.state / "history.sqlite3").unlink()
    missing = tree.base / "created-through-a-link"
    os.symlink(missing, tree.state / "history.sqlite3")
    marker_hook(tree, "pre-backup.d/10-a")
    result = run_hookrun("run", *tree.args(), "--", "true")
    assert result.returncode == 0
    assert "history" in result.stderr and order(tree) == ["pre/10-a"]
    assert not missing.exists()


def plant_dead_run(tree, line, mode=0o600):
    """A run directory as a crashed run leaves it, with one cleanup ``line``."""
    run_dir = tree.state / "runs" / "20200101T000000-abcdef"
    run_dir.mkdir(mode=0o700)
    (run_dir / "owner.lock").write_bytes(b"")
    journal = run_dir / "cleanup"
    journal.write_text(line + "\n")
    journal.chmod(mode)
    return run_dir


def test_a_journal_others_can_write_is_never_replayed(tree):
    first_run(tree)
    run_dir = plant_dead_run(tree, f'touch "{tree.marks}/replayed"', mode=0o666)
    result = run_hookrun("recover", *tree.args())
    assert result.returncode == 0
    assert "not replayed" in result.stderr and "writable by group or others" in result.stderr
    assert tree.read("replayed") is None and (run_dir / "cleanup").exists()
    plant_dir = run_dir
    (plant_dir / "cleanup").chmod(0o600)
    assert run_hookrun("recover", *tree.args()).returncode == 0
    assert tree.read("replayed") == "" and not plant_dir.exists()


def test_cleanup_lines_are_named_by_their_first_word_in_metrics_and_notifications(tree,
                                                                                   checker):
    metrics = tree.base / "hookrun.prom"
    tree.hook("pre-backup.d/10-defer",
              "hookrun defer PGPASSWORD=s3cr3t-env true --user admin:s3cr3t-arg")
    tree.config(f"[hookrun]\nnotify_command = sh -c 'cat > \"{tree.marks}/record\"'\n")
    result = run_hookrun("run", *tree.args("--metrics-file", str(metrics), "--notify-url",
                                           checker.url), "--", "true")
    assert result.returncode == 0, result.stderr
    for published in (metrics.read_bytes(), tree.read("record").encode(),
                      *(body.encode() for _path, body in checker.requests)):
        assert b"s3cr3t" not in published
    assert 'hook="true"' in metrics.read_text()
    assert {"phase": "cleanup", "name": "true"}.items() <= \
        json.loads(tree.read("record"))["tasks"][-1].items()
    # The history, readable only by root, keeps the whole line.
    assert "s3cr3t-arg" in show_last(tree)["tasks"][-1]["name"]


def test_a_malformed_handoff_line_is_named_by_number_never_by_its_text(tree):
    tree.hook("pre-backup.d/10-leak", """
        echo "export API_TOKEN=s3cr3t-token" >> "$HOOKRUN_ENV"
        echo "GOOD=1" >> "$HOOKRUN_ENV"
        """)
    result = run_hookrun("run", *tree.args(), "--", "true")
    assert result.returncode == 0
    assert "line 1" in result.stderr and "s3cr3t" not in result.stderr + result.stdout
    assert b"s3cr3t" not in (tree.state / "hookrun.log").read_bytes()


def test_a_handed_on_path_cannot_override_the_path_setting(tree):
    tree.config("[hookrun]\npath = /usr/bin:/bin\n")
    tree.hook("pre-backup.d/10-path", 'echo "PATH=/tmp/evil:/usr/bin" >> "$HOOKRUN_ENV"')
    tree.hook("pre-backup.d/20-see", f'echo "$PATH" > "{tree.marks}/path"')
    result = run_hookrun("run", *tree.args(), "--", "sh", "-c",
                         f'echo "$PATH" > "{tree.marks}/command-path"')
    assert result.returncode == 0
    assert tree.read("path").startswith("/usr/bin:/bin:") and "evil" not in tree.read("path")
    assert tree.read("command-path") == "/usr/bin:/bin\n"
    assert "PATH" in result.stderr


def test_newlines_in_names_and_arguments_forge_no_log_record_and_show_prints_no_controls(tree):
    weird = os.path.join(os.fsencode(tree.hooks / "pre-backup.d"),
                         b"10-x\n2026-01-01T00:00:00.000+00:00 forged \x1b[31m")
    os.makedirs(os.path.dirname(weird), mode=0o755, exist_ok=True)
    with open(weird, "wb") as handle:
        handle.write(b"#!/bin/sh\necho out\n")
    os.chmod(weird, 0o755)
    result = run_hookrun("run", *tree.args(), "--", "true", "arg\nfake record\x1b]0;title\x07")
    assert result.returncode == 0, result.stderr
    log = (tree.state / "hookrun.log").read_bytes().split(b"\n")[:-1]
    assert log and all(RECORD_START.match(line) for line in log), log
    assert b"\x1b" not in b"\n".join(log)
    for argv in (["show", "last"], ["history"]):
        shown = run_hookrun(*argv, *tree.args())
        assert shown.returncode == 0
        assert "\x1b" not in shown.stdout and "\x07" not in shown.stdout
        assert "forged" not in "".join(line for line in shown.stdout.splitlines()
                                       if line.startswith("2026"))
    assert "\x1b" not in result.stdout + result.stderr


def test_a_hook_that_swaps_its_hand_off_files_for_fifos_hangs_nothing(tree):
    """HOOKRUN_ENV and HOOKRUN_STATS are read only as regular files (files.open_regular): a
    FIFO put in their place is nothing to read, never a read that waits for a writer."""
    tree.hook("pre-backup.d/10-swap", """
        rm -f "$HOOKRUN_ENV" "$HOOKRUN_STATS"
        mkfifo "$HOOKRUN_ENV" "$HOOKRUN_STATS"
        """)
    tree.hook("post-backup.d/10-see", f'echo "${{FROM_FIFO-unset}}" > "{tree.marks}/seen"')
    result = run_hookrun("run", *tree.args(), "--", "true", timeout=60)
    assert result.returncode == 0, result.stderr
    assert show_last(tree)["status"] == "success"
    assert tree.read("seen") == "unset\n"
