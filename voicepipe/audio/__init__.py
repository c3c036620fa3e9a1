"""Audio backends: see :mod:`voicepipe.audio.base` for the contract."""
