"""HTTP requests with a total deadline, for notifications and the Pushgateway (design.md
sections 4 and 8, "Nothing can hang a run", "Credentials in URLs").

urllib's ``timeout`` bounds each read, so a server that trickles a byte every few seconds
keeps a run (and its lock) for ever. Here every connect, send and receive of a request gets
only what is left of one deadline, so the whole request (name lookup, TLS handshake and the
reply included) ends by then. Credentials in a URL (``https://user:secret@host/``) become an
HTTP basic Authorization header; the request goes to the URL without them, and messages show
the URL as ``https://user:***@host/``.
"""

from __future__ import annotations

import base64
import http.client
import socket
import time
import urllib.parse
from collections import namedtuple

from orchestrator import constants as c
from orchestrator.text import masked

TYPE_CHECKING = False
if TYPE_CHECKING:
    import ssl
    from collections.abc import Mapping, Sequence
    from typing import Any, NamedTuple

    # One address of a host: family, type, protocol, canonical name, address to connect to.
    AddrInfo = tuple[socket.AddressFamily, socket.SocketKind, int, str, tuple[Any, ...]]
    # Deadlined is mixed into socket classes only.
    SocketBase = socket.socket

    class Reply(NamedTuple):
        status: int
        reason: str
        body: bytes
        location: str | None
else:
    SocketBase = object
    Reply = namedtuple("Reply", "status reason body location")
Reply.__doc__ = """What a server answered: HTTP status, reason phrase, the first bytes of the
body, and its Location header (where a redirect points; None without one)."""
REPLY_BYTES = 1024  # what is read of a reply: enough for a Pushgateway's error message


class Deadline:
    """One moment by which a whole request must be done."""

    __slots__ = ("end",)

    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        """Seconds left, for the next blocking step; socket.timeout when none are."""
        left = self.end - time.monotonic()
        if left <= 0:
            raise socket.timeout("timed out")
        return left


class Deadlined(SocketBase):
    """A socket mixin: every send and receive waits at most until the socket's
    ``deadline``."""

    deadline: Deadline | None = None

    # The arguments are passed on as they come: socket.socket and ssl.SSLSocket differ.
    def arm(self) -> None:
        if self.deadline is not None:
            self.settimeout(self.deadline.left())

    def recv(self, *args: Any) -> bytes:
        self.arm()
        return super().recv(*args)

    def recv_into(self, *args: Any) -> int:
        self.arm()
        return super().recv_into(*args)

    def send(self, *args: Any) -> int:
        self.arm()
        return super().send(*args)

    def sendall(self, *args: Any) -> None:
        self.arm()
        return super().sendall(*args)


class DeadlineSocket(Deadlined, socket.socket):
    """A plain socket with a deadline."""


def tls_socket_class() -> type[ssl.SSLSocket]:
    """ssl.SSLSocket with the same deadline (ssl is imported only for https URLs)."""
    import ssl

    class DeadlineSSLSocket(Deadlined, ssl.SSLSocket):
        pass

    return DeadlineSSLSocket


def resolve(host: str, port: int, deadline: Deadline) -> Sequence[AddrInfo]:
    """getaddrinfo() for ``host``, waiting at most until ``deadline``: a name lookup cannot be
    interrupted, so a slow one runs in a daemon thread that is left behind (it holds no
    socket and does not keep hookrun alive)."""
    try:
        return socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM, 0, socket.AI_NUMERICHOST)
    except socket.gaierror:
        pass
    import threading

    addresses: list[Sequence[AddrInfo]] = []
    errors: list[OSError] = []

    def look_up() -> None:
        try:
            addresses.append(socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM))
        except OSError as error:
            errors.append(error)

    thread = threading.Thread(target=look_up, daemon=True)
    thread.start()
    thread.join(deadline.left())
    if addresses:
        return addresses[0]
    if errors:
        raise errors[0]
    raise socket.timeout(f"timed out looking up {host}")


def open_socket(host: str, port: int, deadline: Deadline) -> DeadlineSocket:
    """A connected DeadlineSocket to ``host``:``port``, tried address by address."""
    problem = OSError(f"no address for {host}")
    for family, kind, proto, _name, address in resolve(host, port, deadline):
        sock = DeadlineSocket(family, kind, proto)
        try:
            sock.settimeout(deadline.left())
            sock.connect(address)
        except OSError as error:
            sock.close()
            problem = error
            continue
        sock.deadline = deadline
        return sock
    raise problem


class Connection(http.client.HTTPConnection):
    """http.client's connection over a DeadlineSocket."""

    def __init__(self, host: str, port: int | None, deadline: Deadline) -> None:
        super().__init__(host, port)
        self.deadline = deadline

    def connect(self) -> None:
        self.sock = open_socket(self.host, self.port, self.deadline)


class TLSConnection(Connection):
    """The same over TLS, with the system's certificates and host name checking."""

    default_port = http.client.HTTPS_PORT

    def connect(self) -> None:
        import ssl

        sock = open_socket(self.host, self.port, self.deadline)
        context = ssl.create_default_context()
        context.sslsocket_class = tls_socket_class()
        try:
            # The handshake is one call, bounded by the socket's timeout: what is left.
            sock.settimeout(self.deadline.left())
            wrapped = context.wrap_socket(sock, server_hostname=self.host)
            self.sock = wrapped
        except BaseException:
            sock.close()
            raise
        # context.sslsocket_class (tls_socket_class) makes every socket it wraps Deadlined.
        assert isinstance(wrapped, Deadlined)
        wrapped.deadline = self.deadline


def split_credentials(url: str) -> tuple[str, str | None]:
    """(the URL without user and password, the Authorization header value or None);
    ValueError for a URL that is not http(s) with a host."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("not an http:// or https:// URL with a host")
    user, _at, host_port = parts.netloc.rpartition("@")
    if not _at:
        return url, None
    name, _colon, password = user.partition(":")
    pair = f"{urllib.parse.unquote(name)}:{urllib.parse.unquote(password)}"
    auth = "Basic " + base64.b64encode(pair.encode("utf-8")).decode("ascii")
    return urllib.parse.urlunsplit(parts._replace(netloc=host_port)), auth


def scrubbed(text: str, url: str) -> str:
    """``text`` (a message about ``url``) with the URL's user information masked wherever it
    appears, also percent-decoded, as a library's error message might quote it."""
    authority = url.partition("://")[2].split("/", 1)[0]
    user, at, _host = authority.rpartition("@")
    if not at:
        return text
    text = text.replace(url, masked(url))
    secrets = {user, urllib.parse.unquote(user)}
    name, colon, password = user.partition(":")
    if colon:
        secrets |= {password, urllib.parse.unquote(password)}
    else:
        secrets |= {name, urllib.parse.unquote(name)}
    for secret in sorted(filter(None, secrets), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def send(method: str, url: str, body: bytes = b"", headers: Mapping[str, str] | None = None,
         timeout: float = c.NOTIFY_TIMEOUT) -> Reply:
    """``method`` ``body`` to ``url`` and read the start of the reply, all within ``timeout``
    seconds; the Reply, whatever its status. OSError when the request fails or runs out of
    time (socket.timeout, a TimeoutError), ValueError for a bad URL. Messages never hold the
    URL's credentials. A redirect is not followed (it could take a token or a password to
    another host): its Reply is returned as it is, see ``redirected``."""
    deadline = Deadline(timeout)
    bare, auth = split_credentials(url)
    parts = urllib.parse.urlsplit(bare)
    kind = TLSConnection if parts.scheme == "https" else Connection
    # split_credentials refused a URL without a host, and ``bare`` has the same host.
    assert parts.hostname is not None
    # The port always given: without one, http.client reads an IPv6 address's last group as
    # the port (http://[::1]/ went to host ":" port 1, http://[::1%25eth0]/ raised).
    # An IPv6 zone is percent-encoded in a URL (RFC 6874: [fe80::1%25eth0]), not in an address.
    host = urllib.parse.unquote(parts.hostname)
    try:
        connection = kind(host, parts.port or kind.default_port, deadline)
    except http.client.HTTPException as error:
        raise ValueError(f"bad URL ({type(error).__name__}: {error})") from None
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    sent = {"User-Agent": "hookrun", "Connection": "close", **(headers or {})}
    if auth and not any(name.lower() == "authorization" for name in sent):
        # A token given on its own (a [notify] section's) is the one meant.
        sent["Authorization"] = auth
    try:
        connection.request(method, target, body=body, headers=sent)
        response = connection.getresponse()
        return Reply(response.status, response.reason, response.read(REPLY_BYTES),
                     response.getheader("Location"))
    except http.client.HTTPException as error:
        raise OSError(f"bad reply ({type(error).__name__})") from None
    finally:
        connection.close()


def failure(error: OSError | ValueError, url: str) -> str:
    """The one-line reason of a failed ``send`` to ``url``, credentials masked."""
    reason = getattr(error, "reason", None) or getattr(error, "strerror", None) or error
    if isinstance(error, socket.timeout) or str(reason) == "timed out":
        reason = "timed out"
    return scrubbed(str(reason), url)


def redirect(status: int) -> bool:
    """Whether an HTTP status is a redirect (3xx), which is never followed: a request that
    gets one did not arrive."""
    return 300 <= status < 400


def redirected(reply: Reply, url: str) -> str:
    """The one-line reason of a redirect ``reply`` to a request to ``url``: the status, and
    where it points (``https://host/***``: the host shown, so that http:// sent to https://
    is plain to see; a path, query and credentials masked, since they may be a token)."""
    said = f"HTTP {reply.status} {reply.reason}".rstrip()
    if not reply.location:
        return scrubbed(f"{said}: a redirect, not followed", url)
    return scrubbed(f"{said}: redirected to {shown_location(reply.location, url)}, "
                    "not followed", url)


def shown_location(location: str, url: str) -> str:
    """``location`` (a Location header, perhaps relative to ``url``) as a message shows it:
    scheme and host, then ``/***`` for any path or query."""
    from orchestrator.text import display_name

    try:
        parts = urllib.parse.urlsplit(urllib.parse.urljoin(split_credentials(url)[0],
                                                           location.strip()))
    except ValueError:  # a Location that is no URL (an unclosed "[" of an IPv6 host)
        return "***"
    host = parts.netloc.rpartition("@")[2]
    hidden = "/***" if parts.path.strip("/") or parts.query or parts.fragment else parts.path
    shown: str = display_name(f"{parts.scheme}://{host}{hidden}" if parts.scheme and host
                              else "***")
    return shown
