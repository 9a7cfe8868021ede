"""Pushing a run's metrics to a Prometheus Pushgateway (``metrics_push_url``).

The series pushed are exactly those the metrics file gets for the event (metrics.run_samples,
rendered by metrics.render), in the group job="hookrun", instance=<host name>, event=<event>:
one group per host and event, so that events and hosts do not replace each other's series,
while a PUT replaces the whole group, so the series of a hook that is gone do not linger.

A run refused before it started (design.md section 10, "A refused run is seen") sends only
``hookrun_last_refused_timestamp_seconds`` to the same group, with a POST, which replaces
only the series of that name (the Pushgateway's API): what the event's last run pushed stays,
as in the metrics file (metrics.write_refused), so HookrunRunRefused can compare the two.
"""

from __future__ import annotations

import base64
import socket
import urllib.parse

from orchestrator import constants as c
from orchestrator.report import metrics
from orchestrator.text import masked

JOB = "hookrun"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PUSH_TIMEOUT = c.NOTIFY_TIMEOUT

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any


def grouping_path(pairs: Iterable[tuple[str, str]]) -> str:
    """The URL path of a grouping key, ``/job/hookrun/instance/HOST/...``, from (label,
    value) pairs. A value that is empty or holds a "/" is written in the base64url form of
    the Pushgateway API (``instance@base64/Zm9v``); the others are percent-encoded."""
    parts: list[str] = []
    for label, value in pairs:
        if not value or "/" in value:
            encoded = base64.urlsafe_b64encode(value.encode("utf-8")).decode("ascii")
            parts.append(f"{label}@base64/{encoded or '='}")
        else:
            parts.append(f"{label}/{urllib.parse.quote(value, safe='')}")
    return "/" + "/".join(parts)


def push_url(url: str, event: str, host: str) -> str:
    """Where the series of ``event`` on ``host`` are PUT: URL/metrics/job/hookrun/..."""
    key = grouping_path((("job", JOB), ("instance", host), ("event", event)))
    return url.rstrip("/") + "/metrics" + key


def push(url: str, event: str, run: dict[str, Any], host: str | None = None) -> str | None:
    """PUT this run's series (``run`` holds the keyword arguments of metrics.run_samples) to
    the Pushgateway at ``url``, within PUSH_TIMEOUT in all; returns None, or a one-line
    problem that shows the URL with its password masked (never raises)."""
    return send("PUT", url, event, host, metrics.run_samples(event, **run))


def push_refused(url: str, event: str, reason: str, when: float,
                 host: str | None = None) -> str | None:
    """POST the time of ``event``'s refusal (``reason``: state, unsafe or config; ``when``:
    unix seconds) to its group at the Pushgateway at ``url``, keeping the group's other
    series; returns None or a one-line problem, as ``push``."""
    return send("POST", url, event, host,
                [(metrics.REFUSED, metrics.labels(event=event, reason=reason), when)])


def send(method: str, url: str, event: str, host: str | None,
         samples: list[metrics.Sample]) -> str | None:
    """``samples`` sent with ``method`` to the group of ``event`` on ``host`` (default: this
    host's name); None, or the problem (never raises)."""
    from orchestrator.report import web

    target = push_url(url, event, host or socket.gethostname())
    body = metrics.render(samples).encode("utf-8")
    try:
        reply = web.send(method, target, body, headers={"Content-Type": CONTENT_TYPE},
                         timeout=PUSH_TIMEOUT)
    except (OSError, ValueError) as error:
        return f"metrics push to {masked(target)} failed: {web.failure(error, target)}"
    if web.redirect(reply.status):
        return f"metrics push to {masked(target)} failed: {web.redirected(reply, target)}"
    if reply.status >= 400:
        # The Pushgateway says in the body why it refused the series.
        said = reply.body[:300].decode("utf-8", "replace").strip().replace("\n", " ")
        return web.scrubbed(f"metrics push to {masked(target)} failed: HTTP "
                            f"{reply.status} {said}", target).rstrip()
    return None
