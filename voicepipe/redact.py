"""Keeping credentials out of everything voicepipe writes: logs, transcripts, recordings, the console.

A :class:`Redactor` masks two kinds of secrets:

* **values** it knows: ``AZURE_VOICELIVE_API_KEY`` and every environment variable whose name says it
  holds a credential (``…KEY``, ``…TOKEN``, ``…SECRET``, ``…PASSWORD``, ``…CREDENTIAL…``), plus
  anything registered at run time with :meth:`Redactor.add` (the Entra bearer token, for one);
* **shapes** that carry credentials: ``api-key: …`` and ``Authorization: Bearer …`` headers,
  ``api-key=``/``access_token=``/``token=``/``sig=`` query parameters (agent access tokens in URLs
  included), and JSON web tokens wherever they appear.

Everything is one precompiled regular expression, so text without secrets costs one scan. Values
shorter than :data:`MIN_SECRET_LENGTH` are not registered: masking ``"1234"`` everywhere would do
more harm than good. :data:`REDACTOR` is the instance every writer uses.
"""

from __future__ import annotations

import json
import os
import re
import threading
from typing import Any, Mapping, Optional
from urllib.parse import quote

MASK = "***"
MIN_SECRET_LENGTH = 6
#: environment variables always treated as secrets, whatever their name says
ALWAYS_SECRET_ENV = ("AZURE_VOICELIVE_API_KEY",)
#: a variable name whose ``_``-separated words include one of these holds a credential
_SECRET_NAME = re.compile(
    r"(?:^|_)(?:API_?KEY|KEY|KEYS|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIALS?|CONNECTION_STRING|SAS)(?:_|$)", re.I
)
#: dictionary keys whose string values are masked by :meth:`Redactor.redact_obj`
SECRET_KEYS = frozenset(
    {
        "api_key",
        "apikey",
        "x_api_key",
        "authorization",
        "access_token",
        "agent_access_token",
        "refresh_token",
        "id_token",
        "bearer_token",
        "token",
        "client_secret",
        "password",
        "passwd",
        "secret",
    }
)

# Each shape is (prefix group, value group): the prefix stays, the value is masked.
_SHAPES = [
    # Authorization: Bearer <token> (also inside JSON and Python reprs)
    r"(?P<p1>\b(?:Bearer|bearer|BEARER)\s+)(?P<v1>[A-Za-z0-9\-._~+/]{8,}=*)",
    # api-key: value, "api-key": "value", api_key=value, password: value …
    r"(?P<p2>(?i:\b(?:x-)?api[-_]?key|\bocp-apim-subscription-key|\bauthorization|\bclient[-_]?secret|\bpassword"
    r"|\bpasswd)[\"']?\s*[:=]\s*[\"']?(?i:(?:bearer|basic)\s+)?)(?P<v2>[^\s\"'&,;}\])]+)",
    # ?api-key=…&access_token=…&sig=… in URLs
    r"(?P<p3>[?&;](?i:api[-_]?key|key|access[-_]?token|agent[-_]access[-_]token|token|sig|signature|code"
    r"|client[-_]secret|password)=)(?P<v3>[^&\s\"'#<>]+)",
]
# a JSON web token (Entra ID access tokens are JWTs), wherever it appears
# not \b: after "-" it would let "eyJ-eyJ-…" backtrack quadratically
_JWT = r"(?P<jwt>(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*)"
# every shape contains one of these (lower-cased): substring tests rule most text out faster than
# the regular expression can
_ANCHORS = ("bearer", "key", "authorization", "secret", "passw", "token", "sig", "code=", "eyj")


def looks_like_secret_name(name: str) -> bool:
    """Whether an environment variable's name says it holds a credential."""
    return bool(_SECRET_NAME.search(name))


class Redactor:
    """Masks known secret values and credential-shaped text.

    ``redact(text)`` for strings, ``redact_obj(obj)`` for JSON-like data (dicts, lists), which also
    masks the values of keys such as ``api_key`` or ``authorization`` whatever they hold.
    """

    def __init__(self, environ: Optional[Mapping[str, str]] = None, *, load_env: bool = True):
        self._lock = threading.Lock()
        self._env_values: frozenset[str] = frozenset()
        self._added: set[str] = set()
        self._watched: set[str] = set(ALWAYS_SECRET_ENV)
        self._regex: re.Pattern[str] = re.compile("")
        self._variants: tuple[str, ...] = ()
        self._compile()
        if load_env:
            self.refresh_env(environ)

    # -- what counts as a secret ------------------------------------------------------------------

    def add(self, secret: Optional[str]) -> None:
        """Register a secret value met at run time (a bearer token, a key read from a file)."""
        if not secret or not isinstance(secret, str) or len(secret) < MIN_SECRET_LENGTH:
            return
        with self._lock:
            if secret in self._added:
                return
            self._added.add(secret)
            self._compile()

    def watch_env(self, *names: str) -> None:
        """Treat these environment variables as secrets even if their names do not say so."""
        self._watched.update(names)
        self.refresh_env()

    def refresh_env(self, environ: Optional[Mapping[str, str]] = None) -> None:
        """Re-read the environment's secrets (cheap; called when logging is configured)."""
        env = os.environ if environ is None else environ
        values = frozenset(
            value
            for name, value in env.items()
            if (name in self._watched or looks_like_secret_name(name)) and value and len(value) >= MIN_SECRET_LENGTH
        )
        with self._lock:
            if values != self._env_values:
                self._env_values = values
                self._compile()

    def secrets(self) -> frozenset[str]:
        """The secret values currently masked."""
        return self._env_values | frozenset(self._added)

    def _compile(self) -> None:
        variants: set[str] = set()
        for secret in self._env_values | self._added:
            variants.add(secret)
            # the same value as it appears inside JSON text and in URLs
            variants.add(json.dumps(secret, ensure_ascii=False)[1:-1])
            variants.add(json.dumps(secret)[1:-1])
            variants.add(quote(secret, safe=""))
        parts = []
        if variants:
            ordered = sorted(variants, key=len, reverse=True)  # longest first: no partial masks
            parts.append("(?P<secret>" + "|".join(re.escape(v) for v in ordered) + ")")
        parts.extend(_SHAPES)
        parts.append(_JWT)
        self._regex = re.compile("|".join(parts))
        self._variants = tuple(variants)

    # -- masking ------------------------------------------------------------------------------------

    @staticmethod
    def _mask(match: re.Match[str]) -> str:
        group = match.lastgroup
        if group is None or group in ("secret", "jwt"):
            return MASK
        return match.group("p" + group[1:]) + MASK

    def redact(self, text: str) -> str:
        """``text`` with every secret masked; the same object when there is nothing to mask."""
        if not text or not self._may_hold_secret(text):
            return text
        regex = self._regex
        if regex.search(text) is None:
            return text
        return regex.sub(self._mask, text)

    def _may_hold_secret(self, text: str) -> bool:
        lowered = text.lower()
        return any(anchor in lowered for anchor in _ANCHORS) or any(v in text for v in self._variants)

    def redact_obj(self, obj: Any) -> Any:
        """A copy of ``obj`` (dicts, lists, tuples, strings, nested) with secrets masked.

        Values under credential keys (``api_key``, ``authorization``, ``token`` …) are masked
        whole; every other string is masked like :meth:`redact`. Other values pass unchanged.
        """
        if isinstance(obj, str):
            return self.redact(obj)
        if isinstance(obj, Mapping):
            result = {}
            for key, value in obj.items():
                if isinstance(value, str) and value and _is_secret_key(key):
                    result[key] = MASK
                else:
                    result[key] = self.redact_obj(value)
            return result
        if isinstance(obj, list):
            return [self.redact_obj(v) for v in obj]
        if isinstance(obj, tuple):
            return tuple(self.redact_obj(v) for v in obj)
        return obj

    def contains_secret(self, text: str) -> bool:
        """Whether ``text`` holds anything :meth:`redact` would mask."""
        return bool(text) and self._may_hold_secret(text) and self._regex.search(text) is not None


def _is_secret_key(key: Any) -> bool:
    return isinstance(key, str) and key.lower().replace("-", "_") in SECRET_KEYS


#: the instance every writer (logs, transcript, recorder, console, CLI errors) uses
REDACTOR = Redactor()
