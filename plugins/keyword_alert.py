"""Keyword alert: a local plugin to copy. Load it from a profile with

    plugins: [plugins/keyword_alert.py]
    keyword_alert:
      keywords: [refund, cancel my account]

When the user's words contain a keyword, it logs a warning (the console shows warnings) and appends
a record to ``alerts.jsonl`` in the run folder.

It is a class, so every session gets an instance of its own (``voicepipe serve`` runs many sessions
in one process): settings and counts live on ``self``, never in module globals.
"""

import json

from voicepipe import SessionContext, hookimpl
from voicepipe.errors import UsageError


class KeywordAlert:
    def __init__(self, profile):
        keywords = profile.section("keyword_alert").get("keywords", [])
        if not isinstance(keywords, list) or not all(isinstance(k, str) and k.strip() for k in keywords):
            raise UsageError(f"{profile.location('keyword_alert')}: keyword_alert.keywords: expected a list of words")
        self.keywords = [k.lower() for k in keywords]
        self.alerts = 0

    @hookimpl
    def voicepipe_event(self, event, ctx: SessionContext):
        if event.get("type") != "conversation.item.input_audio_transcription.completed":
            return
        said = (event.get("transcript") or "").lower()
        found = [k for k in self.keywords if k in said]
        if not found:
            return
        self.alerts += 1
        ctx.log.warning("keyword_alert", keywords=found, item_id=event.get("item_id"))
        with open(ctx.run_dir / "alerts.jsonl", "a", encoding="utf-8") as alerts:
            alerts.write(json.dumps({"item_id": event.get("item_id"), "keywords": found, "transcript": said}) + "\n")

    @hookimpl
    def voicepipe_session_end(self, ctx: SessionContext):
        if self.alerts:
            ctx.log.info("keyword_alerts", count=self.alerts)


plugin = KeywordAlert
