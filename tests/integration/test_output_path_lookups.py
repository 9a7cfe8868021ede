"""An output path (the log file, the metrics file) that cannot be looked up for a reason that
has nothing to do with another user (a name past NAME_MAX, a loop of one's own links) is what
it is (design.md sections 2, 4 and 8): a log file that cannot be opened refuses the run with
73, a metrics file that cannot be written is a warning and the backup runs. Only other users'
links and files are unsafe (77): tests/e2e/test_root_safety.py and
tests/e2e/test_output_path_lookups_as_user.py prove that with a real second account."""

import os

import pytest

from tests.conftest import run_hookrun, show_last

EXIT_CANT_CREATE = 73
TOO_LONG = "a" * 300  # past NAME_MAX (255): its lookup fails with ENAMETOOLONG


def unreachable(tree, where):
    """An output path under ``tree`` whose lookup fails: ``where`` says how."""
    if where == "name-in-state-dir":
        return tree.state / TOO_LONG
    if where == "name":
        return tree.base / TOO_LONG
    if where == "directory":
        return tree.base / TOO_LONG / "out"
    # A loop of the running user's own links: ELOOP, not another user's doing.
    os.symlink("loop-b", tree.base / "loop-a")
    os.symlink("loop-a", tree.base / "loop-b")
    return tree.base / "loop-a" / "out"


def backup_args(tree, *options):
    """A run whose pre- hook marks 'ran' and whose command (the backup) marks 'backup'."""
    tree.hook("pre-backup.d/10-x", f"echo ran > {tree.mark('ran')}")
    return ["run", *tree.args(*options), "--", "sh", "-c", f"echo done > {tree.mark('backup')}"]


@pytest.mark.parametrize("where", ["name-in-state-dir", "name", "directory", "loop"])
def test_a_log_file_that_cannot_be_looked_up_refuses_the_run_as_not_creatable_not_unsafe(
        tree, where):
    log = unreachable(tree, where)
    metrics = tree.base / "hookrun.prom"
    result = run_hookrun(*backup_args(tree, "--log-file", str(log),
                                      "--metrics-file", str(metrics)))
    assert result.returncode == EXIT_CANT_CREATE, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "cannot open log file" in lines[0], result.stderr
    assert "unsafe" not in result.stderr
    assert tree.read("ran") is None and tree.read("backup") is None
    # Monitoring sees the refusal for what it is.
    refused = [line for line in metrics.read_text().splitlines()
               if line.startswith("hookrun_last_refused_timestamp_seconds{")]
    assert len(refused) == 1 and 'reason="state"' in refused[0], refused


@pytest.mark.parametrize("where", ["name-in-state-dir", "name", "directory", "loop"])
def test_a_metrics_file_that_cannot_be_looked_up_is_a_warning_and_the_backup_runs(tree, where):
    metrics = unreachable(tree, where)
    result = run_hookrun(*backup_args(tree, "--metrics-file", str(metrics)))
    assert result.returncode == 0, result.stderr
    assert tree.read("ran") == "ran\n" and tree.read("backup") == "done\n"
    warnings = [line for line in result.stderr.splitlines()
                if "cannot write metrics file" in line and str(metrics) in line]
    assert len(warnings) == 1, result.stderr
    assert "unsafe" not in result.stderr
    record = show_last(tree)
    assert (record["status"], record["exit_code"]) == ("success", 0)


def test_a_failed_backup_with_a_metrics_file_that_cannot_be_looked_up_keeps_its_own_status(
        tree):
    """No false green, and no 77 in its place: the command's failure is the run's."""
    metrics = unreachable(tree, "directory")
    tree.hook("pre-backup.d/10-x", f"echo ran > {tree.mark('ran')}")
    result = run_hookrun("run", *tree.args("--metrics-file", str(metrics)), "--",
                         "sh", "-c", f"echo done > {tree.mark('backup')}; exit 4")
    assert result.returncode == 4, result.stderr
    assert tree.read("backup") == "done\n"
    record = show_last(tree)
    assert (record["status"], record["exit_code"]) == ("failure", 4)
