"""Keyword alert: a local plugin to copy. Load it from a profile with

    plugins: [plugins/keyword_alert.py]
    keyword_alert:
      keywords: [refund, cancel my account]

When the user's words contain a keyword, it logs a warning, prints a line and appends a record to
``alerts.jsonl`` in the run folder.
"""

import json

from voicepipe import hookimpl
from voicepipe.errors import UsageError

_keywords: list[str] = []


@hookimpl
def voicepipe_configure(profile):
    global _keywords
    settings = profile.section("keyword_alert")
    keywords = settings.get("keywords", [])
    if not isinstance(keywords, list) or not all(isinstance(k, str) and k.strip() for k in keywords):
        raise UsageError(f"{profile.location('keyword_alert')}: keyword_alert.keywords: expected a list of words")
    _keywords = [k.lower() for k in keywords]


@hookimpl
def voicepipe_event(event, ctx):
    if event.get("type") != "conversation.item.input_audio_transcription.completed":
        return
    said = (event.get("transcript") or "").lower()
    found = [k for k in _keywords if k in said]
    if not found:
        return
    ctx.log.warning("keyword_alert", keywords=found, item_id=event.get("item_id"))
    print(f"[keyword alert] {', '.join(found)}", flush=True)
    with open(ctx.run_dir / "alerts.jsonl", "a", encoding="utf-8") as alerts:
        alerts.write(json.dumps({"item_id": event.get("item_id"), "keywords": found, "transcript": said}) + "\n")
