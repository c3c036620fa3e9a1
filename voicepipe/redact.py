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

Text that arrives in pieces (the model's streamed deltas) can split a value so that no piece holds
it: :meth:`Redactor.secret_prefix_length` tells a writer to wait for the next piece, and
:meth:`Redactor.redact_pieces` masks a value across the pieces it waited for.
"""

from __future__ import annotations

import json
import os
import re
import threading
from typing import Any, Mapping, Optional, Sequence
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
    r"|\bpasswd)[\"']?\s*[:=]\s*[\"']?(?i:(?:bearer|basic)\s+)?)(?P<v2>[^\s\"'&,;{}\[\])]+)",
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
        self._needles: tuple[str, ...] = _ANCHORS
        self._unfolded: tuple[str, ...] = ()
        # (the search of _tail_regex, first character -> (longest length, variants)), swapped whole
        self._beginnings: tuple[Optional[re.Pattern[str]], dict[str, tuple[int, tuple[str, ...]]]] = (None, {})
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
        self._needles = _needles({v for v in variants if v.isascii()})
        # lower-casing may change non-ASCII text around a variant (a final sigma): looked for as it is
        self._unfolded = tuple(v for v in variants if not v.isascii())
        heads: dict[str, list[str]] = {}
        for variant in variants:
            heads.setdefault(variant[0], []).append(variant)
        self._beginnings = (
            _tail_regex(variants) if variants else None,
            {first: (max(map(len, group)), tuple(group)) for first, group in heads.items()},
        )

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
        # one lower-cased copy and a plain loop of substring tests (no generator: this runs for
        # every line the recorder and the log write, and most text holds none of them)
        lowered = text.lower()
        for needle in self._needles:
            if needle in lowered:
                return True
        for variant in self._unfolded:
            if variant in text:
                return True
        return False

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

    def secret_prefix_length(self, text: str) -> int:
        """How many characters at the end of ``text`` could be the start of a known secret value: the
        length of the longest end of ``text`` that is a proper beginning of one (0 when none is).

        For text written piece by piece as it streams in: a piece that ends so may be followed by
        the rest of the secret, and masking each piece on its own would then mask nothing. Only the
        values are looked for, not the shapes. One regular-expression search for most text.
        """
        tail, heads = self._beginnings
        if tail is None or not text:
            return 0
        match = tail.search(text)
        if match is None:
            return 0
        size = len(text)
        if match.lastgroup != "long":
            return size - match.start()  # the leftmost short beginning, and no long one before it
        best = 0
        for first, (longest, variants) in heads.items():
            index = text.find(first, max(match.start(), size - longest + 1))  # a proper beginning is shorter
            while index != -1 and size - index > best:
                end = text[index:]
                if any(len(variant) > len(end) and variant.startswith(end) for variant in variants):
                    best = size - index  # the leftmost candidate is the longest for this first character
                    break
                index = text.find(first, index + 1)
        return best

    def redact_pieces(self, pieces: Sequence[str]) -> list[str]:
        """``pieces`` of one text (streamed deltas) with every secret masked, also one split across
        pieces: its mask goes into the piece where it starts and its other characters are dropped,
        so that the pieces joined are ``redact("".join(pieces))`` and there are as many of them."""
        text = "".join(pieces)
        if not text or not self._may_hold_secret(text):
            return list(pieces)
        spans = [(match.start(), match.end(), self._mask(match)) for match in self._regex.finditer(text)]
        if not spans:
            return list(pieces)
        result = []
        start = 0
        for piece in pieces:
            end = start + len(piece)
            parts = []
            position = start
            for first, last, replacement in spans:
                if last <= position or first >= end:
                    continue
                if first >= position:  # starts here: the text before it, then its mask
                    parts.append(text[position:first])
                    parts.append(replacement)
                position = min(last, end)  # the match's characters in this piece are dropped
            parts.append(text[position:end])
            result.append("".join(parts))
            start = end
        return result

    def contains_secret(self, text: str) -> bool:
        """Whether ``text`` holds anything :meth:`redact` would mask."""
        return bool(text) and self._may_hold_secret(text) and self._regex.search(text) is not None


#: :meth:`Redactor.secret_prefix_length`'s regular expression tells beginnings up to this long itself
_TAIL_CHAIN = 16


def _tail_regex(variants: set[str]) -> re.Pattern[str]:
    """Finds the leftmost place where either text ends with a proper beginning of a variant at
    most :data:`_TAIL_CHAIN` long (``a(?:b(?:c)?)?\\Z``), or a longer beginning starts (group
    ``long``: its first characters). One C-speed search rules out most text; only ``long``
    matches need a closer look."""
    longs, chains = [], []
    for variant in sorted(variants, key=len, reverse=True):
        head = variant[: min(_TAIL_CHAIN, len(variant) - 1)]
        chain = ""
        for char in reversed(head[1:]):
            chain = f"(?:{re.escape(char)}{chain})?"
        chains.append(re.escape(head[0]) + chain + r"\Z")
        if len(variant) - 1 > _TAIL_CHAIN:
            longs.append(re.escape(variant[: _TAIL_CHAIN + 1]))
    parts = (["(?P<long>" + "|".join(longs) + ")"] if longs else []) + chains
    return re.compile("|".join(parts))


def _needles(variants: set[str]) -> tuple[str, ...]:
    """What :meth:`Redactor._may_hold_secret` looks for in lower-cased text: the anchors and the
    (ASCII) variants lower-cased, without those that hold another one (a variant holding ``key``
    is found by ``key``). Text that holds an ASCII variant holds it lower-cased once lowered, so
    this finds at least what testing the anchors in the lowered text and the variants in the text
    found; the regular expression decides."""
    candidates = set(_ANCHORS) | {variant.lower() for variant in variants}
    needles = [n for n in candidates if not any(other != n and other in n for other in candidates)]
    return tuple(sorted(needles, key=len))


def _is_secret_key(key: Any) -> bool:
    return isinstance(key, str) and key.lower().replace("-", "_") in SECRET_KEYS


#: the instance every writer (logs, transcript, recorder, console, CLI errors) uses
REDACTOR = Redactor()
