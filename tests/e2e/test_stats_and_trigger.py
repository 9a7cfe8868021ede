"""Backup statistics and who started a run (design.md 11), with the real restic and borg:
the snapshot id hookrun keeps is the one the repository lists, the metrics carry the bytes
added, hooks get HOOKRUN_SNAPSHOT_ID, and the history says whether a timer or a person
started the run."""

import json
import os
import shutil
import subprocess

from tests.conftest import marker_hook, require, run_hookrun, show_last
from tests.e2e.test_example_tree import restic, restic_repo  # noqa: F401 - a fixture


def env_config(tree, env):
    tree.config("[env]\n" + "".join(f"{name} = {value}\n" for name, value in env.items()))


def metric(path, name, event="backup"):
    for line in path.read_text().splitlines():
        if line.startswith(f'{name}{{event="{event}"}} '):
            return float(line.split()[-1])
    return None


def post_hook_seeing_stats(tree):
    marker_hook(tree, "post-backup.d/10-verify", extra=f'''
        echo "$HOOKRUN_SNAPSHOT_ID $HOOKRUN_STAT_FILES_NEW $HOOKRUN_STAT_BYTES_ADDED" \\
            > "{tree.marks}/stats"''')


def test_restics_json_summary_is_kept_as_the_runs_stats(tree, tmp_path, restic_repo):  # noqa: F811
    data = tmp_path / "data"
    data.mkdir()
    for n in range(3):
        (data / f"file{n}").write_text(f"content {n}\n" * 100)
    env_config(tree, restic_repo)
    post_hook_seeing_stats(tree)
    metrics = tmp_path / "hookrun.prom"
    result = run_hookrun("run", *tree.args("--metrics-file", str(metrics)), "--",
                         "restic", "backup", "--json", str(data))
    assert result.returncode == 0, result.stderr
    [snapshot] = json.loads(restic(restic_repo, "snapshots", "--json"))
    stats = show_last(tree)["stats"]
    # restic 0.14 (Debian 12) names the snapshot by its short id in the summary; later
    # versions by the full one. Either is the id "restic snapshots" lists.
    assert stats["snapshot_id"] in (snapshot["id"], snapshot["short_id"])
    assert (stats["files_new"], stats["total_files"]) == (3, 3)
    assert stats["bytes_added"] > 0 and stats["bytes_processed"] == 3 * 1000
    assert tree.read("stats").split() == [stats["snapshot_id"], "3", str(stats["bytes_added"])]
    assert metric(metrics, "hookrun_backup_bytes_added") == stats["bytes_added"]
    assert metric(metrics, "hookrun_backup_files_new") == 3
    # Reading the statistics changes nothing of what the command printed.
    summary = [line for line in result.stdout.splitlines() if '"summary"' in line]
    assert len(summary) == 1 and summary[0].startswith("command/restic: {")
    assert json.loads(summary[0].split(": ", 1)[1])["snapshot_id"] == stats["snapshot_id"]
    shown = run_hookrun("show", "last", *tree.args()).stdout
    assert f"snapshot_id={stats['snapshot_id']}" in shown


def test_a_restic_dry_run_names_no_snapshot(tree, tmp_path, restic_repo):  # noqa: F811
    """restic's dry-run summary names a snapshot it did not make: a hook checking
    $HOOKRUN_SNAPSHOT_ID would look for one that is not there."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "file").write_text("content\n")
    env_config(tree, restic_repo)
    post_hook_seeing_stats(tree)
    result = run_hookrun("run", *tree.args(), "--", "restic", "backup", "--json", "--dry-run",
                         str(data))
    assert result.returncode == 0, result.stderr
    assert json.loads(restic(restic_repo, "snapshots", "--json")) in ([], None)
    stats = show_last(tree)["stats"]
    assert "snapshot_id" not in stats and stats["files_new"] == 1
    assert tree.read("stats").split() == ["1", str(stats["bytes_added"])]


def test_borgs_json_document_is_kept_as_the_runs_stats(tree, tmp_path):
    require(shutil.which("borg"), "borg (Debian package borgbackup)")
    data, repo = tmp_path / "data", tmp_path / "repo"
    data.mkdir()
    (data / "a").write_text("borg data\n" * 50)
    env = dict(os.environ, BORG_REPO=str(repo), HOME=str(tmp_path))
    subprocess.run(["borg", "init", "-e", "none"], env=env, check=True, timeout=120,
                   capture_output=True)
    env_config(tree, {"BORG_REPO": str(repo), "HOME": str(tmp_path)})
    post_hook_seeing_stats(tree)
    result = run_hookrun("run", *tree.args(), "--", "borg", "create", "--json", "::night",
                         str(data))
    assert result.returncode == 0, result.stderr
    listed = subprocess.run(["borg", "list", "--json"], env=env, check=True, timeout=120,
                            capture_output=True, text=True)
    [archive] = json.loads(listed.stdout)["archives"]
    stats = show_last(tree)["stats"]
    assert stats["snapshot_id"] == archive["id"]
    assert stats["total_files"] == 1 and stats["bytes_processed"] >= 500
    assert tree.read("stats").split()[0] == archive["id"]


def test_the_command_and_hooks_may_write_stats_to_hookrun_stats(tree):
    tree.hook("post-backup.d/10-count", 'echo files_changed=7 >> "$HOOKRUN_STATS"')
    tree.hook("finally.d/10-see", f'echo "$HOOKRUN_STAT_FILES_CHANGED" > "{tree.marks}/seen"')
    command = ('printf "snapshot_id=abc123\\nbytes_added=42\\nnonsense\\nfiles_new=x\\n" '
               '>> "$HOOKRUN_STATS"')
    result = run_hookrun("run", *tree.args(), "--", "sh", "-c", command)
    assert result.returncode == 0, result.stderr
    assert show_last(tree)["stats"] == {"snapshot_id": "abc123", "bytes_added": 42,
                                        "files_changed": 7}
    assert tree.read("seen").strip() == "7"
    warnings = [line for line in result.stderr.splitlines() if "HOOKRUN_STATS" in line]
    assert len(warnings) == 2 and "line 3" in warnings[0] and "line 4" in warnings[1]
    assert "nonsense" not in result.stderr


def test_a_run_without_statistics_has_none_and_no_backup_metrics(tree, tmp_path):
    metrics = tmp_path / "hookrun.prom"
    assert run_hookrun("run", *tree.args("--metrics-file", str(metrics)), "--",
                       "true").returncode == 0
    assert show_last(tree)["stats"] == {}
    assert "hookrun_backup_" not in metrics.read_text()


def test_the_trigger_is_recorded_and_handed_to_hooks(tree):
    marker_hook(tree, "pre-backup.d/10-who", extra=f'echo "$HOOKRUN_TRIGGER" > "{tree.marks}/who"')
    assert run_hookrun("run", *tree.args("--trigger", "timer"), "--", "true").returncode == 0
    assert show_last(tree)["trigger"] == "timer" and tree.read("who").strip() == "timer"
    # Not a terminal on stdin (cron, a script): scheduled.
    assert run_hookrun("run", *tree.args(), "--", "true", stdin=subprocess.DEVNULL).returncode == 0
    assert show_last(tree)["trigger"] == "scheduled"
    listed = json.loads(run_hookrun("history", "--json", *tree.args()).stdout)
    assert [run["trigger"] for run in listed] == ["scheduled", "timer"]
    bad = run_hookrun("run", *tree.args("--trigger", "Timer!"), "--", "true")
    assert bad.returncode == 2 and len(bad.stderr.splitlines()) == 1


def test_a_person_at_a_terminal_is_a_manual_trigger(tree):
    require(shutil.which("script"), "script (Debian package bsdutils)")
    from tests.conftest import hookrun_cmd

    command = " ".join(hookrun_cmd() + ["run", *tree.args(), "--", "true"])
    result = subprocess.run(["script", "-qec", command, "/dev/null"], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert show_last(tree)["trigger"] == "manual"


def test_a_statistic_too_long_to_be_a_count_is_a_warning_not_a_fault(tree):
    """A number of thousands of digits (Python refuses to read one of over 4,300) written to
    $HOOKRUN_STATS, or in restic's summary line, is a bad line: the run and its wind-down
    go on, and the record keeps the good statistics."""
    huge = "9" * 5000
    tree.hook("post-backup.d/10-huge", f'echo bytes_added={huge} >> "$HOOKRUN_STATS"')
    tree.hook("finally.d/10-last", f'touch "{tree.marks}/finally"')
    summary = ('{"message_type":"summary","files_new":3,"data_added":"' + huge + '",'
               '"snapshot_id":"abc123"}')
    result = run_hookrun("run", *tree.args(), "--", "sh", "-c", f"echo '{summary}'")
    assert result.returncode == 0, result.stderr
    assert "internal" not in result.stderr and "Traceback" not in result.stderr
    assert (tree.marks / "finally").exists()
    record = show_last(tree)
    assert record["status"] == "success"
    assert record["stats"] == {"files_new": 3, "snapshot_id": "abc123"}
    assert any("HOOKRUN_STATS" in line for line in result.stderr.splitlines())
