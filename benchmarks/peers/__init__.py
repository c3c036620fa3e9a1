"""Clients of peer frameworks for ``benchmarks/conversation.py``, each run in its own process by a
Python that has the framework installed (never imported by voicepipe or its tests)."""
