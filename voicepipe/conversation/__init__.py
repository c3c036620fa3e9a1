"""Conversation tests: scripted callers, what their answers must show, and the runner.

See :mod:`voicepipe.conversation.spec` for the file format, :mod:`voicepipe.conversation.runner`
for how a conversation runs (offline or against a real endpoint) and
:mod:`voicepipe.conversation.checks` for what each ``expect`` kind checks.
"""

from voicepipe.conversation.spec import Conversation, Turn, collect, is_conversation_file, load_conversation

__all__ = ["Conversation", "Turn", "collect", "is_conversation_file", "load_conversation"]
