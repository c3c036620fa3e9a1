"""Who may start a session: the checks a caller passes before a media connection is accepted.

Every refusal is an HTTP response sent *before* the WebSocket upgrade (so a refused caller never
holds a socket open), with a status and a one-line reason that names what to fix and never a
secret; each is counted by reason for ``/metrics``. In order:

1. **origin** (403): a browser WebSocket carries an ``Origin``; it must be the server's own (the
   page it serves) or one listed in ``serve.allowed_origins`` (``*`` allows any). A client that is
   not a browser sends none and is not checked (it could send any).
2. **token** (401): with ``serve.auth: token`` the caller presents the token held in the
   environment variable ``serve.token_env`` (``VOICEPIPE_SERVE_TOKEN``), either as
   ``Authorization: Bearer <token>`` or, since a browser cannot set headers on a WebSocket, as a
   ``Sec-WebSocket-Protocol`` entry ``voicepipe.token.<token>`` next to :data:`PROTOCOL` (the
   transport answers with :data:`PROTOCOL`, never echoing the token). Compared in constant time.
3. **capacity** (503): the server is draining, or full (per process or per profile).

Once connected, a transport bounds what the caller sends: messages larger than
:attr:`Guard.max_frame_bytes` (``web.WebSocketResponse(max_msg_size=...)``), and faster than
``serve.max_message_rate`` (:meth:`Guard.rate_limiter`); it closes with :data:`CLOSE_POLICY` or
:data:`CLOSE_TOO_BIG` and the reason, and reports it with :meth:`Guard.violation`.

Starting the server without a token for a profile that would open paid sessions (any endpoint but
the embedded emulator) is refused: :class:`Guard` raises a usage error naming the variable to set.

``/metrics`` (:meth:`Guard.metrics_refusal`): open unless a served profile sets
``serve.metrics_token_env``; then a scrape must send ``Authorization: Bearer <that variable's
value>`` (401 otherwise), as a Prometheus scrape job does with ``authorization:`` /
``credentials_file`` (https://prometheus.io/docs/prometheus/latest/configuration/configuration/#scrape_config).
A token of its own, not the callers': whoever scrapes should not be able to place calls.
``/healthz`` and ``/readyz`` stay open for the orchestrator's probes.
"""

from __future__ import annotations

import hmac
import os
import time
from typing import TYPE_CHECKING, Callable, Mapping, Optional
from urllib.parse import urlsplit

from aiohttp import web

from voicepipe.errors import UsageError
from voicepipe.redact import REDACTOR
from voicepipe.serve.settings import DEFAULT_MAX_MESSAGE_BYTES, uses_emulator

if TYPE_CHECKING:
    from voicepipe.serve.host import ServedProfile, SessionHost

#: the largest WebSocket message a caller may send, unless ``serve.max_message_bytes`` says otherwise
MAX_FRAME_BYTES = DEFAULT_MAX_MESSAGE_BYTES
#: the WebSocket subprotocol of the media connection; a browser offers it next to its token entry
PROTOCOL = "voicepipe.v1"
TOKEN_PROTOCOL_PREFIX = "voicepipe.token."
#: WebSocket close codes for a caller that broke the limits
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
#: a burst may hold this many seconds' worth of messages
BURST_S = 2.0

TOKEN_HINT = "send 'Authorization: Bearer <token>' or the WebSocket subprotocol 'voicepipe.token.<token>'"


class RateLimiter:
    """A token bucket for one connection: :meth:`allow` once per message received."""

    __slots__ = ("rate", "burst", "tokens", "last", "exceeded", "reason", "_clock", "_on_exceeded")

    def __init__(self, rate: float, on_exceeded: Callable[[], None] = lambda: None,
                 clock: Callable[[], float] = time.monotonic):
        self.rate = float(rate)
        self.burst = max(1.0, self.rate * BURST_S)
        self.tokens = self.burst
        self._clock = clock
        self.last = clock()
        self.exceeded = False
        self._on_exceeded = on_exceeded
        #: the close reason to send when :meth:`allow` said no
        self.reason = f"too many messages: at most {self.rate:g} a second (serve.max_message_rate)"

    def allow(self) -> bool:
        """Whether one more message is within the rate; the first "no" is counted."""
        now = self._clock()
        tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if tokens >= 1.0:
            self.tokens = tokens - 1.0
            return True
        self.tokens = tokens
        if not self.exceeded:
            self.exceeded = True
            self._on_exceeded()
        return False


class Guard:
    """Admission checks for one serving process."""

    max_frame_bytes = MAX_FRAME_BYTES

    def __init__(self, host: SessionHost, environ: Optional[Mapping[str, str]] = None):
        """Read each profile's token from the environment; a profile that would open paid
        sessions for anyone is a usage error."""
        self.host = host
        env = os.environ if environ is None else environ
        self._tokens: dict[str, Optional[bytes]] = {}
        self._origins: dict[str, Optional[frozenset]] = {}
        #: profiles anyone may call: ``serve.auth: none``, or the emulator without a token set
        self.open_profiles: list[str] = []
        for served in host.profiles.values():
            token = _token_for(served, env)
            self._tokens[served.name] = token
            if token is None:
                self.open_profiles.append(served.name)
            origins = served.settings.allowed_origins
            self._origins[served.name] = None if "*" in origins else frozenset(_origin_key(o) for o in origins)
        if host.profiles:
            self.max_frame_bytes = max(s.settings.max_message_bytes for s in host.profiles.values())
        #: the variable holding the scrape token, and the token (``None``: ``/metrics`` is open)
        self.metrics_token_env, self.metrics_token = _metrics_token(list(host.profiles.values()), env)

    def metrics_refusal(self, request: web.Request) -> Optional[web.Response]:
        """``None`` when ``request`` may read ``/metrics``, else the 401 to send (a line that
        says what is missing and nothing of the token)."""
        expected = self.metrics_token
        if expected is None:
            return None
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        presented = value.strip().encode() if scheme.lower() == "bearer" else b""
        if not presented:
            why = "a scrape token is needed: send 'Authorization: Bearer <token>'"
        elif not hmac.compare_digest(presented, expected):
            why = "the scrape token is not valid"
        else:
            return None
        self.host.log.info("metrics_refused", reason=why, remote=request.remote)
        return web.Response(status=401, text=why + "\n", headers={"WWW-Authenticate": 'Bearer realm="voicepipe metrics"'})

    async def admit(self, request: web.Request, served: ServedProfile) -> Optional[web.Response]:
        """``None`` when the caller may start a session of ``served``, else the refusal to send."""
        origin = request.headers.get("Origin")
        if origin is not None and not self.origin_allowed(origin, request, served):
            shown = "".join(ch for ch in origin[:120] if ch.isprintable())
            return self._refuse(served, "origin", 403,
                                f"pages from {shown} may not start sessions here (serve.allowed_origins)")
        expected = self._tokens.get(served.name)
        if expected is not None:
            presented = presented_token(request)
            if presented is None:
                return self._refuse(served, "unauthorized", 401, f"a token is needed: {TOKEN_HINT}")
            if not hmac.compare_digest(presented, expected):
                return self._refuse(served, "unauthorized", 401, "the token is not valid")
        reason = self.host.refusal(served)
        if reason is not None:
            return self._refuse(served, "draining" if not self.host.accepting else "capacity", 503, reason)
        return None

    def origin_allowed(self, origin: str, request: web.Request, served: ServedProfile) -> bool:
        """The server's own origin (same host and port as the request), or one the profile lists."""
        allowed = self._origins.get(served.name, frozenset())
        if allowed is None:
            return True
        key = _origin_key(origin)
        if key in allowed:
            return True
        netloc = urlsplit(key).netloc
        return bool(netloc) and netloc == (request.host or "").lower()

    def rate_limiter(self, served: ServedProfile) -> RateLimiter:
        """A new connection's message-rate bound; its first refusal is counted as ``message_rate``."""
        return RateLimiter(served.settings.max_message_rate, lambda: self.violation(served, "message_rate"))

    def violation(self, served: ServedProfile, reason: str) -> None:
        """Count a connected caller cut off for breaking a limit (``message_rate``, ``message_size``,
        ``protocol``)."""
        self.host.refused(reason, served.name)
        self.host.log.warning("caller_refused", profile=served.name, reason=reason)

    def _refuse(self, served: ServedProfile, reason: str, status: int, message: str) -> web.Response:
        self.host.refused(reason, served.name)
        self.host.log.info("caller_refused", profile=served.name, reason=reason, status=status)
        response = refuse(status, message)
        if status == 401:
            response.headers["WWW-Authenticate"] = 'Bearer realm="voicepipe"'
        return response


def presented_token(request: web.Request) -> Optional[bytes]:
    """The token a caller sent, from ``Authorization: Bearer`` or a ``voicepipe.token.`` subprotocol."""
    authorization = request.headers.get("Authorization", "")
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip().encode()
    for header in request.headers.getall("Sec-WebSocket-Protocol", ()):
        for entry in header.split(","):
            entry = entry.strip()
            if entry.startswith(TOKEN_PROTOCOL_PREFIX) and len(entry) > len(TOKEN_PROTOCOL_PREFIX):
                return entry[len(TOKEN_PROTOCOL_PREFIX):].encode()
    return None


def _token_for(served: ServedProfile, env: Mapping[str, str]) -> Optional[bytes]:
    settings = served.settings
    if settings.auth == "none":
        return None
    token = (env.get(settings.token_env) or "").strip()
    if token:
        if not all(ch.isprintable() and not ch.isspace() and ch != "," for ch in token):
            raise UsageError(f"{settings.token_env}: the token must be printable, without spaces or commas "
                             "(it travels in a header)")
        REDACTOR.watch_env(settings.token_env)  # masked in every log line, whatever the variable is called
        return token.encode()
    if uses_emulator(served.profile):
        return None  # the offline demo: nothing paid behind it
    raise UsageError(
        f"{served.profile.location('serve')}: {served.name} opens paid sessions but {settings.token_env} is not "
        f"set: export {settings.token_env}=<a long random token> for callers to present, or set serve.auth: none "
        "to let anyone in"
    )


def _metrics_token(profiles: list, env: Mapping[str, str]) -> tuple[Optional[str], Optional[bytes]]:
    """The scrape token's variable and value from the profiles' ``serve.metrics_token_env``."""
    named = {p.settings.metrics_token_env: p for p in profiles if p.settings.metrics_token_env}
    if not named:
        return None, None
    if len(named) > 1:
        shown = ", ".join(f"{p.profile.path}: {name}" for name, p in named.items())
        raise UsageError(f"serve.metrics_token_env differs between the profiles served together ({shown}); "
                         "/metrics is one endpoint per process: name the same variable in each")
    name, served = next(iter(named.items()))
    token = (env.get(name) or "").strip()
    if not token:
        raise UsageError(f"{served.profile.location('serve')}: serve.metrics_token_env names {name}, which is not set: "
                         f"export {name}=<a long random token> for the metrics scraper to send, or remove the key "
                         "to leave /metrics open")
    if not all(ch.isprintable() and not ch.isspace() for ch in token):
        raise UsageError(f"{name}: the token must be printable, without spaces (it travels in a header)")
    REDACTOR.watch_env(name)
    return name, token.encode()


def _origin_key(origin: str) -> str:
    return origin.strip().rstrip("/").lower()


def refuse(status: int, reason: str) -> web.Response:
    """A refusal the page can show as it is: ``{"error": reason}``."""
    return web.json_response({"error": reason}, status=status, headers={"Retry-After": "5"} if status == 503 else None)
