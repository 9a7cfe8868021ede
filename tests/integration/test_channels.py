"""[notify NAME] channels (design.md section 11, "Notification channels"): each type against a
local server on 127.0.0.1 that checks method, path, query, headers and body against what its
service documents; tries, deadlines, filters and secrets."""

import http.server
import json
import threading
import time
import urllib.parse
import uuid

import pytest

from orchestrator.report import channels
from tests.conftest import run_hookrun, show_last

TOKEN = "tk_S3cretToken42"


NTFY_MESSAGE_LIMIT = 4096  # ntfy's default message-size-limit
NTFY_NO_ATTACHMENTS = (b'{"code":40014,"http":400,"error":"invalid request: attachments not '
                       b'allowed","link":"https://ntfy.sh/docs/config/#attachments"}\n')


def ntfy_takes_as_message(body):
    """ntfy reads at most its limit of a body (util.Peek) and marks it LimitReached when it
    read that many; only a body that did not and is valid UTF-8 is a message."""
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return len(body[:NTFY_MESSAGE_LIMIT]) < NTFY_MESSAGE_LIMIT


class Service(http.server.BaseHTTPRequestHandler):
    """Records every request as a dict; answers ``fail`` times 500 first, or hangs when
    ``hang``, or redirects (``redirect``: (status, Location)) as a web server in front of
    the service does (nginx sending http:// to https://). With ``ntfy`` it checks a body as
    ntfy does: one that fills ntfy's 4096-byte message limit or is not UTF-8 is taken as a
    file, refused where attachments are off (HTTP 400, code 40014)."""

    protocol_version = "HTTP/1.0"

    def handle_any(self):
        size = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(size) if size else b""
        path, _mark, query = self.path.partition("?")
        self.server.seen.append({"method": self.command, "path": path,
                                 "query": dict(urllib.parse.parse_qsl(query,
                                                                      keep_blank_values=True)),
                                 "headers": {k.lower(): v for k, v in self.headers.items()},
                                 "body": body.decode("utf-8", "replace")})
        if self.server.hang:
            time.sleep(self.server.hang)
            return
        status = 500 if len(self.server.seen) <= self.server.fail else 200
        if self.server.ntfy and not ntfy_takes_as_message(body):
            self.answer(400, NTFY_NO_ATTACHMENTS)
            return
        try:
            if self.server.redirect:
                status, location = self.server.redirect
                self.send_response(status)
                self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"OK")
        except OSError:
            pass

    def answer(self, status, body):
        try:
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            pass

    do_GET = do_POST = do_PUT = do_PATCH = handle_any

    def log_message(self, *args):
        pass


@pytest.fixture
def service():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Service)
    server.daemon_threads = True
    server.seen, server.fail, server.hang, server.redirect = [], 0, 0, None
    server.ntfy = False
    server.base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def notify_config(tree, text):
    path = tree.config(text)
    path.chmod(0o600)  # a config with tokens in it
    return path


def failing_run(tree, *extra):
    tree.hook("pre-backup.d/10-dump", "echo 'pg_dump: secret-output-line' >&2; exit 3")
    return run_hookrun("run", *tree.args(*extra), "--", "true")


def rid_of(tree):
    return str(uuid.uuid5(uuid.UUID(channels.RID_NAMESPACE), show_last(tree)["id"]))


def test_ntfy_posts_the_summary_to_the_topic_with_title_priority_tags_and_bearer(tree, service):
    service.ntfy = True
    notify_config(tree, f"""
        [notify phone]
        type = ntfy
        url = {service.base}/backups-topic
        token = {TOKEN}
        """)
    result = failing_run(tree)
    assert result.returncode == 69
    [sent] = service.seen
    assert (sent["method"], sent["path"], sent["query"]) == ("POST", "/backups-topic", {})
    assert sent["headers"]["authorization"] == f"Bearer {TOKEN}"
    assert sent["headers"]["priority"] == "high"
    assert sent["headers"]["tags"] == "rotating_light,backup"
    assert "failure" in sent["headers"]["title"] and "backup" in sent["headers"]["title"]
    assert "status=failure" in sent["body"] and "secret-output-line" in sent["body"]


@pytest.mark.parametrize("pad", ["", "x", "xx"])
def test_a_long_ntfy_message_is_cut_below_ntfys_limit_at_a_character_and_arrives(tree, service,
                                                                                  pad):
    # 3-byte characters: a cut at a byte splits one two times in three.
    service.ntfy = True
    notify_config(tree, f"""
        [notify phone]
        type = ntfy
        url = {service.base}/backups-topic
        """)
    tree.hook("pre-backup.d/10-loud", f"i=0; while [ $i -lt 200 ]; do echo '{pad}' "
              "'€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€'; i=$((i+1)); done; exit 1")
    result = run_hookrun("run", *tree.args(), "--", "true")
    assert result.returncode == 69 and show_last(tree)["status"] == "failure"
    assert "notification" not in result.stderr, result.stderr
    [sent] = service.seen
    assert sent["body"].startswith("hookrun run ") and sent["body"].endswith("€...")
    assert 4000 < len(sent["body"].encode("utf-8")) < NTFY_MESSAGE_LIMIT


def test_a_message_ntfy_would_refuse_is_a_warning_with_its_reason(tree, service):
    """The fake ntfy's check itself: a body that fills the limit is refused as ntfy does."""
    service.ntfy = True
    req = channels.Request("POST", f"{service.base}/t", channels.TEXT_TYPE, b"x" * 4096)
    assert channels.deliver(req, ()) == "HTTP 400 Bad Request (after 1 try)"
    req = channels.Request("POST", f"{service.base}/t", channels.TEXT_TYPE, b"\xe2\x82")
    assert channels.deliver(req, ()) == "HTTP 400 Bad Request (after 1 try)"


def test_gotify_posts_json_to_message_with_its_key_header(tree, service):
    notify_config(tree, f"""
        [notify gotify]
        type = gotify
        url = {service.base}/gotify/
        token = {TOKEN}
        on = success failure
        """)
    assert run_hookrun("run", *tree.args(), "--", "true").returncode == 0
    [sent] = service.seen
    assert (sent["method"], sent["path"]) == ("POST", "/gotify/message")
    assert sent["headers"]["x-gotify-key"] == TOKEN
    assert "authorization" not in sent["headers"]
    assert sent["headers"]["content-type"] == "application/json"
    body = json.loads(sent["body"])
    assert set(body) == {"title", "message", "priority"}
    assert body["priority"] == 2 and "success" in body["title"]
    assert "status=success" in body["message"]


def test_discord_posts_content_of_at_most_2000_characters(tree, service):
    notify_config(tree, f"""
        [notify chat]
        type = discord
        url = {service.base}/api/webhooks/123/abc
        """)
    tree.hook("pre-backup.d/10-loud", "i=0; while [ $i -lt 300 ]; do echo line-$i-xxxxxxxxxxxx;"
              " i=$((i+1)); done; exit 1")
    assert run_hookrun("run", *tree.args(), "--", "true").returncode == 69
    [sent] = service.seen
    assert (sent["method"], sent["path"]) == ("POST", "/api/webhooks/123/abc")
    assert sent["headers"]["content-type"] == "application/json"
    body = json.loads(sent["body"])
    assert list(body) == ["content"]
    assert len(body["content"]) == 2000 and "failure" in body["content"]


def test_slack_posts_text_json(tree, service):
    notify_config(tree, f"""
        [notify team]
        type = slack
        url = {service.base}/services/T0/B0/XX
        """)
    assert failing_run(tree).returncode == 69
    [sent] = service.seen
    assert (sent["method"], sent["path"]) == ("POST", "/services/T0/B0/XX")
    body = json.loads(sent["body"])
    assert list(body) == ["text"] and "status=failure" in body["text"]


@pytest.mark.parametrize("hook_code, status, exit_code", [(0, "up", 0), (3, "down", 69)])
def test_uptime_kuma_gets_status_msg_and_ping_in_the_query(tree, service, hook_code, status,
                                                           exit_code):
    notify_config(tree, f"""
        [notify kuma]
        type = uptime-kuma
        url = {service.base}/api/push/PuShToKeN?status=up&msg=OK&ping=
        """)
    tree.hook("pre-backup.d/10-x", f"exit {hook_code}")
    assert run_hookrun("run", *tree.args(), "--", "true").returncode == exit_code
    [sent] = service.seen  # no start message: a push monitor has none
    assert (sent["method"], sent["path"]) == ("GET", "/api/push/PuShToKeN")
    assert set(sent["query"]) == {"status", "msg", "ping"}
    assert sent["query"]["status"] == status
    assert sent["query"]["ping"].isdigit()
    assert sent["query"]["msg"].startswith("success" if hook_code == 0 else "failure: pre hook")


def test_cronitor_gets_run_then_complete_or_fail_in_one_series(tree, service):
    notify_config(tree, f"""
        [notify cron]
        type = cronitor
        url = {service.base}/p/KEY/nightly
        """)
    assert run_hookrun("run", *tree.args(), "--", "true").returncode == 0
    assert failing_run(tree).returncode == 69
    assert [(s["method"], s["path"], s["query"]["state"]) for s in service.seen] == [
        ("GET", "/p/KEY/nightly", "run"), ("GET", "/p/KEY/nightly", "complete"),
        ("GET", "/p/KEY/nightly", "run"), ("GET", "/p/KEY/nightly", "fail")]
    start, end = service.seen[2:]
    assert start["query"]["series"] == end["query"]["series"] == rid_of(tree)
    assert end["query"]["status_code"] == "69"
    assert end["query"]["message"].startswith("failure: pre hook 10-dump")


@pytest.mark.parametrize("hook_code, command, end_path, code", [
    (0, "true", "/ping/u-u-i-d", 0),
    (0, "false", "/ping/u-u-i-d/1", 1),
    (75, "true", "/ping/u-u-i-d/log", 0),
])
def test_healthchecks_pings_start_and_end_with_one_rid(tree, service, hook_code, command,
                                                       end_path, code):
    notify_config(tree, f"""
        [notify hc]
        type = healthchecks
        url = {service.base}/ping/u-u-i-d
        """)
    tree.hook("pre-backup.d/10-x", f"exit {hook_code}")
    assert run_hookrun("run", *tree.args(), "--", command).returncode == code
    assert [(s["method"], s["path"]) for s in service.seen] == [
        ("POST", "/ping/u-u-i-d/start"), ("POST", end_path)]
    assert [s["query"] for s in service.seen] == [{"rid": rid_of(tree)}] * 2
    assert "status=" in service.seen[1]["body"]


def test_notify_url_pings_carry_the_same_rid(tree, checker):
    assert run_hookrun("run", *tree.args("--notify-url", checker.url), "--",
                       "true").returncode == 0
    assert checker.queries == [f"rid={rid_of(tree)}"] * 2


def test_webhook_sends_its_method_headers_and_json_escaped_template(tree, service):
    notify_config(tree, f"""
        [notify ops]
        type = webhook
        url = {service.base}/hooks/in
        method = PUT
        header = X-One: first
        header = X-Two: second
        token = {TOKEN}
        body = {{"s": "$status", "e": "$event", "code": $exit_code, "err": "$error", "run": "$run_id", "t": "$trigger", "files": "$stats_files_new", "cost": "$$5"}}
        """)  # noqa: E501 - one config line
    tree.hook("pre-backup.d/10-q", 'echo \'said "quoted"\\\\back\'; exit 1')
    tree.hook("pre-backup.d/05-stats", 'echo files_new=7 >> "$HOOKRUN_STATS"')
    assert run_hookrun("run", *tree.args("--trigger", "timer"), "--", "true").returncode == 69
    [sent] = service.seen
    assert (sent["method"], sent["path"]) == ("PUT", "/hooks/in")
    headers = sent["headers"]
    assert (headers["x-one"], headers["x-two"]) == ("first", "second")
    assert headers["authorization"] == f"Bearer {TOKEN}"
    assert headers["content-type"] == "application/json"
    body = json.loads(sent["body"])
    record = show_last(tree)
    assert body == {"s": "failure", "e": "backup", "code": 69, "err": record["error"],
                    "run": record["id"], "t": "timer", "files": "7", "cost": "$5"}
    assert body["err"].endswith('said "quoted"\\back')


def test_webhook_without_a_body_posts_the_runs_record(tree, service):
    notify_config(tree, f"""
        [notify ops]
        type = webhook
        url = {service.base}/in
        """)
    assert run_hookrun("run", *tree.args(), "--", "true").returncode == 0
    [sent] = service.seen
    assert json.loads(sent["body"]) == show_last(tree)


def test_several_channels_at_once_and_notify_url_beside_them(tree, service, checker):
    notify_config(tree, f"""
        [hookrun]
        notify_url = {checker.url}
        [notify a]
        type = slack
        url = {service.base}/a
        on = success
        [notify b]
        type = discord
        url = {service.base}/b
        on = success
        """)
    assert run_hookrun("run", *tree.args(), "--", "true").returncode == 0
    assert sorted(s["path"] for s in service.seen) == ["/a", "/b"]
    assert [path for path, _body in checker.requests] == ["/ping/abc/start", "/ping/abc"]


def test_a_server_that_fails_twice_gets_three_requests_and_no_warning(tree, service):
    service.fail = 2
    notify_config(tree, f"""
        [notify chat]
        type = slack
        url = {service.base}/s
        """)
    result = failing_run(tree)
    assert result.returncode == 69
    assert len(service.seen) == 3
    assert "notification" not in result.stderr


def test_a_server_that_always_fails_is_a_warning_after_three_tries(tree, service):
    service.fail = 100
    notify_config(tree, f"""
        [notify chat]
        type = slack
        url = {service.base}/s
        """)
    result = failing_run(tree)
    assert result.returncode == 69 and show_last(tree)["status"] == "failure"
    assert len(service.seen) == 3
    assert "[notify chat] (slack) failed: HTTP 500" in result.stderr


def test_a_server_that_never_answers_costs_at_most_the_deadline(tree, service):
    service.hang = 60
    notify_config(tree, f"""
        [notify hc]
        type = healthchecks
        url = {service.base}/ping/x
        [notify chat]
        type = slack
        url = {service.base}/s
        on = success
        """)
    began = time.monotonic()
    result = run_hookrun("run", *tree.args(), "--", "true")
    elapsed = time.monotonic() - began
    assert result.returncode == 0 and show_last(tree)["status"] == "success"
    assert "[notify hc] (healthchecks) failed: timed out" in result.stderr
    # start (hc), end (hc and chat side by side): two deadlines of 10 s, not three.
    assert elapsed < 2 * channels.TIMEOUT + 8


def test_tokens_and_secret_urls_appear_nowhere(tree, service):
    service.fail = 100
    log = tree.base / "hookrun.log"
    notify_config(tree, f"""
        [hookrun]
        log_file = {log}
        [notify phone]
        type = ntfy
        url = http://user:UrlPassw0rd@127.0.0.1:{service.server_address[1]}/SecretTopic
        token = {TOKEN}
        on = failure start
        [notify gotify]
        type = gotify
        url = http://127.0.0.1:9/
        token = {TOKEN}
        """)
    result = failing_run(tree, "-v")
    assert result.returncode == 69
    assert service.seen and service.seen[0]["headers"]["authorization"] == f"Bearer {TOKEN}"
    assert "[notify phone] (ntfy) failed" in result.stderr
    assert "[notify gotify] (gotify) failed" in result.stderr
    history = run_hookrun("history", "--json", *tree.args()).stdout
    for where in (result.stdout, result.stderr, log.read_text(), history):
        for secret in (TOKEN, "UrlPassw0rd", "SecretTopic"):
            assert secret not in where


def test_on_and_triggers_choose_what_sends(tree, service):
    notify_config(tree, f"""
        [notify fails]
        type = webhook
        url = {service.base}/fails
        on = failure
        [notify timer]
        type = webhook
        url = {service.base}/timer
        on = success failure
        triggers = timer
        """)
    assert run_hookrun("run", *tree.args("--trigger", "manual"), "--", "true").returncode == 0
    assert service.seen == []
    assert run_hookrun("run", *tree.args("--trigger", "timer"), "--", "true").returncode == 0
    assert [s["path"] for s in service.seen] == ["/timer"]
    assert run_hookrun("run", *tree.args("--trigger", "manual"), "--", "false").returncode == 1
    assert [s["path"] for s in service.seen] == ["/timer", "/fails"]


def test_send_output_no_keeps_output_out_of_error_summary_and_record(tree, service):
    notify_config(tree, f"""
        [notify quiet]
        type = webhook
        url = {service.base}/quiet
        send_output = no
        body = $error|$output|$summary
        [notify record]
        type = webhook
        url = {service.base}/record
        send_output = no
        [notify loud]
        type = webhook
        url = {service.base}/loud
        body = $error|$output
        """)
    assert failing_run(tree).returncode == 69
    sent = {s["path"]: s["body"] for s in service.seen}
    assert "secret-output-line" in sent["/loud"]
    assert "pre hook 10-dump failed (exit 3)" in sent["/quiet"]
    assert "status=failure" in sent["/quiet"]
    assert "secret-output-line" not in sent["/quiet"]
    assert "secret-output-line" not in sent["/record"]
    assert json.loads(sent["/record"])["status"] == "failure"


def test_dry_run_sends_nothing_to_channels(tree, service):
    notify_config(tree, f"""
        [notify hc]
        type = healthchecks
        url = {service.base}/x
        """)
    assert run_hookrun("run", *tree.args("--dry-run"), "--", "true").returncode == 0
    assert service.seen == []


@pytest.mark.parametrize("section, words", [
    ("type = pager\nurl = http://127.0.0.1:9/", ["unknown type 'pager'"]),
    ("type = slack", ["needs 'url"]),
    ("url = http://127.0.0.1:9/", ["needs 'type"]),
    ("type = gotify\nurl = http://127.0.0.1:9/", ["needs 'token"]),
    ("type = slack\nurl = http://127.0.0.1:9/\ntoken = x", ["takes no token"]),
    ("type = slack\nurl = http://127.0.0.1:9/\nmethod = PUT", ["for type webhook only"]),
    ("type = slack\nurl = http://127.0.0.1:9/\non = sometimes", ["bad status 'sometimes'"]),
    ("type = uptime-kuma\nurl = http://127.0.0.1:9/\non = start", ["no start"]),
    ("type = webhook\nurl = http://127.0.0.1:9/\nbody = $nope", ["unknown variable $nope"]),
    ("type = webhook\nurl = http://127.0.0.1:9/\nheader = nocolon", ["Name: value"]),
    ("type = webhook\nurl = http://127.0.0.1:9/\ncolour = red", ["unknown key 'colour'"]),
    ("type = slack\nurl = http://127.0.0.1:9/\nsend_output = maybe", ["yes/no"]),
    ("type = slack\nurl = http://127.0.0.1:9/\ntriggers = Timer!", ["bad trigger"]),
    ("type = slack\nurl = ftp://127.0.0.1:9/", ["bad URL"]),
])
def test_bad_notify_sections_are_config_errors_naming_file_and_line(tree, section, words):
    notify_config(tree, "[hookrun]\n[notify x]\n" + section + "\n")
    tree.hook("pre-backup.d/10-x", f"touch {tree.mark('ran')}")
    result = run_hookrun("run", *tree.args(), "--", "true")
    assert result.returncode == 78
    assert f"{tree.hooks / 'hookrun.conf'}:" in result.stderr
    assert all(word in result.stderr for word in words), result.stderr
    assert "Traceback" not in result.stderr and tree.read("ran") is None


def test_a_header_repeats_only_in_notify_sections(tree):
    notify_config(tree, "[hookrun]\ntimeout = 1m\ntimeout = 2m\n")
    result = run_hookrun("run", *tree.args(), "--", "true")
    assert result.returncode == 78 and "duplicate key 'timeout'" in result.stderr


REDIRECTS = [(301, "Moved Permanently"), (302, "Found"), (307, "Temporary Redirect"),
             (308, "Permanent Redirect")]


@pytest.mark.parametrize("code, phrase", REDIRECTS)
@pytest.mark.parametrize("kind", ["ntfy", "slack", "healthchecks", "uptime-kuma", "webhook"])
def test_a_redirected_channel_is_a_warning_naming_where_it_points_tried_once(
        tree, service, kind, code, phrase):
    # http:// behind a web server that sends everything to https://: the alert did not arrive.
    service.redirect = (code, "https://ntfy.example.org/SecretTopic?auth=" + TOKEN)
    notify_config(tree, f"""
        [notify phone]
        type = {kind}
        url = {service.base}/SecretTopic
        on = failure
        """)
    result = failing_run(tree)
    assert result.returncode == 69 and show_last(tree)["status"] == "failure"
    assert len(service.seen) == 1  # a redirect is not asked again: it will not change
    assert (f"[notify phone] ({kind}) failed: HTTP {code} {phrase}: redirected to "
            f"https://ntfy.example.org/***, not followed (after 1 try)") in result.stderr
    for secret in ("SecretTopic", TOKEN):
        assert secret not in result.stderr + result.stdout


@pytest.mark.parametrize("code, phrase", REDIRECTS)
def test_a_redirected_notify_url_ping_is_a_warning_and_not_followed(tree, service, code,
                                                                    phrase):
    service.redirect = (code, "/elsewhere/start")  # relative, as a Location may be
    url = f"http://hc:Passw0rd@127.0.0.1:{service.server_address[1]}/ping/abc"
    result = run_hookrun("run", *tree.args("--notify-url", url), "--", "true")
    assert result.returncode == 0 and show_last(tree)["status"] == "success"
    # The start and the end ping, each once; nothing asked of /elsewhere.
    assert [s["path"] for s in service.seen] == ["/ping/abc/start", "/ping/abc"]
    target = f"http://hc:***@127.0.0.1:{service.server_address[1]}/ping/abc"
    for suffix in ("/start", ""):
        assert (f"notification to {target}{suffix} failed: HTTP {code} {phrase}: redirected "
                f"to http://127.0.0.1:{service.server_address[1]}/***, not followed"
                ) in result.stderr
    assert "Passw0rd" not in result.stderr


def test_a_redirected_metrics_push_is_a_warning_and_not_followed(tree, service):
    service.redirect = (301, "https://pushgateway.example.org/metrics/job/hookrun")
    url = f"http://pg:Passw0rd@127.0.0.1:{service.server_address[1]}"
    result = run_hookrun("run", *tree.args("--metrics-push-url", url), "--", "true")
    assert result.returncode == 0 and show_last(tree)["status"] == "success"
    [sent] = service.seen
    assert sent["method"] == "PUT" and sent["path"].startswith("/metrics/job/hookrun/")
    assert (f"metrics push to http://pg:***@127.0.0.1:{service.server_address[1]}"
            "/metrics/job/hookrun/") in result.stderr
    assert ("failed: HTTP 301 Moved Permanently: redirected to "
            "https://pushgateway.example.org/***, not followed") in result.stderr
    assert "Passw0rd" not in result.stderr
