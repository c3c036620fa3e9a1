"""A served profile's ``serve:`` section (validated by the profile schema), with its defaults.

```yaml
serve:
  max_sessions: 20              # this profile's sessions at once in one process
  drain_timeout_s: 30           # on SIGTERM, how long sessions in progress may go on
  allowed_origins: [https://app.example.com]   # browser pages allowed besides the server's own; '*': any
  auth: token                   # token: callers present the token from token_env; none: anyone
  token_env: VOICEPIPE_SERVE_TOKEN
  max_message_rate: 200         # WebSocket messages a second per connection (bursts up to 2 s of it)
  max_message_bytes: 262144     # the largest WebSocket message a caller may send
  metrics_token_env: VOICEPIPE_METRICS_TOKEN   # /metrics needs 'Authorization: Bearer <its value>'
```

The tokens themselves are never in the profile: only the names of the environment variables
holding them. ``/metrics`` is one endpoint per process: the profiles served together that set
``metrics_token_env`` must name the same variable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from voicepipe.profile.schema import EMULATOR, SERVE_TOKEN_ENV

DEFAULT_MAX_SESSIONS = 20
DEFAULT_DRAIN_TIMEOUT_S = 30.0
DEFAULT_MAX_MESSAGE_RATE = 200.0
DEFAULT_MAX_MESSAGE_BYTES = 256 * 1024


@dataclass(frozen=True)
class ServeSettings:
    """The ``serve:`` section of one profile."""

    max_sessions: int = DEFAULT_MAX_SESSIONS
    drain_timeout_s: float = DEFAULT_DRAIN_TIMEOUT_S
    #: origins allowed besides the server's own (``*``: any)
    allowed_origins: tuple = ()
    auth: str = "token"
    token_env: str = SERVE_TOKEN_ENV
    max_message_rate: float = DEFAULT_MAX_MESSAGE_RATE
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    #: the environment variable holding the token ``/metrics`` needs (None: ``/metrics`` is open)
    metrics_token_env: Optional[str] = None

    @classmethod
    def of(cls, profile: Any) -> "ServeSettings":
        """The settings of ``profile`` (already validated), defaults for what it leaves out."""
        section = profile.section("serve") if profile is not None else {}
        fields = {key: section[key] for key in cls.__dataclass_fields__ if key in section}
        if "allowed_origins" in fields:
            fields["allowed_origins"] = tuple(fields["allowed_origins"])
        return cls(**fields)


def uses_emulator(profile: Any) -> bool:
    """Whether ``profile`` talks to the embedded emulator (no paid sessions behind it)."""
    return str(profile.connection.get("endpoint") or "").strip() == EMULATOR
