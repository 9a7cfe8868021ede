"""The Pushgateway's URL: grouping key, encoding, and where metrics_push_url comes from."""

import pytest

from orchestrator.errors import ConfigError
from orchestrator.plan.settings import parse_config
from orchestrator.report import pushgateway


def test_the_grouping_key_is_job_hookrun_the_host_and_the_event():
    assert pushgateway.push_url("http://pg:9091/", "backup", "db1.example.org") \
        == "http://pg:9091/metrics/job/hookrun/instance/db1.example.org/event/backup"


def test_a_path_prefix_of_the_url_is_kept():
    assert pushgateway.push_url("https://mon.example.org/pushgateway", "prune", "db1") \
        == "https://mon.example.org/pushgateway/metrics/job/hookrun/instance/db1/event/prune"


def test_values_with_a_slash_or_empty_are_base64url_and_others_percent_encoded():
    assert pushgateway.grouping_path([("instance", "rack1/db")]) == "/instance@base64/cmFjazEvZGI="
    assert pushgateway.grouping_path([("instance", "")]) == "/instance@base64/="
    assert pushgateway.grouping_path([("instance", "a b")]) == "/instance/a%20b"


def test_metrics_push_url_in_the_config_must_be_an_http_url():
    config = parse_config("[hookrun]\nmetrics_push_url = http://pg:9091\n", "hookrun.conf")
    assert config.get("metrics_push_url") == "http://pg:9091"
    with pytest.raises(ConfigError, match="hookrun.conf:2: metrics_push_url"):
        parse_config("[hookrun]\nmetrics_push_url = pg:9091\n", "hookrun.conf")


def test_a_bad_metrics_push_url_on_the_command_line_is_a_usage_error(tmp_path, hookrun_main):
    status, _out, err = hookrun_main("run", "-d", str(tmp_path), "--state-dir",
                                     str(tmp_path / "state"), "--metrics-push-url", "pg:9091",
                                     "--", "true")
    assert status == 2 and "--metrics-push-url" in err
