"""Where a session connects and with which credential, and opening that connection in bounded time."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import os
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, AsyncIterator, Optional
from urllib.parse import urlsplit

from voicepipe.cycles import release_sdk_connection
from voicepipe.errors import SessionError, UsageError

if TYPE_CHECKING:
    from voicepipe.profile.model import Profile

API_KEY_ENV = "AZURE_VOICELIVE_API_KEY"
EMULATOR = "emulator"
DEFAULT_CONNECT_TIMEOUT_S = 15.0
#: the key the embedded emulator accepts when the environment holds none
EMULATOR_KEY = "voicepipe-emulator"


@dataclass
class Target:
    """The resolved connection settings of a profile."""

    endpoint: str
    auth: str  # "api-key" | "entra"
    model: Optional[str] = None
    api_version: Optional[str] = None
    agent: dict = field(default_factory=dict)
    credential_scopes: Any = None
    connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S
    emulator: dict = field(default_factory=dict)

    @property
    def is_emulator(self) -> bool:
        return self.endpoint == EMULATOR

    def describe(self) -> str:
        what = f"agent {self.agent['name']} (project {self.agent['project']})" if self.agent else f"model {self.model}"
        where = "the embedded emulator" if self.is_emulator else self.endpoint
        return f"{what} at {where}, auth {self.auth}"

    def connect_kwargs(self) -> dict:
        kwargs: dict[str, Any] = {}
        if self.model:
            kwargs["model"] = self.model
        if self.api_version:
            kwargs["api_version"] = self.api_version
        if self.credential_scopes:
            kwargs["credential_scopes"] = self.credential_scopes
        if self.agent:
            kwargs["agent_name"] = self.agent["name"]
            kwargs["project_name"] = self.agent["project"]
            for key in ("version", "conversation_id", "authentication_identity_client_id", "foundry_resource_override"):
                if key in self.agent:
                    kwargs["agent_version" if key == "version" else key] = self.agent[key]
        return kwargs


def resolve_target(profile: Profile, environ: Optional[dict] = None) -> Target:
    """Turn the profile's ``connection:`` section into a :class:`Target`, checking what can be
    checked without the network (an endpoint, credentials for the chosen auth mode)."""
    env = os.environ if environ is None else environ
    conn = profile.connection
    endpoint = str(conn.get("endpoint") or "").strip()
    where = profile.location("connection", "endpoint") if "endpoint" in conn else str(profile.path)
    if not endpoint:
        raise UsageError(
            f"{where}: connection.endpoint is not set (set AZURE_VOICELIVE_ENDPOINT, or use 'emulator' to run offline)"
        )
    if endpoint != EMULATOR:
        parts = urlsplit(endpoint)
        if parts.scheme not in ("https", "http", "wss", "ws") or not parts.netloc:
            raise UsageError(
                f"{where}: connection.endpoint: {endpoint!r} is not a URL "
                "(expected https://<resource>.services.ai.azure.com/ or 'emulator')"
            )
    local = endpoint == EMULATOR or is_loopback(endpoint)  # an emulator: there is no one to sign in to
    default_auth = "api-key" if (env.get(API_KEY_ENV) or local) else "entra"
    auth = conn.get("auth", default_auth)
    if auth == "api-key" and not local and not env.get(API_KEY_ENV):
        raise UsageError(
            f"{profile.location('connection')}: auth is api-key but {API_KEY_ENV} is not set "
            "(export it, or use auth: entra after `az login`)"
        )
    if not conn.get("model") and not conn.get("agent"):
        raise UsageError(f"{profile.location('connection')}: connection needs a model or an agent")
    return Target(
        endpoint=endpoint,
        auth=auth,
        model=conn.get("model"),
        api_version=conn.get("api_version"),
        agent=dict(conn.get("agent") or {}),
        credential_scopes=conn.get("credential_scopes"),
        connect_timeout_s=float(conn.get("connect_timeout_s", DEFAULT_CONNECT_TIMEOUT_S)),
        emulator=dict(conn.get("emulator") or {}),
    )


def is_loopback(endpoint: str) -> bool:
    """Whether a URL endpoint is on this machine (a local emulator, most likely)."""
    import ipaddress

    host = (urlsplit(endpoint).hostname or "").strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@contextlib.asynccontextmanager
async def open_credential(target: Target, environ: Optional[dict] = None) -> AsyncIterator[Any]:
    """The SDK credential for ``target``: a key credential, or Entra's ``DefaultAzureCredential``
    (a local stand-in for the embedded emulator, which takes any bearer token: offline there is
    no one to sign in to)."""
    env = os.environ if environ is None else environ
    if target.auth == "api-key":
        from azure.core.credentials import AzureKeyCredential

        yield AzureKeyCredential(env.get(API_KEY_ENV) or EMULATOR_KEY)
        return
    if target.is_emulator:
        yield _EmulatorToken()
        return
    from azure.identity.aio import DefaultAzureCredential

    credential = DefaultAzureCredential()
    try:
        yield _RedactedTokens(credential)
    finally:
        await credential.close()


class _EmulatorToken:
    """The bearer token the embedded emulator is given under ``auth: entra``."""

    async def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        import time

        from azure.core.credentials import AccessToken

        return AccessToken(EMULATOR_KEY, int(time.time()) + 3600)

    async def close(self) -> None:
        pass

    async def __aenter__(self) -> "_EmulatorToken":
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        pass


class _RedactedTokens:
    """An async token credential that registers every token it hands out with the redactor,
    so that a bearer token echoed in an error or a URL is masked wherever it is written."""

    def __init__(self, credential: Any) -> None:
        self._credential = credential

    async def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        from voicepipe.redact import REDACTOR

        token = await self._credential.get_token(*scopes, **kwargs)
        REDACTOR.add(token.token)
        return token

    async def close(self) -> None:
        await self._credential.close()

    async def __aenter__(self) -> "_RedactedTokens":
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._credential, name)


@contextlib.asynccontextmanager
async def connect(target: Target, endpoint_url: str, credential: Any) -> AsyncIterator[Any]:
    """Open the Voice Live connection; fail with one clear line within ``connect_timeout_s``.

    The SDK ignores its own handshake timeout, so the whole handshake (token included) is bounded
    here.
    """
    from azure.ai.voicelive.aio import connect as sdk_connect

    manager = sdk_connect(credential=credential, endpoint=endpoint_url, **target.connect_kwargs())
    where = "the embedded emulator" if target.is_emulator else urlsplit(endpoint_url).netloc or endpoint_url
    opened: list = []  # the HTTP session the SDK makes for this attempt
    attempt = _ATTEMPT_SESSIONS.set(opened)
    _track_sdk_sessions()
    try:
        connection = await _opened(manager, target, where)
    except BaseException:
        # the SDK closes its HTTP session only on an HTTP error: a timeout or a cancel (a stop
        # asked for while connecting) would leave it open ("Unclosed client session" at exit)
        for session in opened:
            with contextlib.suppress(BaseException):
                await asyncio.shield(session.close())
        raise
    finally:
        _ATTEMPT_SESSIONS.reset(attempt)
    try:
        yield connection
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(manager.__aexit__(None, None, None), 5)
        release_sdk_connection(connection)


async def _opened(manager: Any, target: Target, where: str) -> Any:
    """The SDK connection, or one clear error within ``connect_timeout_s``."""
    try:
        return await asyncio.wait_for(manager.__aenter__(), target.connect_timeout_s)
    except asyncio.TimeoutError:
        raise SessionError(
            f"could not connect to {where} within {target.connect_timeout_s:g} s "
            "(check connection.endpoint and the network; raise connection.connect_timeout_s if it is slow)"
        ) from None
    except Exception as exc:
        message = _explain_connect_error(exc, target, where)
        if type(exc).__name__ in ("CredentialUnavailableError", "ClientAuthenticationError") or _refused(message):
            raise UsageError(message) from None  # the credentials are the user's to fix: exit 2
        raise SessionError(message) from None


#: the HTTP sessions the SDK opens during the current connection attempt (see _track_sdk_sessions)
_ATTEMPT_SESSIONS: contextvars.ContextVar[Optional[list]] = contextvars.ContextVar("voicepipe_attempt_sessions",
                                                                                  default=None)


def _track_sdk_sessions() -> None:
    """Let :func:`connect` see the ``aiohttp.ClientSession`` the SDK makes for a connection attempt.

    The SDK module reads ``aiohttp.ClientSession`` from its module global ``aiohttp``; that global
    becomes a copy of the aiohttp module whose ``ClientSession`` also records each session in the
    current attempt's list. Every other name is the module's own (copied, so reading them costs
    what it did)."""
    import types

    import aiohttp
    from azure.ai.voicelive.aio import _patch as sdk

    if getattr(sdk.aiohttp, "_voicepipe_tracked", False) or sdk.aiohttp is not aiohttp:
        return
    real_session = aiohttp.ClientSession

    def client_session(*args: Any, **kwargs: Any) -> Any:
        session = real_session(*args, **kwargs)
        opened = _ATTEMPT_SESSIONS.get()
        if opened is not None:
            opened.append(session)
        return session

    tracked = types.ModuleType(aiohttp.__name__, aiohttp.__doc__)
    tracked.__dict__.update(aiohttp.__dict__)
    tracked.ClientSession = client_session  # type: ignore[attr-defined]
    tracked._voicepipe_tracked = True  # type: ignore[attr-defined]
    sdk.aiohttp = tracked


def _refused(message: str) -> bool:
    return " refused the connection: 401 " in message or " refused the connection: 403 " in message


def _explain_connect_error(exc: BaseException, target: Target, where: str) -> str:
    from voicepipe.redact import REDACTOR

    text = REDACTOR.redact(str(exc))
    auth_note = (
        f"the api-key from {API_KEY_ENV}" if target.auth == "api-key" else "the Entra ID token (DefaultAzureCredential)"
    )
    status = _http_status(exc, text)
    if status == 401:
        return f"{where} refused the connection: 401 Unauthorized: {auth_note} was not accepted (check it is for this resource)"
    if status == 403:
        return (
            f"{where} refused the connection: 403 Forbidden: {auth_note} lacks access "
            "(for Entra ID, assign the 'Cognitive Services User' role on the resource)"
        )
    if type(exc).__name__ in ("CredentialUnavailableError", "ClientAuthenticationError"):
        first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
        return f"no Entra ID credential available ({first}); run `az login`, or set {API_KEY_ENV} and auth: api-key"
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return f"could not connect to {where}: {first}"


def _http_status(exc: BaseException, text: str) -> Optional[int]:
    """The HTTP status that refused the WebSocket upgrade: aiohttp's, which the SDK wraps, else
    the one its message starts with (never a number inside the URL it quotes)."""
    seen: Optional[BaseException] = exc
    for _ in range(8):  # a chain, not a cycle
        if seen is None:
            break
        status = getattr(seen, "status", None)
        if isinstance(status, int):
            return status
        seen = seen.__cause__ or seen.__context__
    found = re.search(r"\b([1-5]\d\d)\b", text.split("url=")[0])
    return int(found.group(1)) if found else None
