"""voicepipe.lazyimport: a module bound on first use, then the module itself."""

import types

from voicepipe.lazyimport import lazy_module


def test_the_stand_in_imports_on_first_use_and_gives_way_to_the_module():
    owner: dict = {}
    owner["colorsys"] = lazy_module("colorsys", owner)
    assert not isinstance(owner["colorsys"], types.ModuleType)
    assert owner["colorsys"].rgb_to_hsv(1.0, 0.0, 0.0) == (0.0, 1.0, 1.0)
    import colorsys

    assert owner["colorsys"] is colorsys


def test_a_built_in_plugin_sees_what_a_test_patches_on_the_module(monkeypatch):
    import asyncio

    from voicepipe.builtin import recorder

    recorder.asyncio.get_running_loop  # noqa: B018 -- the first use puts the module in place
    assert recorder.asyncio is asyncio
    monkeypatch.setattr(asyncio, "get_running_loop", lambda: "patched")
    assert recorder.asyncio.get_running_loop() == "patched"
