"""Nothing can hang a run, and credentials in URLs work and stay hidden (design.md section 8,
"Side doors"): servers that trickle their answers, FIFOs at output paths, user:password URLs.
Every server here listens on 127.0.0.1 only."""

import base64
import json
import os
import shutil
import socket
import stat
import subprocess
import threading
import time

import pytest

from tests.conftest import require, run_hookrun, show_last

TRICKLE_EVERY = 2.0  # seconds between two bytes of a trickled answer
TRICKLE_FOR = 150.0  # how long a trickle lasts at most: past any test's time bound
# NOTIFY_TIMEOUT is 10 s for a whole request: one trickled request, the run and generous slack.
ONE_REQUEST_BOUND = 30.0
ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nOK"


class Server:
    """A bare HTTP server on 127.0.0.1 that records each request (method, path, headers) and
    answers it with ANSWER at once, or one byte every TRICKLE_EVERY seconds when its path
    ends with one of ``trickled``; or with ``status`` when it is not 200."""

    def __init__(self, trickled=(), status=200, tls=None):
        self.trickled = tuple(trickled)
        self.tls = tls
        self.status = status
        self.requests = []
        self.stopping = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def url(self, userinfo="", path="/ping/abc"):
        if self.tls:
            return f"https://{userinfo}localhost:{self.port}{path}"
        return f"http://{userinfo}127.0.0.1:{self.port}{path}"

    def serve(self):
        while not self.stopping.is_set():
            try:
                conn, _address = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self.answer, args=(conn,), daemon=True).start()

    def answer(self, conn):
        with conn:
            conn.settimeout(30)
            try:
                if self.tls:
                    conn = self.tls.wrap_socket(conn, server_side=True)
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                head, _sep, body = data.partition(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _version = lines[0].split(" ", 2)
                path = path.partition("?")[0]  # without the pings' ?rid=
                headers = {k.strip().lower(): v.strip()
                           for k, _c, v in (line.partition(":") for line in lines[1:])}
                length = int(headers.get("content-length", 0))
                while len(body) < length:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    body += chunk
                self.requests.append((method, path, headers))
                if path.endswith(self.trickled) and self.trickled:
                    self.trickle(conn)
                elif self.status != 200:
                    conn.sendall(b"HTTP/1.1 %d Nope\r\nContent-Length: 4\r\n"
                                 b"Connection: close\r\n\r\nnope" % self.status)
                else:
                    conn.sendall(ANSWER)
            except OSError:
                pass  # hookrun cut the connection, as these tests want it to

    def trickle(self, conn):
        ends = time.monotonic() + TRICKLE_FOR
        for byte in ANSWER:
            if self.stopping.wait(TRICKLE_EVERY) or time.monotonic() > ends:
                return
            conn.sendall(bytes([byte]))

    def stop(self):
        self.stopping.set()
        self.listener.close()


@pytest.fixture
def server_factory():
    made = []

    def make(**kwargs):
        made.append(Server(**kwargs))
        return made[-1]

    yield make
    for server in made:
        server.stop()


def timed_run(tree, *argv):
    began = time.monotonic()
    result = run_hookrun("run", *tree.args(*argv), timeout=300)
    return result, time.monotonic() - began


@pytest.mark.parametrize("trickled", ["/start", "/fail"])
def test_a_ping_answered_one_byte_every_two_seconds_is_cut_off_at_its_deadline(
        tree, server_factory, trickled):
    """Each read gets a byte within 2 s, so a per-read timeout never fires: only a deadline
    for the whole request ends it. The run keeps its own status and exit code."""
    server = server_factory(trickled=[trickled])
    tree.hook("pre-backup.d/10-x", f"echo ran > {tree.mark('ran')}")
    result, elapsed = timed_run(tree, "--notify-url", server.url(), "--", "sh", "-c", "exit 3")
    assert elapsed < ONE_REQUEST_BOUND, (elapsed, result.stderr)
    assert result.returncode == 3, result.stderr
    assert tree.read("ran") == "ran\n"
    warnings = [line for line in result.stderr.splitlines() if "notification to" in line]
    assert len(warnings) == 1 and trickled in warnings[0] and "timed out" in warnings[0]
    assert [path for _m, path, _h in server.requests] == ["/ping/abc/start", "/ping/abc/fail"]
    record = show_last(tree)
    assert (record["status"], record["exit_code"]) == ("failure", 3)


def test_a_pushgateway_answering_one_byte_every_two_seconds_is_cut_off_at_its_deadline(
        tree, server_factory):
    server = server_factory(trickled=["/event/backup"])
    result, elapsed = timed_run(tree, "--metrics-push-url", server.url(path=""), "--", "false")
    assert elapsed < ONE_REQUEST_BOUND, (elapsed, result.stderr)
    assert result.returncode == 1, result.stderr
    assert "metrics push to" in result.stderr and "timed out" in result.stderr
    assert [method for method, _p, _h in server.requests] == ["PUT"]
    assert show_last(tree)["status"] == "failure"


def test_https_carries_credentials_and_a_trickled_answer_is_cut_off_too(tree, server_factory):
    """Over TLS (a certificate the test makes, trusted through SSL_CERT_FILE), the deadline
    holds for the handshake and the reply alike, and the credentials still become basic
    auth."""
    import ssl

    openssl = require(shutil.which("openssl"), "openssl")
    cert, key = tree.base / "cert.pem", tree.base / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True,
                   timeout=60)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = server_factory(trickled=["/start"], tls=context)
    tree.hook("pre-backup.d/10-x", "true")
    began = time.monotonic()
    result = run_hookrun("run", *tree.args("--notify-url", server.url(f"{USER}:{SECRET}@")),
                         "--", "true", env={"SSL_CERT_FILE": str(cert)}, timeout=300)
    assert time.monotonic() - began < ONE_REQUEST_BOUND, result.stderr
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "notification to" in line]
    assert len(warnings) == 1 and "/start" in warnings[0] and "timed out" in warnings[0]
    assert SECRET not in result.stderr
    expected = "Basic " + base64.b64encode(f"{USER}:{SECRET}".encode()).decode()
    assert [(path, auth_of(headers)) for _m, path, headers in server.requests] == [
        ("/ping/abc/start", expected), ("/ping/abc", expected)]


@pytest.mark.parametrize("option", ["--metrics-file", "--log-file"])
def test_a_fifo_at_an_output_path_is_refused_with_a_warning_and_the_run_goes_on(tree, option):
    """Opening a FIFO waits for its other end, for ever: it must be refused, not opened."""
    fifo = tree.base / "out"
    os.mkfifo(fifo)
    tree.hook("pre-backup.d/10-x", f"echo ran > {tree.mark('ran')}")
    result, _elapsed = timed_run(tree, option, str(fifo), "--", "sh", "-c", "exit 4")
    assert result.returncode == 4, result.stderr
    assert tree.read("ran") == "ran\n"
    assert [line for line in result.stderr.splitlines()
            if str(fifo) in line and "not a regular file" in line]
    assert stat.S_ISFIFO(fifo.lstat().st_mode)
    record = show_last(tree)
    assert (record["status"], record["exit_code"]) == ("failure", 4)


@pytest.mark.parametrize("option", ["--metrics-file", "--log-file"])
def test_a_directory_at_an_output_path_is_a_warning_and_refuses_no_run(tree, option):
    """A directory left where the log or metrics file goes (a mistaken mkdir) is not a
    reason to refuse every run: it is not written, with a warning."""
    there = tree.base / "out"
    there.mkdir(mode=0o700)
    tree.hook("pre-backup.d/10-x", f"echo ran > {tree.mark('ran')}")
    result, _elapsed = timed_run(tree, option, str(there), "--", "sh", "-c", "exit 4")
    assert result.returncode == 4, result.stderr
    assert tree.read("ran") == "ran\n"
    assert [line for line in result.stderr.splitlines()
            if str(there) in line and "not a regular file" in line]
    assert there.is_dir()
    record = show_last(tree)
    assert (record["status"], record["exit_code"]) == ("failure", 4)


@pytest.mark.parametrize("option", ["--metrics-file", "--log-file"])
def test_an_output_path_that_is_a_link_of_the_user_running_hookrun_is_followed(tree, option):
    """/var/log/hookrun.log pointing to a larger disk: a link that only root (or the user
    running hookrun) could have made is followed, for the log file as for the metrics file;
    the link stays a link."""
    real = tree.base / "elsewhere"
    real.mkdir(mode=0o700)
    link = tree.base / "out"
    link.symlink_to(real / "out")
    tree.hook("pre-backup.d/10-x", "echo hook-said-this")
    result = run_hookrun("run", *tree.args(), option, str(link), "--", "true")
    assert result.returncode == 0, result.stderr
    assert show_last(tree)["status"] == "success"
    assert link.is_symlink() and (real / "out").is_file()
    assert ("hook-said-this" if option == "--log-file" else "hookrun_last_run_status") in \
        (real / "out").read_text()
    if option == "--log-file":
        # Read back where it was written: show --output follows the same link.
        shown = run_hookrun("show", "last", "--output", "pre/10-x", *tree.args(),
                            "--log-file", str(link))
        assert shown.returncode == 0, shown.stderr
        assert shown.stdout == "hook-said-this\n"


def test_a_fifo_at_the_metrics_path_with_a_reader_is_not_written_to(tree):
    """With a reader at its other end, a FIFO opens: the check after the open refuses it."""
    fifo = tree.base / "out.prom"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    time.sleep(0.2)
    result, _elapsed = timed_run(tree, "--metrics-file", str(fifo), "--", "false")
    assert result.returncode == 1 and "not a regular file" in result.stderr
    # Let the reader go: it sees only what this test writes, not any series of hookrun's.
    with open(fifo, "wb") as handle:
        handle.write(b"end")
    reader.join(10)
    assert got == [b"end"]


USER, SECRET = "backup", "s3cr3t-Pa55"


def auth_of(headers):
    return headers.get("authorization")


def test_credentials_in_urls_become_basic_auth_and_are_never_shown(tree, server_factory):
    """The ping and the push carry the Authorization header, reach the URL without the user
    information, and no output, log or record of the run holds the password."""
    server = server_factory()
    tree.hook("pre-backup.d/10-x", "true")
    expected = "Basic " + base64.b64encode(f"{USER}:{SECRET}".encode()).decode()
    userinfo = f"{USER}:{SECRET}@"
    log = tree.base / "hookrun.log"
    result = run_hookrun("run", *tree.args("-v", "--log-file", str(log), "--notify-url",
                                           server.url(userinfo), "--metrics-push-url",
                                           server.url(userinfo, path="")), "--", "true")
    assert result.returncode == 0, result.stderr
    assert "warning" not in result.stderr
    assert [(m, p.split("/metrics")[0]) for m, p, _h in server.requests] == [
        ("POST", "/ping/abc/start"), ("PUT", ""), ("POST", "/ping/abc")]
    assert all(auth_of(headers) == expected for _m, _p, headers in server.requests)
    assert all(headers["host"] == f"127.0.0.1:{server.port}"
               for _m, _p, headers in server.requests)
    shown = json.dumps(show_last(tree))
    for text in (result.stdout, result.stderr, log.read_text(), shown):
        assert SECRET not in text


def test_a_failing_url_with_credentials_is_named_with_the_password_masked(tree,
                                                                          server_factory):
    server = server_factory(status=500)
    log = tree.base / "hookrun.log"
    tree.config(f"[hookrun]\nnotify_url = {server.url(f'{USER}:{SECRET}@')}\n"
                f"metrics_push_url = {server.url(f'{USER}:{SECRET}@', path='')}\n")
    outputs = []
    for argv in (["run", "-v", "--log-file", str(log), "--", "false"],
                 ["run", "--dry-run", "-v", "--", "false"], ["list", "-v"], ["check"]):
        result = run_hookrun(*argv[:1], *tree.args(*argv[1:]))
        outputs += [result.stdout, result.stderr]
    run_err = outputs[1]
    assert run_err.count(f"http://{USER}:***@127.0.0.1:{server.port}/") == 3, run_err
    assert all(auth_of(headers) for _m, _p, headers in server.requests)
    outputs += [log.read_text(), json.dumps(show_last(tree))]
    assert show_last(tree)["status"] == "failure"
    for text in outputs:
        assert SECRET not in text


@pytest.mark.parametrize("where", ["config", "option"])
def test_a_bad_url_with_credentials_is_an_error_that_masks_them(tree, where):
    url = f"ftp://{USER}:{SECRET}@127.0.0.1/x"
    if where == "config":
        tree.config(f"[hookrun]\nnotify_url = {url}\n")
        result = run_hookrun("run", *tree.args(), "--", "true")
        assert result.returncode == 78
    else:
        result = run_hookrun("run", *tree.args("--notify-url", url), "--", "true")
        assert result.returncode == 2
    assert f"{USER}:***@" in result.stderr and SECRET not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


def test_running_out_of_memory_writing_the_metrics_is_a_warning_not_an_internal_error(
        tree, hookrun_main, monkeypatch, tmp_path):
    """The run is over and recorded: a MemoryError writing its metrics must not turn it
    into exit 70 and skip its notifications."""
    from orchestrator.report import metrics

    def out_of_memory(*_args, **_kwargs):
        raise MemoryError

    monkeypatch.setattr(metrics, "write_metrics", out_of_memory)
    tree.hook("finally.d/10-x", "true")
    status, _out, err = hookrun_main("run", *tree.args("--metrics-file",
                                                      str(tmp_path / "m.prom")), "--", "true")
    assert status == 0, err
    assert "cannot write metrics file" in err and "out of memory" in err
    monkeypatch.undo()
    assert show_last(tree)["status"] == "success"
