"""metrics_push_url / --metrics-push-url against a real Pushgateway (and a real Prometheus
scraping it): one group per host and event, the same series as the metrics file, and a
failed push is only a warning."""

import socket
import time
import urllib.request

import pytest

from orchestrator.outcome import TaskRecord, TaskStatus
from orchestrator.report import pushgateway
from tests.conftest import run_hookrun
from tests.e2e.conftest import poll, query, scrape_config
from tests.e2e.test_example_tree import free_port

parser = pytest.importorskip("prometheus_client.parser")

EXIT_UNSAFE = 77
EXIT_CONFIG = 78
REFUSED = "hookrun_last_refused_timestamp_seconds"
GROUPING = ("job", "instance")
# Series the Pushgateway adds to each group itself.
GATEWAY_SERIES = ("push_time_seconds", "push_failure_time_seconds")


def samples(text, **wanted):
    """{(name, labels without job and instance): value} of the samples of ``text`` (the
    exposition format) whose labels include ``wanted``."""
    found = {}
    for family in parser.text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.startswith("hookrun_") and \
                    wanted.items() <= sample.labels.items():
                labels = {k: v for k, v in sample.labels.items() if k not in GROUPING}
                found[(sample.name, tuple(sorted(labels.items())))] = sample.value
    return found


def groups(gateway):
    """The grouping keys ({label: value}) the Pushgateway holds."""
    return [group["labels"] for group in gateway.get_json("/api/v1/metrics")["data"]]


def gateway_text(gateway):
    with urllib.request.urlopen(gateway.url + "/metrics", timeout=10) as response:
        return response.read().decode()


@pytest.mark.slow
def test_two_events_land_in_their_own_groups_and_prometheus_reads_both(tree, servers):
    tree.events("prune")
    gateway = servers.pushgateway()
    tree.hook("pre-backup.d/10-dump", "true")
    # The event "prune" takes the URL from the config, "backup" from the command line.
    tree.config(f"[hookrun]\nmetrics_push_url = {gateway.url}\n")
    metrics = tree.base / "hookrun.prom"
    assert run_hookrun("run", *tree.args("--metrics-push-url", gateway.url, "--metrics-file",
                                         str(metrics)), "--", "true").returncode == 0
    assert run_hookrun("run", *tree.args("-e", "prune", "--metrics-file", str(metrics)), "--",
                       "sh", "-c", "exit 3").returncode == 3

    host = socket.gethostname()
    assert sorted(g["event"] for g in groups(gateway)) == ["backup", "prune"]
    assert all(g["job"] == "hookrun" and g["instance"] == host for g in groups(gateway))
    # The pushed series are those of the metrics file, event by event.
    pushed, written = gateway_text(gateway), metrics.read_text()
    for event in ("backup", "prune"):
        assert samples(pushed, event=event) == samples(written, event=event)

    prometheus = servers.prometheus([scrape_config("pushgateway", gateway, honor_labels=True)])
    promql = 'hookrun_last_run_status{job="hookrun"} == 1'

    def both_events():
        found = query(prometheus, promql)
        return found if len(found) == 2 else None

    found = poll(f"{promql}: two series", both_events)
    assert sorted((labels["event"], labels["status"], labels["instance"])
                  for labels, _value in found) == [("backup", "success", host),
                                                   ("prune", "failure", host)]


def test_a_second_push_of_an_event_replaces_its_group(tree, servers):
    gateway = servers.pushgateway()
    first = tree.hook("pre-backup.d/10-first", "true")
    assert run_hookrun("run", *tree.args("--metrics-push-url", gateway.url), "--",
                       "true").returncode == 0
    first.unlink()
    tree.hook("pre-backup.d/20-second", "true")
    assert run_hookrun("run", *tree.args("--metrics-push-url", gateway.url), "--",
                       "true").returncode == 0
    hooks = {dict(labels).get("hook") for _name, labels in samples(gateway_text(gateway))}
    # The command's series ("true") is pushed with the hooks'; the first hook's is gone.
    assert hooks == {None, "20-second", "true"}


def test_dry_runs_push_nothing_also_when_refused(tree, servers):
    gateway = servers.pushgateway()
    tree.hook("pre-backup.d/10-dump", "true")
    assert run_hookrun("run", *tree.args("--metrics-push-url", gateway.url, "--dry-run"),
                       "--", "true").returncode == 0
    tree.hook("pre-backup.d/20-bad", "true", header="timeout=soon")
    assert run_hookrun("run", *tree.args("--metrics-push-url", gateway.url, "--dry-run"),
                       "--", "true").returncode == EXIT_CONFIG
    assert groups(gateway) == []


def refusals(text):
    """{(event, reason): timestamp} of the refused series in exposition ``text``."""
    return {(dict(labels)["event"], dict(labels)["reason"]): value
            for (name, labels), value in samples(text).items() if name == REFUSED}


def test_a_refused_run_pushes_its_refusal_and_keeps_the_groups_other_series(tree, servers):
    gateway = servers.pushgateway()
    metrics = tree.base / "hookrun.prom"
    options = ("--metrics-push-url", gateway.url, "--metrics-file", str(metrics))
    hook = tree.hook("pre-backup.d/10-dump", "true")
    assert run_hookrun("run", *tree.args(*options), "--", "true").returncode == 0
    ran = samples(gateway_text(gateway), event="backup")
    started = time.time()

    tree.hook("pre-backup.d/20-bad", "true", header="timeout=soon")
    result = run_hookrun("run", *tree.args(*options), "--", "true")

    assert result.returncode == EXIT_CONFIG, result.stderr
    assert "metrics push" not in result.stderr
    pushed = gateway_text(gateway)
    assert list(refusals(pushed)) == [("backup", "config")]
    assert started - 1 <= refusals(pushed)["backup", "config"] <= time.time() + 1
    # The last run's series are all still there (a POST replaces only the refused series),
    # and the group holds what the metrics file holds for the event.
    assert {key: value for key, value in samples(pushed, event="backup").items()
            if key[0] != REFUSED} == ran
    assert ran[("hookrun_last_success_timestamp_seconds", (("event", "backup"),))] > 0
    assert samples(pushed, event="backup") == samples(metrics.read_text(), event="backup")
    assert [g["event"] for g in groups(gateway)] == ["backup"]

    # A later refusal of the event replaces its reason, as in the metrics file.
    (tree.hooks / "pre-backup.d" / "20-bad").unlink()
    hook.chmod(0o777)
    assert run_hookrun("run", *tree.args(*options), "--", "true").returncode == EXIT_UNSAFE
    assert list(refusals(gateway_text(gateway))) == [("backup", "unsafe")]


def test_a_refused_run_pushes_where_a_safe_config_says_and_never_where_an_unsafe_one_does(
        tree, servers):
    gateway = servers.pushgateway()
    config = tree.config(f"[hookrun]\nmetrics_push_url = {gateway.url}\n")
    tree.hook("pre-prune.d/10-bad", "true", header="timeout=soon")
    tree.events("prune")
    assert run_hookrun("run", *tree.args("-e", "prune"), "--", "true").returncode == EXIT_CONFIG
    assert list(refusals(gateway_text(gateway))) == [("prune", "config")]

    config.chmod(0o666)  # another user could have written the URL
    tree.hook("pre-backup.d/10-dump", "true")
    result = run_hookrun("run", *tree.args(), "--", "true")
    assert result.returncode == EXIT_UNSAFE, result.stderr
    assert [g["event"] for g in groups(gateway)] == ["prune"]


def test_a_refused_runs_push_that_fails_is_a_warning_and_the_exit_status_stays(tree):
    url = f"http://127.0.0.1:{free_port()}"
    tree.hook("pre-backup.d/10-bad", "true", header="timeout=soon")
    result = run_hookrun("run", *tree.args("--metrics-push-url", url), "--", "true")
    assert result.returncode == EXIT_CONFIG
    assert f"metrics push to {url}/metrics/job/hookrun/" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_prometheus_fires_hookrun_run_refused_from_the_pushgateways_series(tree, servers):
    from tests.e2e.test_prometheus import firing, quick_rules

    gateway = servers.pushgateway()
    prometheus = servers.prometheus([scrape_config("pushgateway", gateway, honor_labels=True)],
                                    quick_rules(tree.base / "rules.yml", 3600))
    tree.events("prune")
    options = ("--metrics-push-url", gateway.url)
    assert run_hookrun("run", *tree.args(*options), "--", "true").returncode == 0
    assert run_hookrun("run", *tree.args("-e", "prune", *options), "--",
                       "true").returncode == 0
    tree.hook("pre-backup.d/10-bad", "true", header="timeout=soon")
    assert run_hookrun("run", *tree.args(*options), "--", "true").returncode == EXIT_CONFIG

    def refused():
        return firing(prometheus).get(("HookrunRunRefused", "backup"))

    alert = poll("HookrunRunRefused for backup", refused)
    assert alert["labels"]["reason"] == "config"
    assert alert["labels"]["job"] == "hookrun"
    assert alert["labels"]["instance"] == socket.gethostname()
    assert ("HookrunRunRefused", "prune") not in firing(prometheus)

    # Fixed, the event runs: its push replaces the group, and the alert resolves.
    tree.hook("pre-backup.d/10-bad", "true")
    assert run_hookrun("run", *tree.args(*options), "--", "true").returncode == 0
    poll("HookrunRunRefused resolved",
         lambda: ("HookrunRunRefused", "backup") not in firing(prometheus) or None)


def test_a_push_to_nothing_listening_is_a_warning_and_the_run_still_succeeds(tree):
    url = f"http://127.0.0.1:{free_port()}"
    metrics = tree.base / "hookrun.prom"
    started = time.monotonic()
    result = run_hookrun("run", *tree.args("--metrics-push-url", url, "--metrics-file",
                                           str(metrics)), "--", "true")
    assert result.returncode == 0, result.stderr
    assert f"metrics push to {url}/metrics/job/hookrun/" in result.stderr
    assert metrics.exists()
    assert time.monotonic() - started < 60


def test_a_push_the_pushgateway_refuses_is_a_warning_naming_its_reason(tree, servers):
    gateway = servers.pushgateway()
    # Another job pushed a series of the same name as a counter: the Pushgateway refuses
    # hookrun's gauge as inconsistent (HTTP 400). (Pushgateway 1.5 accepts differing help
    # texts, logging a complaint, and silently gives a series the grouping key's label value.)
    other = urllib.request.Request(
        gateway.url + "/metrics/job/other",
        data=b"# TYPE hookrun_last_run_exit_code counter\nhookrun_last_run_exit_code 5\n",
        method="PUT")
    urllib.request.urlopen(other, timeout=10).close()
    result = run_hookrun("run", *tree.args("--metrics-push-url", gateway.url), "--", "true")
    assert result.returncode == 0
    assert "metrics push to" in result.stderr and "HTTP 400" in result.stderr
    [mine] = [group for group in gateway.get_json("/api/v1/metrics")["data"]
              if group["labels"]["job"] == "hookrun"]
    assert mine["last_push_successful"] is False


def test_a_host_name_with_a_slash_reaches_the_pushgateway_intact(servers):
    gateway = servers.pushgateway()
    run = {"status": "success", "exit_code": 0, "finished": 1.0, "duration": 0.5,
           "last_success": 1.0, "tasks": [TaskRecord("pre", "10-dump", TaskStatus.OK)]}
    assert pushgateway.push(gateway.url, "backup", run, host="rack1/db") is None
    assert groups(gateway) == [{"job": "hookrun", "instance": "rack1/db", "event": "backup"}]
