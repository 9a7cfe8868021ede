"""Pure parts of the notification channels and the trends: templates, URLs, percentiles,
sparklines."""

import json

import pytest

from orchestrator.plan import channel_config
from orchestrator.report import channels, trends


def test_a_template_replaces_variables_json_escaped_and_keeps_dollars():
    values = {"status": "failure", "error": 'said "x"\n\\', "stats_bytes_added": "12"}
    assert channels.render('{"s": "$status", "e": "${error}", "b": $stats_bytes_added, '
                           '"c": "$$1", "u": "$stats_nope"}', values, True) == (
        '{"s": "failure", "e": "said \\"x\\"\\n\\\\", "b": 12, "c": "$1", "u": ""}')
    assert channels.render("$status: $error", values, False) == 'failure: said "x"\n\\'


@pytest.mark.parametrize("template", ["$nope", "cost $", "${status", "$ status", "${}"])
def test_a_template_with_an_unknown_or_dangling_variable_is_refused(template):
    with pytest.raises(ValueError):
        channel_config.parse_template(template)


def test_query_parameters_replace_those_of_the_url_and_paths_keep_the_query():
    url = channels.with_query("https://k.example/api/push/T?status=up&msg=OK&ping=&x=1",
                              status="down", msg="a b&c", ping="")
    assert url == "https://k.example/api/push/T?x=1&status=down&msg=a%20b%26c&ping="
    assert channels.with_path("https://h/ping/u?a=1", "/start") == "https://h/ping/u/start?a=1"


def test_the_rid_is_a_uuid_the_same_for_one_run_and_different_for_another():
    assert channels.rid("20261207T010203-abcdef") == channels.rid("20261207T010203-abcdef")
    assert channels.rid("20261207T010203-abcdef") != channels.rid("20261207T010203-abcde0")
    assert len(channels.rid("x").split("-")) == 5


@pytest.mark.parametrize("status, code, suffix", [
    ("start", None, "/start"), ("success", 0, ""), ("warning", 0, ""), ("skipped", 0, "/log"),
    ("failure", 69, "/69"), ("interrupted", 143, "/143"), ("failure", None, "/fail")])
def test_healthchecks_paths(status, code, suffix):
    assert channels.healthchecks_suffix(status, code) == suffix


def test_median_and_nearest_rank_percentile():
    assert trends.median([3, 1, 2]) == 2 and trends.median([4, 1, 3, 2]) == 2.5
    assert trends.percentile(list(range(1, 21)), 95) == 19
    assert trends.percentile(list(range(1, 101)), 95) == 95
    assert trends.percentile([7], 95) == 7 and trends.percentile([], 95) is None


def test_sparkline_from_lowest_to_highest_block_and_in_ascii():
    assert trends.sparkline([1, 8, 4.5]) == "▁█▅"
    assert trends.sparkline([1, 8, 4.5], unicode=False) == "_#-"
    assert trends.sparkline([2, 2]) == "▁▁" and trends.sparkline([]) == ""


@pytest.mark.parametrize("url, host, port", [
    ("http://[::1]/ping", "::1", 80),
    ("https://[2001:db8::1]/ping", "2001:db8::1", 443),
    ("http://[::1%25lo]/ping", "::1%lo", 80),
    ("http://[::1]:8080/ping", "::1", 8080),
    ("http://127.0.0.1/ping", "127.0.0.1", 80),
])
def test_a_request_goes_to_the_urls_host_and_port_also_for_an_ipv6_address(monkeypatch, url,
                                                                             host, port):
    """Without a port in the URL, http.client read an IPv6 address's last group as the port
    (http://[::1]/ went to host ':' port 1) or raised (a zone id: an internal error)."""
    from orchestrator.report import web

    asked = []

    def refuse(*args):
        asked.append(args[:2])
        raise ConnectionRefusedError(111, "Connection refused")

    monkeypatch.setattr(web, "open_socket", refuse)
    with pytest.raises(OSError):
        web.send("POST", url, b"", timeout=1)
    assert asked == [(host, port)]


def channel(kind, body=None):
    return channels.Channel(name="x", type=kind, url="http://127.0.0.1:9/t", token="tk",
                            on=("failure",), triggers=None, send_output=True, method="POST",
                            headers=[], body=body)


def long_message(text):
    """A failure whose summary and output are ``text``."""
    record = {"id": "r1", "event": "backup", "status": "failure", "exit_code": 69,
              "duration": 1.0, "error": "pre hook 10-dump failed (exit 3)", "stats": None,
              "tasks": [{"phase": "pre", "name": f"{i}-dump", "status": "failed",
                         "exit_code": 3, "output": text[:4096]} for i in range(40)]}
    return channels.Message(status="failure", run_id="r1", event="backup", host="h",
                            record=record, error=record["error"], error_private=None,
                            output=text.encode(), summary=text, summary_private=text)


# Each offset puts the cut at another byte of a 3-byte character.
SPLITTABLE = [pad + "€" * 60_000 for pad in ("", "x", "xx")]


@pytest.mark.parametrize("text", SPLITTABLE)
def test_an_ntfy_message_is_below_ntfys_4096_bytes_and_valid_utf8(text):
    """ntfy takes a body of 4096 bytes or more, or not UTF-8, as a file (HTTP 400 where
    attachments are off)."""
    body = channels.request(channel("ntfy"), long_message(text)).body
    assert len(body) < 4096 and len(body) > 4090
    assert body.decode("utf-8").endswith("€...")


@pytest.mark.parametrize("text", SPLITTABLE)
def test_a_healthchecks_body_is_cut_where_a_character_begins(text):
    body = channels.request(channel("healthchecks"), long_message(text)).body
    assert 0 < len(body) <= channels.c.NOTIFY_MAX_BODY
    assert body.decode("utf-8").endswith("€")


@pytest.mark.parametrize("text", SPLITTABLE)
@pytest.mark.parametrize("template", ['{"out": "$output", "sum": "$summary", "s": "$status"}',
                                      "$status\n$output\n$summary\nend"])
def test_a_long_webhook_body_is_shortened_by_its_values_and_stays_json_and_utf8(text,
                                                                                template):
    body = channels.request(channel("webhook", template), long_message(text + '"\\')).body
    assert len(body) <= channels.c.NOTIFY_MAX_BODY
    decoded = body.decode("utf-8")
    if template.startswith("{"):
        sent = json.loads(decoded)
        assert sent["s"] == "failure" and sent["sum"].endswith("€...")
    else:
        assert decoded.startswith("failure\n" + text[:3]) and decoded.endswith("€...\nend")


def test_a_webhook_record_with_a_long_command_line_is_shortened_too():
    """Only the tasks' output was cut: a command of many arguments sent a body of any size."""
    message = long_message("short")
    message.record["command"] = " ".join(["x" * 1000] * 300)
    message.record["error"] = "e" * 200_000
    body = channels.request(channel("webhook"), message).body
    assert len(body) <= channels.c.NOTIFY_MAX_BODY
    sent = json.loads(body.decode("utf-8"))
    assert sent["command"].startswith("xxx") and sent["command"].endswith("...")
    assert sent["error"].endswith("...") and sent["status"] == "failure"


@pytest.mark.parametrize("text", SPLITTABLE)
def test_a_long_webhook_record_is_shortened_by_its_tasks_output_and_stays_json(text):
    body = channels.request(channel("webhook"), long_message(text)).body
    assert len(body) <= channels.c.NOTIFY_MAX_BODY
    sent = json.loads(body.decode("utf-8"))
    assert sent["status"] == "failure" and len(sent["tasks"]) == 40
    assert all(task["output"].startswith(("€", "x")) for task in sent["tasks"])


@pytest.mark.parametrize("text", SPLITTABLE)
def test_the_end_pings_summary_and_a_refusals_message_are_cut_where_a_character_begins(text):
    from orchestrator.errors import ConfigError
    from orchestrator.report import notify, refusal

    record = long_message(text).record
    summary = notify.summary(record, text.encode())
    assert len(summary) <= channels.c.NOTIFY_MAX_BODY
    assert summary.decode("utf-8").endswith("€")
    said = refusal.message(ConfigError("hookrun.conf:1: bad value " + text))
    assert len(said) <= channels.c.NOTIFY_MAX_BODY and said.decode("utf-8").endswith("€")
