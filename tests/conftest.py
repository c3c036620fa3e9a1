"""Shared by the test modules: the fuzz run's seed in pytest's header."""

import fuzzing


def pytest_report_header(config):
    if "fuzz" in (config.getoption("markexpr") or "").replace("not fuzz", ""):
        return (f"fuzz: random examples from seed {fuzzing.SEED} for {fuzzing.SECONDS:g} s per property "
                f"(VOICEPIPE_FUZZ_SEED, VOICEPIPE_FUZZ_SECONDS)")
    return None
