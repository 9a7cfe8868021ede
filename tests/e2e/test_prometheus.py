"""The alert rules shipped in orchestrator/contrib/prometheus/, checked by promtool and their
unit tests, and run end to end: hookrun writes its textfile, the real node_exporter exposes it,
the real Prometheus scrapes it and evaluates the rules, and its HTTP API shows the series and
alerts."""

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import run_hookrun
from tests.e2e.conftest import poll, query, scrape_config
from tests.e2e.test_example_tree import require

yaml = pytest.importorskip("yaml")

RULES_DIR = Path(__file__).resolve().parents[2] / "orchestrator" / "contrib" / "prometheus"
RULES = RULES_DIR / "hookrun-rules.yml"
RULES_TESTS = RULES_DIR / "hookrun-rules.test.yml"
THRESHOLD = "26 * 3600"
EXIT_HOOK_STOPPED = 69
EXIT_CONFIG = 78


def promtool(*args):
    command = require(shutil.which("promtool"), "promtool (Debian package prometheus)")
    return subprocess.run([command, *args], cwd=RULES_DIR, capture_output=True, text=True,
                          timeout=120)


def shipped_alerts():
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"]
            for rule in group["rules"] if "alert" in rule]


def test_shipped_rules_pass_promtool_check_rules():
    result = promtool("check", "rules", RULES.name)
    assert result.returncode == 0, result.stdout + result.stderr


def test_shipped_rules_pass_their_promtool_unit_tests():
    result = promtool("test", "rules", RULES_TESTS.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_a_for_clause_a_severity_and_text_naming_host_and_event():
    for rule in shipped_alerts():
        assert rule.get("for"), rule["alert"]
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        text = rule["annotations"]["summary"] + rule["annotations"]["description"]
        assert "$labels.instance" in text, rule["alert"]
        if "node_textfile" not in rule["expr"]:
            assert "$labels.event" in text, rule["alert"]


def test_every_alert_is_unit_tested_both_firing_and_silent():
    checks = [check for test in yaml.safe_load(RULES_TESTS.read_text())["tests"]
              for check in test["alert_rule_test"]]
    for rule in shipped_alerts():
        mine = [check for check in checks if check["alertname"] == rule["alert"]]
        assert any(check["exp_alerts"] for check in mine), f"{rule['alert']} never fires"
        assert any(not check["exp_alerts"] for check in mine), f"{rule['alert']} always fires"


def quick_rules(path, threshold_seconds):
    """A copy of the shipped rules for a test that cannot wait hours: every threshold of
    THRESHOLD written as ``threshold_seconds``, and no ``for:`` delay."""
    document = yaml.safe_load(RULES.read_text())
    replaced = 0
    for group in document["groups"]:
        for rule in group["rules"]:
            replaced += rule["expr"].count(THRESHOLD)
            rule["expr"] = rule["expr"].replace(THRESHOLD, str(threshold_seconds))
            rule["for"] = "0s"
    assert replaced >= 2, f"{RULES} no longer writes its thresholds as {THRESHOLD}"
    path.write_text(yaml.safe_dump(document))
    return path


def firing(prometheus):
    """{(alertname, event): alert} of the firing alerts."""
    alerts = prometheus.get_json("/api/v1/alerts")["data"]["alerts"]
    return {(a["labels"]["alertname"], a["labels"].get("event")): a
            for a in alerts if a["state"] == "firing"}


@pytest.mark.slow
def test_prometheus_scrapes_hookruns_textfile_through_node_exporter_and_fires_the_alerts(
        tree, servers):
    textfile_dir = tree.base / "textfile"
    textfile_dir.mkdir()
    metrics = textfile_dir / "hookrun.prom"
    switch = tree.mark("fail")
    tree.hook("pre-backup.d/10-check", f'test ! -e "{switch}"')
    tree.hook("pre-refused.d/10-bad", "true", header="colour=red")
    node = servers.node_exporter(textfile_dir)
    prometheus = servers.prometheus([scrape_config("node", node)],
                                    quick_rules(tree.base / "rules.yml", 3600))

    def run(*args):
        return run_hookrun("run", *tree.args("--metrics-file", str(metrics), *args), "--",
                           "true").returncode

    tree.events("prune", "verify")
    assert run() == 0
    success = 'hookrun_last_run_status{job="node",event="backup",status="success"} == 1'
    [(labels, _value)] = poll(success, lambda: query(prometheus, success))
    assert labels["instance"] == f"127.0.0.1:{node.port}"

    switch.touch()
    assert run() == EXIT_HOOK_STOPPED
    assert run("-e", "prune") == 0
    # An event that never succeeded: its last-success timestamp is 0.
    assert run_hookrun("run", *tree.args("--metrics-file", str(metrics), "-e", "verify"),
                       "--", "false").returncode == 1
    # A run refused by a bad header directive: seen at once, not after 26 hours.
    assert run("-e", "refused") == EXIT_CONFIG
    wanted = {("HookrunRunFailed", "backup"), ("HookrunRunFailed", "verify"),
              ("HookrunBackupTooOld", "verify"), ("HookrunRunRefused", "refused")}

    def all_wanted_firing():
        found = firing(prometheus)
        return found if wanted <= set(found) else None

    alerts = poll(f"the firing alerts {sorted(wanted)}", all_wanted_firing)
    failed = alerts[("HookrunRunFailed", "backup")]
    assert failed["labels"]["status"] == "failure"
    assert failed["labels"]["instance"] == f"127.0.0.1:{node.port}"
    assert float(failed["value"]) == EXIT_HOOK_STOPPED
    assert "Failed tasks: pre/10-check (failed)." in failed["annotations"]["description"]
    assert "never happened" in alerts[("HookrunBackupTooOld", "verify")]["annotations"][
        "description"]
    refused = alerts[("HookrunRunRefused", "refused")]
    assert refused["labels"]["reason"] == "config"
    assert "a configuration error (exit 78)" in refused["annotations"]["description"]
    # backup and prune succeeded within the hour, and the textfile is fresh.
    assert set(alerts) == wanted, sorted(alerts)
    print(f"query: {success}\nfiring: {sorted(alerts)}\nHookrunRunFailed{{event=backup}}: "
          f"{failed['labels']} value {failed['value']}\n  {failed['annotations']}")

    # Fixed, the event runs: its run is newer than the refusal, and the alert resolves.
    tree.hook("pre-refused.d/10-bad", "true")
    assert run("-e", "refused") == 0
    poll("HookrunRunRefused resolved",
         lambda: ("HookrunRunRefused", "refused") not in firing(prometheus) or None)
