"""Notification channels: the ``[notify NAME]`` sections of the config (design.md section
11, "Notification channels"), each speaking one service's documented API.

What a channel sends is built here from the run's record (``Message``) and sent by
``deliver``: every request has one total deadline (web.py), is tried up to TRIES times within
it, and its failure is a warning that names the channel, never its URL or token (a Discord
webhook URL, a healthchecks UUID or an ntfy topic is itself the secret). The channels of one
moment of a run (its start, its end) are sent side by side, so that a run waits at most about
one deadline for all of them together.

No channel runs a command: the only command that notifications run is ``notify_command``,
which is checked like a hook (design.md section 8).
"""

from __future__ import annotations

import json
import time
from collections import namedtuple

from orchestrator import constants as c
from orchestrator.outcome import RunStatus
from orchestrator.plan.channel_config import (
    ON_VALUES,
    START,
    template_parts,
)
from orchestrator.text import whole_characters

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from typing import NamedTuple

    from orchestrator.plan.settings import Config
    from orchestrator.state.history import Record

# What a type sends when ``on`` is not set: monitors (that alert on a missing ping) every
# status they understand; chats and webhooks only what someone must act on, or (webhook)
# every end, for the machine that reads it.
CHAT = (RunStatus.FAILURE, RunStatus.INTERRUPTED, RunStatus.WARNING)
DEFAULT_ON = {
    "healthchecks": ON_VALUES, "cronitor": ON_VALUES,
    "uptime-kuma": (RunStatus.SUCCESS, RunStatus.WARNING, RunStatus.FAILURE,
                    RunStatus.INTERRUPTED),
    "ntfy": CHAT, "gotify": CHAT, "discord": CHAT, "slack": CHAT,
    "webhook": RunStatus.ALL,
}
TRIES = 3
RETRY_PAUSE = 0.5  # seconds before the second try, doubled before the third
TIMEOUT = c.NOTIFY_TIMEOUT  # all tries of one channel together; tests shorten it
DISCORD_MAX = 2000  # characters of a Discord message's content
# Bytes of an ntfy message: ntfy reads at most its limit, 4096, and takes a body that fills
# it (or is not UTF-8) as a file: an attachment, or HTTP 400 where attachments are off.
NTFY_MAX = 4095
QUERY_TEXT_MAX = 1000  # characters of a message carried in a URL query
# A fixed namespace: uuid5(RID_NAMESPACE, run id) is the same for a run's start and end.
RID_NAMESPACE = "6f1d7c1e-54b4-5d1c-9a87-3b4e2a0f9c11"
NTFY_PRIORITY = {RunStatus.FAILURE: "high", RunStatus.INTERRUPTED: "high",
                 RunStatus.WARNING: "default", RunStatus.SUCCESS: "low",
                 RunStatus.SKIPPED: "low", START: "min"}
NTFY_TAGS = {RunStatus.FAILURE: "rotating_light", RunStatus.INTERRUPTED: "stop_sign",
             RunStatus.WARNING: "warning", RunStatus.SUCCESS: "white_check_mark",
             RunStatus.SKIPPED: "fast_forward", START: "arrow_forward"}
GOTIFY_PRIORITY = {RunStatus.FAILURE: 8, RunStatus.INTERRUPTED: 8, RunStatus.WARNING: 5,
                   RunStatus.SUCCESS: 2, RunStatus.SKIPPED: 2, START: 1}

if TYPE_CHECKING:
    class Channel(NamedTuple):
        name: str
        type: str
        url: str
        token: str | None
        on: tuple[str, ...]
        triggers: tuple[str, ...] | None
        send_output: bool
        method: str
        headers: list[tuple[str, str]]
        body: str | None
else:
    Channel = namedtuple("Channel", "name type url token on triggers send_output method "
                                    "headers body")
Channel.__doc__ = """One [notify NAME] section, checked: ``on`` and ``triggers`` tuples
(``triggers`` None: every trigger), ``headers`` [(name, value)], ``body`` a template or None."""

if TYPE_CHECKING:
    class Request(NamedTuple):
        method: str
        url: str
        headers: dict[str, str]
        body: bytes
else:
    Request = namedtuple("Request", "method url headers body")
Request.__doc__ = """One HTTP request a channel sends: ``body`` bytes."""


def channels_of(config: Config) -> list[Channel]:
    """The Channels of a Config's [notify] sections, in the order the file names them."""
    return [Channel(name=name, type=found["type"], url=found["url"], token=found.get("token"),
                    on=found.get("on") or DEFAULT_ON[found["type"]],
                    triggers=found.get("triggers"),
                    send_output=found.get("send_output", True),
                    method=found.get("method", "POST"), headers=found.get("headers", []),
                    body=found.get("body"))
            for name, found in config.notify.items()]


def wanted(channel: Channel, status: str, trigger: str | None) -> bool:
    """Whether ``channel`` sends for a run's ``status`` (or START) started by ``trigger``."""
    if status not in channel.on:
        return False
    return channel.triggers is None or trigger in channel.triggers


# What is sent ------------------------------------------------------------------------------

class Message:
    """What a run tells its channels at one moment: ``status`` is START or the run status;
    ``record`` the run's published record (None at the start); ``error`` and ``error_private``
    its error line with and without output; ``output`` the failed step's last lines (bytes);
    ``summary`` and ``summary_private`` the summary with and without them."""

    __slots__ = ("status", "run_id", "event", "host", "trigger", "record", "error",
                 "error_private", "output", "summary", "summary_private")
    status: str
    run_id: str
    event: str
    host: str
    trigger: str | None
    record: Record | None
    error: str | None
    error_private: str | None
    output: bytes | None
    summary: str | None
    summary_private: str | None

    def __init__(self, **values: object) -> None:
        for name in self.__slots__:
            setattr(self, name, values.get(name))

    def values(self, private: bool) -> dict[str, str]:
        """The template variables, as text; ``private``: no output lines."""
        record = self.record or {}
        code = record.get("exit_code")
        values = {"status": self.status, "event": self.event, "host": self.host,
                  "run_id": self.run_id, "trigger": self.trigger or "",
                  "exit_code": "" if code is None else str(code),
                  "duration": "" if record.get("duration") is None else str(record["duration"]),
                  "error": (self.error_private if private else self.error) or "",
                  "summary": self.text(private),
                  "output": "" if private else self.output_text()}
        for key, value in (record.get("stats") or {}).items():
            values[f"stats_{key}"] = str(value)
        return values

    def output_text(self) -> str:
        from orchestrator.text import display

        shown: str = display(self.output or b"")
        return shown.rstrip("\n")

    def text(self, private: bool) -> str:
        """The summary (the started line at the start)."""
        if self.status == START:
            return (f"hookrun run {self.run_id} event={self.event} started on {self.host}"
                    + (f" trigger={self.trigger}" if self.trigger else ""))
        summary = self.summary_private if private else self.summary
        # The message of a run's end always has its summaries (run.py tell_channels).
        assert summary is not None
        return summary

    def title(self) -> str:
        return f"hookrun {self.event} {self.status} on {self.host}"


def rid(run_id: str) -> str:
    """The healthchecks run id of ``run_id``: the same UUID for its start and end pings."""
    import uuid

    return str(uuid.uuid5(uuid.UUID(RID_NAMESPACE), run_id))


def with_query(url: str, **params: str) -> str:
    """``url`` with ``params`` set in its query (replacing any of the same names)."""
    import urllib.parse

    parts = urllib.parse.urlsplit(url)
    kept = [(k, v) for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
            if k not in params]
    query = urllib.parse.urlencode(kept + list(params.items()), quote_via=urllib.parse.quote)
    return urllib.parse.urlunsplit(parts._replace(query=query))


def with_path(url: str, suffix: str) -> str:
    """``url`` with ``suffix`` added to its path (its query kept)."""
    import urllib.parse

    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path=parts.path.rstrip("/") + suffix))


def healthchecks_suffix(status: str, exit_code: object) -> str:
    """The healthchecks.io path of a ping: /start, "" (success), /EXIT, /fail, /log."""
    if status == START:
        return "/start"
    if status in RunStatus.SUCCESSES:
        return ""
    if status == RunStatus.SKIPPED:
        return "/log"
    return f"/{exit_code}" if isinstance(exit_code, int) and 0 < exit_code < 256 else "/fail"


def latin1_header(text: str) -> str:
    """A header value: one line, non-ASCII as '?' (http.client sends Latin-1)."""
    from orchestrator.text import display_name

    line: str = display_name(text)
    return line.encode("ascii", "replace").decode("ascii")


def json_body(value: object) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode("utf-8")


JSON_TYPE = {"Content-Type": "application/json"}
TEXT_TYPE = {"Content-Type": "text/plain; charset=utf-8"}


def request(channel: Channel, message: Message) -> Request:
    """The Request ``channel`` sends for ``message``, as its service documents it."""
    private = not channel.send_output
    text = message.text(private)
    status, kind = message.status, channel.type
    if kind == "healthchecks":
        code = (message.record or {}).get("exit_code")
        url = with_query(with_path(channel.url, healthchecks_suffix(status, code)),
                         rid=rid(message.run_id))
        body = b"" if status == START else text.encode("utf-8", "replace")
        return Request("POST", url, TEXT_TYPE, whole_characters(body, c.NOTIFY_MAX_BODY))
    if kind == "ntfy":
        headers = dict(TEXT_TYPE, Title=latin1_header(message.title()),
                       Priority=NTFY_PRIORITY[status],
                       Tags=f"{NTFY_TAGS[status]},{message.event}")
        if channel.token:
            headers["Authorization"] = f"Bearer {channel.token}"
        return Request("POST", channel.url, headers,
                       truncate(text.encode("utf-8", "replace"), NTFY_MAX))
    if kind == "gotify":
        headers = dict(JSON_TYPE, **{"X-Gotify-Key": channel.token})
        return Request("POST", with_path(channel.url, "/message"), headers,
                       json_body({"title": message.title(), "message": text,
                                  "priority": GOTIFY_PRIORITY[status]}))
    if kind == "discord":
        content = f"**{message.title()}**\n{text}"
        if len(content) > DISCORD_MAX:
            content = content[:DISCORD_MAX - 1] + "…"
        return Request("POST", channel.url, JSON_TYPE, json_body({"content": content}))
    if kind == "slack":  # a cut by characters, before the JSON: nothing split
        return Request("POST", channel.url, JSON_TYPE,
                       json_body({"text": f"*{message.title()}*\n{text}"[:c.NOTIFY_MAX_BODY]}))
    if kind == "uptime-kuma":
        up = "up" if status in RunStatus.SUCCESSES else "down"
        duration = (message.record or {}).get("duration")
        ping = "" if duration is None else str(round(duration * 1000))
        return Request("GET", with_query(channel.url, status=up,
                                         msg=short(message, private), ping=ping), {}, b"")
    if kind == "cronitor":
        state = {START: "run", RunStatus.SUCCESS: "complete", RunStatus.WARNING: "complete",
                 RunStatus.SKIPPED: "complete"}.get(status, "fail")
        params = {"state": state, "series": rid(message.run_id), "host": message.host}
        if status != START:
            params["message"] = short(message, private)
            code = (message.record or {}).get("exit_code")
            if code is not None:
                params["status_code"] = str(code)
        return Request("GET", with_query(channel.url, **params), {}, b"")
    return webhook_request(channel, message, private)


def short(message: Message, private: bool) -> str:
    """A one-line message for a URL query: the status and the error, if any."""
    error = (message.error_private if private else message.error) or ""
    text = f"{message.status}: {error}" if error else message.status
    return text[:QUERY_TEXT_MAX]


def truncate(data: bytes, size: int) -> bytes:
    """``data`` (UTF-8) in at most ``size`` bytes: cut where a character begins, and marked
    "..." when cut."""
    return data if len(data) <= size else whole_characters(data, size - len(CUT)) + CUT.encode()


CUT = "..."


def fitted(build: Callable[[Mapping[str, str]], bytes], values: Mapping[str, str],
           size: int) -> bytes:
    """``build(values)``, in at most ``size`` bytes where shorter values can make it so:
    every value is cut to one length, the longest that fits, by characters (``build``
    escapes what it is given, so a JSON body stays JSON and no character is split), each cut
    marked "...". When even empty values are too long, the text around them is sent whole,
    as it was written."""
    body = build(values)
    if len(body) <= size:
        return body

    def capped(most: int) -> bytes:
        return build({name: shortened(value, most) for name, value in values.items()})

    low, high = 0, max(len(value) for value in values.values())
    while low < high:  # the longest cut that fits: bodies grow with it
        middle = (low + high + 1) // 2
        if len(capped(middle)) <= size:
            low = middle
        else:
            high = middle - 1
    return capped(low)


def shortened(text: str, most: int) -> str:
    """``text`` in at most ``most`` characters, "..." marking a cut."""
    if len(text) <= most:
        return text
    return text[:most - len(CUT)] + CUT if most >= len(CUT) else ""


def webhook_request(channel: Channel, message: Message, private: bool) -> Request:
    """The request of a ``webhook`` channel: its method, headers and body template; without
    a body, the run's JSON record (its task output and error kept back when private)."""
    headers = dict(channel.headers)
    if channel.token and not any(k.lower() == "authorization" for k in headers):
        headers["Authorization"] = f"Bearer {channel.token}"
    content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), None)
    if channel.body is None:
        record: Record = message.record or {"id": message.run_id, "event": message.event,
                                    "status": START, "trigger": message.trigger}
        if private and message.record:
            record = dict(record, error=message.error_private,
                          tasks=[dict(t, output=None) for t in record["tasks"]])
        body = record_body(record)
        if content_type is None:
            headers.update(JSON_TYPE)
    else:
        template = channel.body
        as_json = ("json" in (content_type or "").lower()
                   or template.lstrip().startswith(("{", "[")))
        body = fitted(lambda values: render(template, values, as_json).encode("utf-8"),
                      message.values(private), c.NOTIFY_MAX_BODY)
        if content_type is None:
            headers.update(JSON_TYPE if as_json else TEXT_TYPE)
    if channel.method == "GET":
        body = b""
    return Request(channel.method, channel.url, headers, body)


def record_body(record: Record) -> bytes:
    """The JSON of a run's ``record``, its tasks' output, its error and its command cut (the
    longest first) to keep it within c.NOTIFY_MAX_BODY: a cut of the JSON text would not be
    JSON."""
    tasks = record.get("tasks") or []
    values = {str(i): task["output"] for i, task in enumerate(tasks)
              if isinstance(task.get("output"), str)}
    values.update((key, record[key]) for key in RECORD_TEXTS
                  if isinstance(record.get(key), str))

    def build(cut: Mapping[str, str]) -> bytes:
        texts = {key: cut[key] for key in RECORD_TEXTS if key in cut}
        return json_body(dict(record, **texts, tasks=[dict(task, output=cut[str(i)])
                                                      if str(i) in cut else task
                                                      for i, task in enumerate(tasks)]))

    return fitted(build, values, c.NOTIFY_MAX_BODY) if values else json_body(record)


# The fields of a run's record besides the tasks' output that may be long: a command line
# of many arguments, an error that quotes one.
RECORD_TEXTS = ("command", "error")


def render(template: str, values: Mapping[str, str], as_json: bool) -> str:
    """``template`` with its variables replaced by ``values`` (JSON-escaped, without the
    quotes, when ``as_json``); an unknown $stats_* is empty."""
    pieces: list[str] = []
    for kind, piece in template_parts(template):
        if kind == "text":
            pieces.append(piece)
            continue
        value = values.get(piece, "")
        pieces.append(json.dumps(value, ensure_ascii=False)[1:-1] if as_json else value)
    return "".join(pieces)


# Sending -----------------------------------------------------------------------------------

def retryable(reply_status: int) -> bool:
    """Whether an HTTP status may pass if asked again: a server error or too many requests."""
    return reply_status >= 500 or reply_status in (408, 429)


def deliver(req: Request, secrets: Iterable[str | None],
            timeout: float | None = None) -> str | None:
    """Send ``req``, trying up to TRIES times while ``timeout`` seconds (all tries together)
    last; None when it arrived, else a one-line reason with ``secrets`` (the token, the
    URL) masked. A redirect (3xx) did not arrive: it is not followed, nor asked again.
    Never raises."""
    from orchestrator.report import web

    end = time.monotonic() + (TIMEOUT if timeout is None else timeout)
    reason, pause = "not sent", RETRY_PAUSE
    for attempt in range(1, TRIES + 1):
        left = end - time.monotonic()
        if left <= 0:
            break
        try:
            reply = web.send(req.method, req.url, req.body, headers=req.headers, timeout=left)
        except (OSError, ValueError) as error:
            reason = web.failure(error, req.url)
            if isinstance(error, ValueError):
                break
        else:
            if web.redirect(reply.status):
                # Not followed, and asking again gets the same answer.
                reason = web.redirected(reply, req.url)
                break
            if reply.status < 400:
                return None
            reason = f"HTTP {reply.status} {web.scrubbed(reply.reason, req.url)}".rstrip()
            if not retryable(reply.status):
                break
        if attempt < TRIES and end - time.monotonic() > pause:
            time.sleep(pause)
            pause *= 2
    return f"{hide(reason, secrets)} (after {attempt} {'try' if attempt == 1 else 'tries'})"


def hide(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with every secret (and the URL's path, which may be one) masked."""
    for secret in sorted(filter(None, secrets), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def secrets_of(channel: Channel, req: Request) -> set[str]:
    """What must never be shown of a channel: its token, its URL and the URL sent."""
    import urllib.parse

    secrets: set[str | None] = {channel.token, channel.url, req.url}
    for url in (channel.url, req.url):
        parts = urllib.parse.urlsplit(url)
        secrets |= {parts.path, parts.query, parts.netloc.rpartition("@")[0]}
    return {s for s in secrets if s and s not in ("/",)}


def send_all(channels: Iterable[Channel], message: Message,
             trigger: str | None) -> list[str]:
    """Send ``message`` to each of ``channels`` that wants it, side by side; returns the
    warnings (one line per channel that failed, naming it by its section)."""
    import threading

    todo = [ch for ch in channels if wanted(ch, message.status, trigger)]
    problems: dict[str, str] = {}

    def send_one(channel: Channel) -> None:
        try:
            req = request(channel, message)
            problem = deliver(req, secrets_of(channel, req))
        except Exception as error:  # noqa: BLE001 - a notification is never the run's failure
            problem = hide(f"{type(error).__name__}: {error}", {channel.token, channel.url})
        if problem:
            problems[channel.name] = (f"notification [notify {channel.name}] "
                                      f"({channel.type}) failed: {problem}")

    threads = [threading.Thread(target=send_one, args=(ch,), daemon=True) for ch in todo]
    for thread in threads:
        thread.start()
    end = time.monotonic() + (TIMEOUT + 1)
    for thread, channel in zip(threads, todo):
        thread.join(max(0.0, end - time.monotonic()))
        if thread.is_alive():
            problems.setdefault(channel.name, f"notification [notify {channel.name}] "
                                              f"({channel.type}) failed: timed out")
    return [problems[ch.name] for ch in todo if ch.name in problems]
