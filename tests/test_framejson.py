"""voicepipe.framejson gives exactly what json.loads gives (value, types, errors), through orjson
where it is installed."""

from __future__ import annotations

import importlib
import json
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voicepipe import framejson

pytest.importorskip("orjson")  # in the test extra: CI runs the orjson path


def outcome(parse, raw):
    try:
        return "value", repr(parse(raw))  # repr: 1 and 1.0, -0.0 and 0.0, nan differ
    except Exception as exc:  # noqa: BLE001 - the kind and the words must be json's
        return type(exc), str(exc)


def reference(raw):
    return json.loads(raw.decode("utf-8") if type(raw) is bytes else raw)


EDGES = [
    b'{"type": "response.audio.delta", "delta": "AAAA", "output_index": 0}',
    b'{"a": 18446744073709551616}', b'{"a": 18446744073709551615}', b'{"a": -9223372036854775809}',
    b'{"a": -9223372036854775808}', b'[1, [2, {"b": [123456789012345678901234567890]}]]',
    b'123456789012345678901234567890', b'-123456789012345678901234567890', b'1e19', b'{"a": 1e300}',
    b'{"a": NaN}', b'[Infinity]', b'-Infinity', b'"\\ud800"', b'{"t": "\\udc00x"}', b'"\xff"',
    b'\xef\xbb\xbf{}', b'{"a": 1} x', b'[1, 2,]', b'', b'{"a": 1, "a": 2}', b'-0', b'-0.0',
    b'9007199254740993', b'0.1', b'"\\u00e9\\u0000"', b'{"a": "\t"}', b'[' * 5000 + b']' * 5000,
    b'[' * 900 + b'1e400' + b']' * 900, b'[' * 900 + b'18446744073709551616' + b']' * 900,
    b'[' * 1020 + b'1' + b']' * 1020,  # deeper than Python's recursion limit, within orjson's
]


@pytest.mark.parametrize("raw", EDGES, ids=range(len(EDGES)))
def test_the_value_or_the_error_is_the_one_json_gives(raw):
    assert outcome(framejson.loads, raw) == outcome(reference, raw)
    text = raw.decode("utf-8", errors="surrogateescape")
    assert outcome(framejson.loads, text) == outcome(reference, text)


json_values = st.recursive(
    st.none() | st.booleans() | st.text() | st.floats(allow_nan=True)
    | st.integers() | st.integers(min_value=-2**70, max_value=2**70) | st.sampled_from([2**63, -2**63 - 1, 2**64]),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(json_values)
def test_any_json_text_parses_to_what_json_gives(value):
    raw = json.dumps(value).encode("utf-8")
    assert outcome(framejson.loads, raw) == outcome(reference, raw)


def test_orjson_does_the_parsing_where_it_is_installed_and_json_where_not(monkeypatch):
    assert framejson.loads is not framejson._json
    monkeypatch.setitem(sys.modules, "orjson", None)  # as if not installed
    try:
        without = importlib.reload(framejson)
        assert without.loads is without._json
        assert without.loads(b'{"a": 18446744073709551616}') == {"a": 18446744073709551616}
    finally:
        monkeypatch.delitem(sys.modules, "orjson")
        importlib.reload(framejson)
    assert framejson.loads is not framejson._json
