"""The current time: a function tool bound to a plain Python function, no plugin needed.

    session:
      tools:
        - type: function
          name: get_current_time
          parameters:
            type: object
            properties: {timezone: {type: string, description: "an IANA name, e.g. Asia/Tokyo"}}
    tools:
      handlers:
        get_current_time: plugins/clock.py:current_time

The model's arguments arrive as keyword arguments. A sync function like this one runs in a thread,
so it may block; an ``async def`` is awaited on the event loop.
"""

from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


def current_time(timezone: str = "UTC") -> dict:
    try:
        now = datetime.now(ZoneInfo(timezone))
    except (ZoneInfoNotFoundError, ValueError):
        return {"error": f"unknown time zone {timezone!r}; use an IANA name such as Europe/Paris"}
    return {"timezone": timezone, "time": now.strftime("%H:%M"), "weekday": now.strftime("%A")}
