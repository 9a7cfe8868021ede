"""Pure parts of the notification channels and the trends: templates, URLs, percentiles,
sparklines."""

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
