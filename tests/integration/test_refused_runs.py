"""A refused run is seen (design.md section 10): a run refused for a reason that refuses every
later run too (73, 77, 78) still sets hookrun_last_refused_timestamp_seconds in the metrics
file and pings URL/fail, where they are known and trusted; its exit status stays its own. A
run refused because the lock is busy (75), and a dry run, send and write nothing."""

import subprocess
import time

import pytest

from tests.conftest import hookrun_cmd, run_hookrun, show_last

parser = pytest.importorskip("prometheus_client.parser")

REFUSED = "hookrun_last_refused_timestamp_seconds"
EXIT_CANT_CREATE = 73
EXIT_LOCKED = 75
EXIT_UNSAFE = 77
EXIT_CONFIG = 78


def samples(path):
    """{(name, frozenset of label pairs): value} of a textfile."""
    found = {}
    for family in parser.text_string_to_metric_families(path.read_text()):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def refusals(path):
    """{(event, reason): timestamp} of the refused series in a textfile."""
    return {(dict(labels)["event"], dict(labels)["reason"]): value
            for (name, labels), value in samples(path).items() if name == REFUSED}


def one(found, name, **labels):
    return found[(name, frozenset(labels.items()))]


def pings(checker):
    return [path for path, _body in checker.requests]


def test_a_hook_writable_by_others_is_refused_and_seen_until_a_later_run(tree, checker):
    metrics = tree.base / "hookrun.prom"
    options = ("--metrics-file", str(metrics), "--notify-url", checker.url)
    hook = tree.hook("pre-backup.d/10-dump", "true")
    tree.hook("pre-prune.d/10-prep", "true")
    assert run_hookrun("run", *tree.args(*options), "--", "true").returncode == 0
    assert run_hookrun("run", *tree.args("-e", "prune", *options), "--", "true").returncode == 0
    before = samples(metrics)
    first_id = show_last(tree)["id"]
    del checker.requests[:]
    hook.chmod(0o777)
    started = time.time()

    result = run_hookrun("run", *tree.args(*options), "--", "true")

    assert result.returncode == EXIT_UNSAFE, result.stderr
    assert "Traceback" not in result.stderr
    after = samples(metrics)
    assert list(refusals(metrics)) == [("backup", "unsafe")]
    refused_at = refusals(metrics)["backup", "unsafe"]
    assert started - 1 <= refused_at <= time.time() + 1
    assert refused_at > one(after, "hookrun_last_run_timestamp_seconds", event="backup")
    # Every series the earlier runs wrote is still there, unchanged: the refused run did not
    # run, so nothing it says about the last run changes.
    assert {key: value for key, value in after.items() if key[0] != REFUSED} == before
    assert show_last(tree)["id"] == first_id
    assert pings(checker) == ["/ping/abc/fail"]
    body = checker.requests[0][1]
    assert "unsafe permissions" in body and str(hook) in body
    assert body.strip() in result.stderr

    hook.chmod(0o755)
    assert run_hookrun("run", *tree.args(*options), "--", "true").returncode == 0
    later = samples(metrics)
    # A later run keeps the time of the refusal and is newer: HookrunRunRefused resolves.
    assert refusals(metrics) == {("backup", "unsafe"): refused_at}
    assert one(later, "hookrun_last_run_timestamp_seconds", event="backup") > refused_at
    assert one(later, "hookrun_last_run_status", event="prune", status="success") == 1


def test_a_bad_header_directive_is_refused_and_seen_through_the_configs_settings(tree,
                                                                                 checker):
    metrics = tree.base / "hookrun.prom"
    tree.config(f"[hookrun]\nmetrics_file = {metrics}\nnotify_url = {checker.url}\n")
    tree.hook("pre-backup.d/10-dump", "true", header="colour=red")

    result = run_hookrun("run", *tree.args(), "--", "true")

    assert result.returncode == EXIT_CONFIG, result.stderr
    assert list(refusals(metrics)) == [("backup", "config")]
    assert pings(checker) == ["/ping/abc/fail"]
    assert "colour" in checker.requests[0][1] and "10-dump" in checker.requests[0][1]
    assert not (tree.state / "history.sqlite3").exists()


def test_an_uncreatable_state_directory_is_refused_and_seen(tree, checker):
    metrics = tree.base / "hookrun.prom"
    blocker = tree.base / "a-file"
    blocker.write_text("not a directory\n")
    tree.hook("pre-backup.d/10-dump", f'touch "{tree.mark("ran")}"')

    result = run_hookrun("run", "-d", str(tree.hooks), "--state-dir", str(blocker / "state"),
                         "-e", "backup", "--metrics-file", str(metrics), "--notify-url",
                         checker.url, "--", "true")

    assert result.returncode == EXIT_CANT_CREATE, result.stderr
    assert tree.read("ran") is None
    assert list(refusals(metrics)) == [("backup", "state")]
    assert pings(checker) == ["/ping/abc/fail"]
    assert "cannot create state directory" in checker.requests[0][1]


def test_a_config_that_cannot_be_read_leaves_only_the_command_line_known(tree, checker):
    metrics = tree.base / "from-command-line.prom"
    unread = tree.base / "from-config.prom"
    tree.config(f"[hookrun]\nmetrics_file = {unread}\nnotify_url = {checker.url}\n"
                "this line is no setting\n")

    result = run_hookrun("run", *tree.args("-e", "prune", "--metrics-file", str(metrics)),
                         "--", "true")

    assert result.returncode == EXIT_CONFIG, result.stderr
    assert list(refusals(metrics)) == [("prune", "config")]
    assert not unread.exists() and checker.requests == []


def test_a_config_writable_by_others_is_not_trusted_to_say_where_to_write(tree, checker):
    metrics = tree.base / "from-command-line.prom"
    planted = tree.base / "from-config.prom"
    config = tree.config(f"[hookrun]\nmetrics_file = {planted}\nnotify_url = {checker.url}\n")
    config.chmod(0o666)

    result = run_hookrun("run", *tree.args(), "--", "true")

    assert result.returncode == EXIT_UNSAFE, result.stderr
    assert not planted.exists() and checker.requests == []
    # What the command line names is its own, and is written.
    result = run_hookrun("run", *tree.args("--metrics-file", str(metrics)), "--", "true")
    assert result.returncode == EXIT_UNSAFE, result.stderr
    assert list(refusals(metrics)) == [("backup", "unsafe")]
    assert not planted.exists() and checker.requests == []


def test_a_later_refusal_of_an_event_replaces_its_reason_and_keeps_other_events(tree):
    metrics = tree.base / "hookrun.prom"
    tree.hook("pre-backup.d/10-dump", "true", header="colour=red")
    tree.hook("pre-prune.d/10-prep", "true", mode=0o777)
    base = ("--metrics-file", str(metrics))
    assert run_hookrun("run", *tree.args(*base), "--", "true").returncode == EXIT_CONFIG
    assert run_hookrun("run", *tree.args("-e", "prune", *base), "--",
                       "true").returncode == EXIT_UNSAFE
    assert set(refusals(metrics)) == {("backup", "config"), ("prune", "unsafe")}
    tree.hook("pre-backup.d/10-dump", "true")
    result = run_hookrun("run", *tree.args("--state-dir", str(metrics / "state"), *base),
                         "--", "true")
    assert result.returncode == EXIT_CANT_CREATE, result.stderr
    assert set(refusals(metrics)) == {("backup", "state"), ("prune", "unsafe")}


def test_a_dry_run_that_is_refused_writes_and_sends_nothing(tree, checker):
    metrics = tree.base / "hookrun.prom"
    tree.hook("pre-backup.d/10-dump", "true", header="colour=red")
    result = run_hookrun("run", *tree.args("--dry-run", "--metrics-file", str(metrics),
                                           "--notify-url", checker.url), "--", "true")
    assert result.returncode == EXIT_CONFIG, result.stderr
    assert not metrics.exists() and checker.requests == []


def test_a_run_refused_because_the_lock_is_busy_writes_and_sends_nothing(tree, checker):
    metrics = tree.base / "hookrun.prom"
    go = tree.mark("go")
    tree.hook("pre-backup.d/10-wait", f"""
        touch "{tree.mark('holding')}"
        while [ ! -e "{go}" ]; do sleep 0.05; done
        """)
    holder = subprocess.Popen(hookrun_cmd() + ["run", *tree.args(), "--", "true"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while tree.read("holding") is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert tree.read("holding") is not None, "the first run never took the lock"
        result = run_hookrun("run", *tree.args("--metrics-file", str(metrics), "--notify-url",
                                               checker.url), "--", "true")
    finally:
        go.touch()
        holder.wait(timeout=60)
    assert result.returncode == EXIT_LOCKED, result.stderr
    assert holder.returncode == 0
    assert not metrics.exists() and checker.requests == []
