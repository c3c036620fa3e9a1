"""``voicepipe serve``: one session of a profile for every caller.

The flow, top-down: :mod:`voicepipe.serve.app` (routes) -> :mod:`voicepipe.serve.guard` (who may
start a session) -> a transport (:mod:`voicepipe.serve.browser`, ...) wraps the caller's media
connection -> :mod:`voicepipe.serve.host` runs the session with it, exactly as ``voicepipe run``
would, with the connection as its audio (:mod:`voicepipe.serve.transport`).
"""
