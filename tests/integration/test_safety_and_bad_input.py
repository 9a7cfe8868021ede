"""Unsafe trees are refused (exit 77) and bad input gets one line and its documented status
(design.md section 5)."""

import json
import os
import resource
import socket
import subprocess
import tempfile

import pytest

from tests.conftest import (
    hookrun_cmd,
    marker_hook,
    needs_root,
    order,
    run_hookrun,
    show_last,
)

NOBODY = 65534


def one_line(text):
    return text.count("\n") == 1 and "Traceback" not in text


@pytest.mark.parametrize("target", ["hooks", "phase", "hook", "config", "hookignore"])
def test_group_or_world_writable_paths_are_refused_with_77(tree, target):
    hook = marker_hook(tree, "pre-backup.d/10-a")
    config = tree.config("[hookrun]\n")
    ignore = tree.hooks / ".hookignore"
    ignore.write_text("*.sample\n")
    path = {"hooks": tree.hooks, "phase": hook.parent, "hook": hook, "config": config,
            "hookignore": ignore}[target]
    path.chmod(path.stat().st_mode | 0o002)
    result = run_hookrun("run", *tree.args(), "--", "true")
    assert result.returncode == 77
    assert one_line(result.stderr) and str(path) in result.stderr
    assert "chmod go-w" in result.stderr
    assert order(tree) == []


def test_a_file_owned_by_another_user_is_refused(tree):
    needs_root("chown of a hook to another user")
    hook = marker_hook(tree, "pre-backup.d/10-a")
    os.chown(hook, NOBODY, -1)
    result = run_hookrun("run", *tree.args(), "--", "true")
    assert result.returncode == 77 and "owned by" in result.stderr


def test_a_setuid_hook_is_refused(tree):
    hook = marker_hook(tree, "pre-backup.d/10-a")
    hook.chmod(0o4755)
    result = run_hookrun("run", *tree.args(), "--", "true")
    assert result.returncode == 77 and "set-user-ID" in result.stderr


def test_a_setgid_hooks_directory_is_refused(tree):
    marker_hook(tree, "pre-backup.d/10-a")
    tree.hooks.chmod(0o2755)
    result = run_hookrun("check", *tree.args())
    assert result.returncode == 77 and "set-group-ID" in result.stderr


def test_relative_directories_still_work_after_a_hook_changes_directory(tree):
    tree.hook("pre-backup.d/10-a", f'cd / && hookrun defer touch "{tree.marks}/cleaned"')
    result = run_hookrun("run", "-d", "hooks", "--state-dir", "state", "--", "true",
                         cwd=tree.base)
    assert result.returncode == 0, result.stderr
    assert tree.read("cleaned") == ""


def test_a_symlinks_target_is_checked(tree):
    target = tree.base / "elsewhere"
    target.write_text("#!/bin/sh\ntrue\n")
    target.chmod(0o777)
    (tree.hooks / "pre-backup.d").mkdir(mode=0o755)
    os.symlink(target, tree.hooks / "pre-backup.d" / "10-link")
    result = run_hookrun("run", *tree.args(), "--", "true")
    assert result.returncode == 77 and str(target) in result.stderr


def test_insecure_and_strict_permissions_no_turn_refusals_into_warnings(tree):
    hook = marker_hook(tree, "pre-backup.d/10-a")
    hook.chmod(0o777)
    result = run_hookrun("run", *tree.args("--insecure"), "--", "true")
    assert result.returncode == 0 and "chmod go-w" in result.stderr
    tree.config("[hookrun]\nstrict_permissions = no\n")
    assert run_hookrun("run", *tree.args(), "--", "true").returncode == 0
    assert order(tree) == ["pre/10-a", "pre/10-a"]


def test_files_that_cannot_start_need_no_safe_permissions_since_they_never_run(tree):
    plain = tree.hook("pre-backup.d/10-notes", "true", mode=0o666, header="critical=no")
    result = run_hookrun("run", *tree.args(), "--", "true")
    assert result.returncode == 0 and "unsafe" not in result.stderr
    assert show_last(tree)["tasks"][0]["reason"] == "not executable"
    assert show_last(tree)["status"] == "warning"
    assert plain.exists()


def test_no_hooks_does_not_read_hook_directories_but_checks_the_hooks_dir(tree):
    bad = tree.hook("pre-backup.d/10-unsafe", "true", header="colour=red", mode=0o777)
    result = run_hookrun("run", *tree.args("--no-hooks"), "--", "true")
    assert result.returncode == 0, result.stderr
    bad.unlink()
    tree.hooks.chmod(0o777)
    result = run_hookrun("run", *tree.args("--no-hooks"), "--", "true")
    assert result.returncode == 77
    tree.hooks.chmod(0o755)
    tree.config("[hookrun]\nbogus = 1\n")
    assert run_hookrun("run", *tree.args("--no-hooks"), "--", "true").returncode == 78


@pytest.mark.parametrize("config, status", [
    ("[hookrun]\ntimeout = eventually\n", 78),
    ("[hookrun]\nkill_grace = -1\n", 78),
    ("garbage\n", 78),
    ("[hookrun]\nnotify_url = x\n[hookrun]\n", 78),
])
def test_malformed_config_is_one_line_and_78(tree, config, status):
    tree.config(config)
    result = run_hookrun("run", *tree.args(), "--", "true")
    assert result.returncode == status and one_line(result.stderr)
    assert "hookrun.conf:" in result.stderr


def test_config_that_is_not_utf8_is_a_config_error(tree):
    path = tree.hooks / "hookrun.conf"
    path.write_bytes(b"[env]\nX = \xff\xfe\n")
    path.chmod(0o644)
    result = run_hookrun("run", *tree.args(), "--", "true")
    assert result.returncode == 78 and "hookrun.conf:2:" in result.stderr


@pytest.mark.parametrize("option", ["--timeout", "--kill-grace", "--command-timeout",
                                    "--wait"])
def test_bad_durations_on_the_command_line_are_usage_errors(tree, option):
    result = run_hookrun("run", *tree.args(f"{option}=soon"), "--", "true")
    assert result.returncode == 2 and one_line(result.stderr)


def test_debug_shows_the_traceback(tree):
    tree.config("[hookrun]\nbogus = 1\n")
    result = run_hookrun("run", "--debug", *tree.args(), "--", "true")
    assert result.returncode != 0 and "Traceback" in result.stderr


SUBCOMMANDS = [["run", "--", "true"], ["run", "--dry-run", "--", "true"], ["check"],
               ["check", "--json"], ["list"], ["phase", "pre-backup"], ["recover"]]


@pytest.mark.parametrize("kind", ["fifo", "directory"])
@pytest.mark.parametrize("where", ["config", "-c", "hookignore"])
def test_a_settings_file_that_is_not_a_regular_file_is_78_never_a_hang(tree, where, kind):
    marker_hook(tree, "pre-backup.d/10-a")
    path = {"config": tree.hooks / "hookrun.conf", "-c": tree.base / "given.conf",
            "hookignore": tree.hooks / ".hookignore"}[where]
    {"fifo": lambda: os.mkfifo(path, 0o600), "directory": lambda: path.mkdir(0o700)}[kind]()
    extra = ["-c", str(path)] if where == "-c" else []
    # .hookignore is read only where hooks are: history and recover never look at it.
    argvs = SUBCOMMANDS if where != "hookignore" else SUBCOMMANDS[:-1]
    for argv in argvs + ([["history"]] if where != "hookignore" else []):
        # A hang would end in TimeoutExpired: the bound is only a guard.
        result = run_hookrun(argv[0], *tree.args(*extra), *argv[1:], timeout=60)
        assert result.returncode == 78, (argv, result.stderr)
        if "--json" in argv:
            [problem] = json.loads(result.stdout)["problems"]
            assert problem["path"] == str(path)
        else:
            assert str(path) in result.stderr and one_line(result.stderr)
    assert order(tree) == [] and not (tree.state / "history.sqlite3").exists()


def test_odd_names_fifos_sockets_directories_and_empty_files(tree):
    d = tree.hooks / "pre-backup.d"
    marker_hook(tree, "pre-backup.d/10-normal")
    os.mkfifo(d / "20-fifo")
    sock = socket.socket(socket.AF_UNIX)
    # Bound where the path is short (a socket path holds 107 bytes, and an ordinary user's
    # pytest directory is longer than root's), then moved into the phase directory.
    short = tempfile.mkdtemp()
    sock.bind(os.path.join(short, "s"))
    os.replace(os.path.join(short, "s"), d / "30-socket")
    os.rmdir(short)
    (d / "40-dir").mkdir(mode=0o755)
    empty = d / "50-empty"
    empty.write_bytes(b"")
    empty.chmod(0o755)
    weird = os.path.join(os.fsencode(d), b"60-new\nline-\xff")
    with open(weird, "wb") as handle:
        handle.write(f'#!/bin/sh\necho weird >> "{tree.marks}/order"\n'.encode())
    os.chmod(weird, 0o755)
    try:
        result = run_hookrun("run", *tree.args(), "--", "true")
        listing = run_hookrun("list", "--json", "--all", *tree.args())
    finally:
        sock.close()
    assert result.returncode == 0, result.stderr
    assert order(tree) == ["pre/10-normal", "weird"]
    assert result.stderr.count("skipped") == 3
    names = {task["name"] for task in show_last(tree)["tasks"]}
    assert "60-new\nline-\ufffd" in names and "50-empty" in names
    assert listing.returncode == 0


def test_ten_thousand_files_in_one_directory(tree):
    d = tree.hooks / "pre-backup.d"
    d.mkdir(mode=0o755)
    for n in range(10_000):
        path = d / f"{n:05d}.disabled"
        path.write_bytes(b"")
    marker_hook(tree, "pre-backup.d/99999-last")
    result = run_hookrun("run", "-q", *tree.args(), "--", "true", timeout=120)
    assert result.returncode == 0
    assert order(tree) == ["pre/99999-last"]


def limited(size):
    def apply():
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
    return apply


def test_a_full_disk_stops_the_log_but_not_the_run_or_its_cleanups(tree):
    run_hookrun("run", *tree.args(), "--", "true")
    tree.hook("pre-backup.d/10-big", f"""
        hookrun defer touch "{tree.marks}/cleaned"
        yes 0123456789012345678901234567890123456789 | head -c 3000000
        """)
    result = subprocess.run(hookrun_cmd() + ["run", "-q", *tree.args(), "--", "true"],
                            preexec_fn=limited(400_000), capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert "logging stopped" in result.stderr
    assert tree.read("cleaned") == ""


def test_a_history_that_cannot_be_opened_is_reported_and_the_run_goes_on(tree):
    tree.hook("pre-backup.d/10-a", f'hookrun defer touch "{tree.marks}/cleaned"')
    tree.state.mkdir(mode=0o700)
    (tree.state / "history.sqlite3").mkdir()
    result = run_hookrun("run", *tree.args(), "--", "true")
    assert result.returncode == 0
    assert "not be recorded" in result.stderr
    assert tree.read("cleaned") == ""


def test_a_history_that_is_a_link_is_named_so_with_its_fix_never_a_promise_of_repair(tree):
    """hookrun follows no link in its state directory: a history that is one is never
    opened, the run goes on unrecorded, and history says why and how to mend it, not that
    the next run moves a damaged history aside (no run does, for a link)."""
    tree.state.mkdir(mode=0o700)
    elsewhere = tree.base / "elsewhere.sqlite3"
    elsewhere.touch()
    (tree.state / "history.sqlite3").symlink_to(elsewhere)
    result = run_hookrun("run", *tree.args("--no-hooks"), "--", "true")
    assert result.returncode == 0
    assert "it is a symbolic link (fix: move it away" in result.stderr
    assert "not be recorded" in result.stderr
    shown = run_hookrun("history", *tree.args())
    assert shown.returncode == 1
    assert "it is a symbolic link (fix: move it away" in shown.stderr
    assert "moves a damaged history aside" not in shown.stderr
    assert elsewhere.read_bytes() == b""


def test_a_history_that_is_no_database_is_moved_aside_and_a_new_one_started(tree):
    tree.hook("pre-backup.d/10-a", f'hookrun defer touch "{tree.marks}/cleaned"')
    tree.state.mkdir(mode=0o700)
    (tree.state / "history.sqlite3").write_bytes(b"this is not a database" * 100)
    result = run_hookrun("run", *tree.args(), "--", "true")
    assert result.returncode == 0
    assert "moved aside" in result.stderr
    assert tree.read("cleaned") == ""
    aside = [p.name for p in tree.state.iterdir() if ".corrupt-" in p.name]
    assert len(aside) == 1
    assert (tree.state / aside[0]).read_bytes() == b"this is not a database" * 100
    assert show_last(tree)["status"] == "success"
