"""The HTTP side of ``voicepipe serve``: the served profiles and the routes that reach them.

Each profile is served at ``/<name>/`` (its name, from the file name unless ``logging.run_name``
says otherwise); the transports it accepts add their routes there (the browser page and its media
WebSocket for ``web``). For the process: ``/healthz`` (alive), ``/readyz`` (503 while draining or
at capacity), ``/metrics`` (Prometheus text, :mod:`voicepipe.serve.metrics`; behind a bearer
token when ``serve.metrics_token_env`` is set, :meth:`Guard.metrics_refusal`) and ``/`` (the
served profiles).
"""

from __future__ import annotations

import importlib
import os
import re
from pathlib import Path
from typing import Sequence

from aiohttp import web

from voicepipe.errors import UsageError
from voicepipe.serve.guard import Guard
from voicepipe.serve.host import ServedProfile, SessionHost
from voicepipe.serve.settings import ServeSettings

#: transport name -> the module whose ``add_routes(app, served, host, guard)`` serves it
TRANSPORT_ROUTES = {
    "web": "voicepipe.serve.browser",
    "acs": "voicepipe.serve.acs",
    "twilio": "voicepipe.serve.twilio",
}
#: what a profile whose audio is a device or a file is served to
DEFAULT_TRANSPORTS = frozenset({"web"})
_ROUTE_NAME = re.compile(r"[^a-z0-9-]+")

HOST_KEY = web.AppKey("host", SessionHost)
GUARD_KEY = web.AppKey("guard", Guard)


def load_served(paths: Sequence[str], overrides: Sequence[str] = ()) -> list[ServedProfile]:
    """Load, validate and import the plugins of every profile to serve; a problem in any of them
    is a usage error before the server listens."""
    from voicepipe.builtin.audio import TRANSPORT_BACKENDS
    from voicepipe.plugins import configure_plugins, load_plugin_set
    from voicepipe.profile import load_profile

    served: dict[str, ServedProfile] = {}
    for path in paths:
        # one table per caller on the server's stdout helps nobody; metrics.json has it
        profile = load_profile(path, ["metrics.table=false", *overrides])
        plugins = load_plugin_set(profile, without=("console",))  # callers are not at this terminal
        configure_plugins(plugins.manager(), profile)
        audio = profile.audio or {}
        named = {
            str((audio.get(direction) or {}).get("backend") or "").lower()
            for direction in ("input", "output")
            if isinstance(audio.get(direction), dict)
        }
        transports = frozenset(named & set(TRANSPORT_BACKENDS))
        if not transports:
            transports = DEFAULT_TRANSPORTS
            _caller_audio(profile, next(iter(DEFAULT_TRANSPORTS)))
        name = _ROUTE_NAME.sub("-", profile.name.lower()).strip("-") or "profile"
        if name in served:
            raise UsageError(f"{path}: another profile is already served at /{name}/ (rename one of the files)")
        settings = ServeSettings.of(profile)
        served[name] = ServedProfile(
            name, profile, plugins, transports, max_sessions=settings.max_sessions, settings=settings
        )
    return list(served.values())


def _caller_audio(profile, kind: str) -> None:
    """A profile written for a sound card or files, served: its audio is the caller's connection
    (``voicepipe run`` keeps using the devices; only the served copy changes)."""
    audio = profile.data.setdefault("audio", {})
    for direction in ("input", "output"):
        current = audio.get(direction)
        kept = {"answer_timeout_s": current["answer_timeout_s"]} if (
            direction == "input" and isinstance(current, dict) and "answer_timeout_s" in current) else {}
        audio[direction] = {"backend": kind, **kept}


def build_app(host: SessionHost, guard: Guard) -> web.Application:
    """The application: health routes, then each profile's transport routes."""
    app = web.Application()
    app[HOST_KEY] = host
    app[GUARD_KEY] = guard
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/", _index)
    for served in host.profiles.values():
        for transport in sorted(served.transports):
            module = TRANSPORT_ROUTES.get(transport)
            if module is None:
                raise UsageError(f"profile {served.name}: the {transport!r} transport is not available in this version")
            try:
                routes = importlib.import_module(module)
            except ModuleNotFoundError as exc:
                if exc.name != module:
                    raise
                raise UsageError(f"profile {served.name}: the {transport!r} transport is not available in this version") from None
            routes.add_routes(app, served, host, guard)
    return app


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "pid": os.getpid()})


async def _readyz(request: web.Request) -> web.Response:
    host = request.app[HOST_KEY]
    if host.ready:
        return web.json_response({"status": "ready", "sessions": len(host.sessions)})
    why = "draining" if not host.accepting else "at capacity"
    return web.json_response({"status": why, "sessions": len(host.sessions)}, status=503)


async def _metrics(request: web.Request) -> web.Response:
    refusal = request.app[GUARD_KEY].metrics_refusal(request)
    if refusal is not None:
        return refusal
    metrics = request.app[HOST_KEY].metrics
    if metrics is None:
        return web.Response(status=501, text="metrics need prometheus-client: pip install 'voicepipe-live[serve]'\n")
    body, content_type = metrics.render()
    response = web.Response(body=body)
    response.headers["Content-Type"] = content_type
    return response


async def _index(request: web.Request) -> web.Response:
    """One profile: its page; several: a list of them."""
    names = sorted(request.app[HOST_KEY].profiles)
    if len(names) == 1:
        raise web.HTTPFound(f"/{names[0]}/")
    links = "".join(f'<li><a href="/{name}/">{name}</a></li>' for name in names)
    return web.Response(text=f"<!doctype html><title>voicepipe</title><ul>{links}</ul>", content_type="text/html")


def static_dir() -> Path:
    """The browser page's files, shipped in the package."""
    return Path(__file__).with_name("static")
