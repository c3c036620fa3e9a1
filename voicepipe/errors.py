"""Errors that reach the user as one clear line, without a traceback.

    VoicepipeError            base; ``exit_code`` says how the CLI ends
    ├── UsageError            bad command line, profile or plugin (exit 2)
    │   └── ProfileError      one or more profile problems, each ``file:line:col: key: problem (hint)``
    └── SessionError          the session could not start or went wrong at run time (exit 1)

Anything else that escapes is a bug and keeps its traceback.
"""

from __future__ import annotations


class VoicepipeError(Exception):
    exit_code = 1


class UsageError(VoicepipeError):
    exit_code = 2


class ProfileError(UsageError):
    """All the problems found in a profile, reported together."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class SessionError(VoicepipeError):
    exit_code = 1
