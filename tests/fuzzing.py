"""The fuzz tests' two runs. Every run replays a fixed, derandomized set of examples; the run
selected with ``-m fuzz`` (``./dev test -m fuzz``) draws new random examples for each property
for ``VOICEPIPE_FUZZ_SECONDS`` (default 15) seconds, from the seed ``VOICEPIPE_FUZZ_SEED`` (random
unless set; pytest prints it in its header). A failure names the seed that repeats it.
"""

from __future__ import annotations

import inspect
import os
import random
import time
from typing import Any, Callable

from hypothesis import given, seed, settings

SEED = int(os.environ.get("VOICEPIPE_FUZZ_SEED") or random.SystemRandom().randrange(2**32))
SECONDS = float(os.environ.get("VOICEPIPE_FUZZ_SECONDS") or 15)
#: examples per randomized round; rounds go on, each from the next seed, until the time is up
ROUND_EXAMPLES = 50


def fuzz_property(fixed: settings, **strategies: Any) -> Callable:
    """``@fixed @given(**strategies)``, keeping what :func:`run_randomized` needs to draw anew."""

    def decorate(test: Callable) -> Callable:
        wrapped = fixed(given(**strategies)(test))
        wrapped.fuzz_source = (fixed, strategies, test)
        return wrapped

    return decorate


def properties(namespace: dict) -> list:
    """The tests made with :func:`fuzz_property` in a module's namespace."""
    return [value for value in namespace.values() if hasattr(value, "fuzz_source")]


def run_randomized(prop: Callable, **fixtures: Any) -> int:
    """Run ``prop`` on random examples for ``SECONDS``, in rounds of ``ROUND_EXAMPLES`` from
    ``SEED``, ``SEED + 1``, ...; return the number of rounds. ``fixtures``: the pytest fixtures
    the property takes (the others are left out)."""
    fixed, strategies, test = prop.fuzz_source
    wanted = set(inspect.signature(test).parameters) - set(strategies)
    arguments = {name: value for name, value in fixtures.items() if name in wanted}
    deadline = time.monotonic() + SECONDS
    rounds = 0
    while True:
        round_seed = (SEED + rounds) % 2**32
        drawn = settings(fixed, derandomize=False, database=None, max_examples=ROUND_EXAMPLES)
        try:
            seed(round_seed)(drawn(given(**strategies)(test)))(**arguments)
        except Exception as exc:
            raise AssertionError(
                f"{test.__name__} failed on random examples from seed {round_seed}; repeat with "
                f"VOICEPIPE_FUZZ_SEED={round_seed} ./dev test -m fuzz -k {test.__name__}"
            ) from exc
        rounds += 1
        if time.monotonic() >= deadline:
            return rounds
