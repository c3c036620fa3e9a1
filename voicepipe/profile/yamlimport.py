"""PyYAML, imported without its slowest step: ``from voicepipe.profile.yamlimport import yaml``.

Importing PyYAML compiles its pure-Python reader's check for characters YAML cannot hold,
``Reader.NON_PRINTABLE``: a negated class of ranges up to U+10FFFF, which Python's regular
expression compiler expands into a table character by character. That is a third of what importing
PyYAML costs (about 5 ms) and of no use to voicepipe, whose loader is libyaml's when it is there.
The same set of characters written as what it matches (the few ranges outside the printable ones)
compiles in a fifth of the time; it is put in the :mod:`re` module's cache under PyYAML's pattern
before PyYAML is imported, so PyYAML's ``re.compile`` finds it compiled. A test checks that both
match exactly the same characters. Where the cache is not a dictionary keyed that way (another
Python), or PyYAML's pattern is another, the entry is simply never used: PyYAML compiles its own.
"""

from __future__ import annotations

import re
import sys

#: ``yaml.reader.Reader.NON_PRINTABLE``'s pattern, as PyYAML writes it
PYYAML_NON_PRINTABLE = "[^\x09\x0A\x0D\x20-\x7E\x85\xA0-\uD7FF\uE000-\uFFFD\U00010000-\U0010ffff]"
#: the characters it matches: those of U+0000..U+10FFFF outside its printable ranges
NON_PRINTABLE = "[\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x84\x86-\x9F\uD800-\uDFFF\uFFFE\uFFFF]"


def _seed_pattern_cache() -> None:
    cache = getattr(re, "_cache", None)
    if "yaml.reader" not in sys.modules and isinstance(cache, dict):
        cache.setdefault((str, PYYAML_NON_PRINTABLE, 0), re.compile(NON_PRINTABLE))


_seed_pattern_cache()

import yaml  # noqa: E402  (after the cache holds the pattern)

__all__ = ["yaml"]
