"""Enumerations the SDK knows (voice names, formats, ...), without importing the SDK to check them.

Each :class:`SdkEnum` holds a built-in copy of the values, which answers nearly every check; only a
value not in it imports ``azure.ai.voicelive.models`` (a few hundred milliseconds) and asks the
SDK's enum of that name, so a voice added in a newer SDK release is accepted and a typo still gets
"did you mean" over every value either knows.
"""

from __future__ import annotations

import functools
from typing import Any, Optional, Sequence

from voicepipe.profile.nodes import show
from voicepipe.profile.spec import Enum, did_you_mean


@functools.lru_cache(maxsize=None)
def sdk_values(enum_name: str) -> tuple[str, ...]:
    """The values of the SDK's ``azure.ai.voicelive.models.<enum_name>``; empty when the SDK or the
    enum is missing (an older or newer SDK must never break validation)."""
    try:
        from azure.ai.voicelive import models
    except Exception:  # noqa: BLE001 - the SDK failing to import is reported when a session connects
        return ()
    enum = getattr(models, enum_name, None)
    try:
        return tuple(str(member.value) for member in enum) if enum is not None else ()
    except TypeError:
        return ()


class SdkEnum(Enum):
    """One of the built-in ``values`` or of the SDK's enum ``sdk_name``."""

    def __init__(self, values: Sequence[Any], sdk_name: str, *, what: Optional[str] = None):
        super().__init__(values, what=what)
        self.sdk_name = sdk_name

    def all_values(self) -> list[Any]:
        """The built-in values, then those only the installed SDK knows (imports the SDK)."""
        return self.values + [value for value in sdk_values(self.sdk_name) if value not in self.values]

    def describe(self) -> str:
        if self.what:
            return self.what
        return "one of " + ", ".join(str(x) for x in self.all_values())  # messages and docs only

    def is_known(self, value: Any) -> bool:
        return value in self.values or (isinstance(value, str) and value in sdk_values(self.sdk_name))

    def check(self, node, path, v):
        value = node.value
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            return v.error(node, path, f"expected {self.describe()}, got {show(value)}")
        if self.is_known(value):  # the built-in values first: no SDK import
            return value
        known = self.all_values()
        message = f"expected one of {', '.join(str(x) for x in known)}, got {show(value)}"
        if isinstance(value, str):
            close = did_you_mean(value, [str(x) for x in known])
            if close is not None:
                message += f" (did you mean {close!r}?)"
        return v.error(node, path, message)
