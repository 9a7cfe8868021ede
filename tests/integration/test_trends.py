"""Trends (design.md section 11): ``history`` with its start time, ``--status`` and
``--since``; ``hookrun stats`` per event and per hook from a history of known rows;
``show last~N``."""

import json
import sqlite3
import time

import pytest

from tests.conftest import run_hookrun, show_last

DAY = 86400


def iso_ago(seconds, offset_hours=0):
    """The time ``seconds`` ago as hookrun writes it, under the UTC offset given."""
    moment = time.time() - seconds
    shifted = time.gmtime(moment + offset_hours * 3600)
    sign = "-" if offset_hours < 0 else "+"
    return (time.strftime("%Y-%m-%dT%H:%M:%S", shifted)
            + f".000{sign}{abs(offset_hours):02d}:00")


@pytest.fixture
def recorded(tree):
    """A history made by a real run (its schema), with rows of known durations added:
    backup runs of 1, 2, 3, 4 and 10 s, 10, 5, 2, 1 days and 1 hour ago (the third a
    failure, written under a +05:00 offset, the last a warning); their pre/10-dump tasks of
    0.5, 1.5, 2.5 and 3.5 s (the second failed, the fourth timed out, the fifth skipped);
    25 check runs of 1..25 s an hour ago."""
    assert run_hookrun("run", *tree.args("-e", "setup", "--no-hooks"), "--",
                       "true").returncode == 0
    db = sqlite3.connect(tree.state / "history.sqlite3")
    with db:
        db.execute("DELETE FROM tasks")
        db.execute("DELETE FROM runs")
        backups = [(1, "success", 10 * DAY, 0), (2, "success", 5 * DAY, 0),
                   (3, "failure", 2 * DAY, 5), (4, "success", DAY, 0),
                   (10, "warning", 3600, 0)]
        tasks = [(0.5, "ok"), (1.5, "failed"), (2.5, "ok"), (3.5, "timeout"), (None, "skipped")]
        for n, ((duration, status, ago, offset), (task_duration, task_status)) in enumerate(
                zip(backups, tasks)):
            run_id = f"b{n}"
            started = iso_ago(ago, offset)
            db.execute("INSERT INTO runs (id, event, status, exit_code, command, started, "
                       "finished, duration) VALUES (?, 'backup', ?, ?, 'restic', ?, ?, ?)",
                       (run_id, status, 1 if status == "failure" else 0, started, started,
                        duration))
            db.execute("INSERT INTO tasks (run_id, seq, phase, name, status, started, "
                       "duration) VALUES (?, 1, 'pre', '10-dump', ?, ?, ?)",
                       (run_id, task_status, started, task_duration))
        for n in range(1, 26):
            started = iso_ago(3600 - n)
            db.execute("INSERT INTO runs (id, event, status, exit_code, command, started, "
                       "finished, duration) VALUES (?, 'check', 'success', 0, 'x', ?, ?, ?)",
                       (f"c{n}", started, started, float(n)))
    db.close()
    return tree


def stats_json(tree, *extra):
    result = run_hookrun("stats", "--json", *tree.args(*extra))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_stats_gives_exact_runs_failures_rates_medians_and_p95(recorded):
    found = stats_json(recorded)
    backup, check = found["events"]
    assert backup == {"event": "backup", "runs": 5, "failures": 1, "success_rate": 0.8,
                      "median_duration": 3.0, "p95_duration": 10.0,
                      "last_failure": backup["last_failure"],
                      "durations": [1.0, 2.0, 3.0, 4.0, 10.0]}
    assert backup["last_failure"].endswith("+05:00")
    # 25 runs: the last 20 durations; median of 1..25 is 13, nearest-rank p95 is 24.
    assert check["event"] == "check" and check["runs"] == 25 and check["failures"] == 0
    assert (check["median_duration"], check["p95_duration"]) == (13.0, 24.0)
    assert check["success_rate"] == 1.0
    assert check["durations"] == [float(n) for n in range(6, 26)]
    [hook] = found["hooks"]
    assert hook == {"event": "backup", "phase": "pre", "name": "10-dump", "runs": 4,
                    "failures": 2, "success_rate": 0.5, "median_duration": 2.0,
                    "p95_duration": 3.5, "last_failure": hook["last_failure"],
                    "durations": [0.5, 1.5, 2.5, 3.5]}
    assert hook["last_failure"] is not None


def test_stats_since_and_event_choose_the_runs(recorded):
    """--since 3d keeps the runs of 2 days (under +05:00), 1 day and 1 hour ago."""
    [backup] = stats_json(recorded, "-e", "backup", "--since", "3d")["events"]
    assert (backup["runs"], backup["failures"]) == (3, 1)
    assert backup["success_rate"] == pytest.approx(2 / 3, abs=1e-4)
    assert (backup["median_duration"], backup["p95_duration"]) == (4.0, 10.0)
    assert stats_json(recorded, "-e", "backup", "--since", "36h")["events"][0]["runs"] == 2
    assert stats_json(recorded, "-e", "nothing")["events"] == []


def test_stats_text_has_a_sparkline_of_blocks_or_ascii_by_locale(recorded):
    for env, spark in (({"LANG": "C.UTF-8", "LC_ALL": ""}, "▁▂▃▃█"),
                       ({"LC_ALL": "C"}, "__..#")):
        result = run_hookrun("stats", "-e", "backup", *recorded.args(), env=env)
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        assert lines[0].split()[:3] == ["EVENT", "RUNS", "FAILURES"]
        row = next(line for line in lines if line.startswith("backup "))
        assert row.split()[1:5] == ["5", "1", "80%", "3.00s"] and row.endswith(spark)
        assert any("pre/10-dump" in line for line in lines)


def test_history_shows_the_start_and_filters_by_status_and_since(recorded):
    result = run_hookrun("history", "-e", "backup", *recorded.args())
    lines = result.stdout.splitlines()
    assert lines[0].split()[:4] == ["ID", "EVENT", "STARTED", "STATUS"]
    assert lines[1].split()[0] == "b4" and lines[1].split()[2][:2] == "20"
    failed = run_hookrun("history", "--json", "--status", "failure", *recorded.args())
    assert [run["id"] for run in json.loads(failed.stdout)] == ["b2"]
    recent = run_hookrun("history", "--json", "-e", "backup", "--since", "3d",
                         *recorded.args())
    assert [run["id"] for run in json.loads(recent.stdout)] == ["b4", "b3", "b2"]
    both = run_hookrun("history", "--json", "--status", "success", "--since", "7d",
                       "-e", "backup", *recorded.args())
    assert [run["id"] for run in json.loads(both.stdout)] == ["b3", "b1"]


@pytest.mark.parametrize("since", ["3x", "d", "-1d", "²d", "1.d"])
def test_a_bad_since_is_a_usage_error(recorded, since):
    for command in ("history", "stats"):
        result = run_hookrun(command, *recorded.args(f"--since={since}"))
        assert result.returncode == 2, (command, since, result.stderr)
        assert "Traceback" not in result.stderr


def test_a_bad_status_is_a_usage_error(recorded):
    result = run_hookrun("history", *recorded.args("--status", "green"))
    assert result.returncode == 2 and "Traceback" not in result.stderr


def test_show_last_tilde_n_is_the_run_before_the_last(tree):
    tree.events("prune")
    for event, command in (("backup", "true"), ("prune", "true"), ("backup", "false")):
        run_hookrun("run", *tree.args("-e", event), "--", command)
    runs = json.loads(run_hookrun("history", "--json", *tree.args()).stdout)
    assert show_last(tree)["id"] == runs[0]["id"]
    one = run_hookrun("show", "last~1", "--json", *tree.args())
    assert json.loads(one.stdout)["id"] == runs[1]["id"]
    two = run_hookrun("show", "last~2", "--json", *tree.args())
    assert json.loads(two.stdout)["id"] == runs[2]["id"]
    backup = run_hookrun("show", "last~1", "--json", *tree.args("-e", "backup"))
    assert json.loads(backup.stdout)["id"] == runs[2]["id"]
    beyond = run_hookrun("show", "last~3", *tree.args())
    assert beyond.returncode == 1 and "fewer than 4 runs" in beyond.stderr


def test_stats_counts_real_runs(tree):
    flag = tree.mark("fail")
    tree.hook("pre-backup.d/10-x", f'test -e "{flag}" && exit 1; exit 0', header="critical=no")
    for fail in (False, True, False):
        if fail:
            flag.touch()
        elif flag.exists():
            flag.unlink()
        assert run_hookrun("run", *tree.args(), "--", "true").returncode == 0
    found = stats_json(tree)
    [backup] = found["events"]
    assert (backup["runs"], backup["failures"], backup["success_rate"]) == (3, 0, 1.0)
    hooks = {f"{h['phase']}/{h['name']}": h for h in found["hooks"]}
    assert (hooks["pre/10-x"]["runs"], hooks["pre/10-x"]["failures"]) == (3, 1)
    assert hooks["command/true"]["runs"] == 3
