"""Percentiles, token totals and the table of the metrics plugin."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from voicepipe.metrics_stats import add_usage, format_table, percentile, summarize, token_breakdown


def test_nearest_rank_percentiles_of_one_to_a_hundred():
    values = list(range(1, 101))
    assert [percentile(values, p) for p in (50, 90, 99, 100)] == [50, 90, 99, 100]


def test_nearest_rank_of_few_values_returns_measured_values():
    assert summarize([30.0, 10.0, 20.0]) == {"count": 3, "p50": 20.0, "p90": 30.0, "p99": 30.0, "max": 30.0}
    assert summarize([7.5]) == {"count": 1, "p50": 7.5, "p90": 7.5, "p99": 7.5, "max": 7.5}
    assert percentile([1, 2, 3, 4], 50) == 2  # rank ceil(0.5 * 4) = 2, no interpolation


def test_no_values_summarize_to_a_count_of_zero():
    assert summarize([]) == {"count": 0, "p50": None, "p90": None, "p99": None, "max": None}
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile([1], 0)


@given(st.lists(st.floats(min_value=-1e6, max_value=1e6, allow_nan=False), min_size=1, max_size=300))
def test_percentiles_are_ordered_measured_values(values):
    s = summarize(values)
    assert s["p50"] <= s["p90"] <= s["p99"] <= s["max"] == max(values)
    ordered = sorted(values)
    for p in (50, 90, 99):
        assert s[f"p{p}"] in values
        # at least p% of the values are <= the p-th percentile, and fewer than p% are below it
        assert sum(v <= s[f"p{p}"] for v in values) >= math.ceil(p / 100 * len(values))
        assert sum(v < s[f"p{p}"] for v in ordered) < math.ceil(p / 100 * len(values))


def test_usage_totals_add_every_numeric_field_nested_and_unknown_ones_too():
    totals = {}
    add_usage(totals, {"total_tokens": 10, "input_token_details": {"cached_tokens": 2, "cache_write_tokens": 1}})
    add_usage(totals, {"total_tokens": 5, "input_token_details": {"cached_tokens": 3}, "note": "x", "flag": True})
    add_usage(totals, None)
    assert totals == {"total_tokens": 15, "input_token_details": {"cached_tokens": 5, "cache_write_tokens": 1}}


def test_usage_values_whose_kind_disagrees_with_the_totals_are_skipped():
    totals = add_usage({}, {"total_tokens": 10, "input_token_details": {"cached_tokens": 2}})
    add_usage(totals, {"total_tokens": {"odd": 1}, "input_token_details": 7, "output_tokens": 3})
    assert totals == {"total_tokens": 10, "input_token_details": {"cached_tokens": 2}, "output_tokens": 3}


def test_token_breakdown_names_direction_and_kind():
    usage = {
        "input_tokens": 44,
        "output_tokens": 99,
        "input_token_details": {"cached_tokens": 0, "text_tokens": 14, "audio_tokens": 30},
        "output_token_details": {"text_tokens": 27, "audio_tokens": 72},
    }
    assert token_breakdown(usage) == [
        ("input", "total", 44),
        ("input", "text", 14),
        ("input", "audio", 30),
        ("input", "cached", 0),
        ("output", "total", 99),
        ("output", "text", 27),
        ("output", "audio", 72),
    ]
    assert token_breakdown(None) == []


def test_a_summary_without_latencies_still_renders():
    text = format_table({"turns": 0, "interrupted": 0, "metrics": {"tool_ms": summarize([])}, "tokens": {}})
    assert text.splitlines() == ["metrics: 0 turns, 0 interrupted", "  no latency measured"]


def test_the_table_says_how_interrupted_turns_are_counted():
    summary = {"turns": 2, "interrupted": 1, "metrics": {"server_first_audio_ms": summarize([400.0])}, "tokens": {}}
    heading, header, row = format_table(summary).splitlines()[:3]
    assert heading.startswith("metrics: 2 turns, 1 interrupted (the latencies leave interrupted turns out")
    assert row.split()[:2] == ["server_first_audio_ms", "1"]
    assert "leave" not in format_table({**summary, "interrupted": 0}).splitlines()[0]
