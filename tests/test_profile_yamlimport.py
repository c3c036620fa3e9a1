"""PyYAML imported through voicepipe.profile.yamlimport: its reader's pattern, compiled cheaply."""

import subprocess
import sys

from voicepipe.profile.yamlimport import NON_PRINTABLE, PYYAML_NON_PRINTABLE


def test_the_cheap_pattern_matches_exactly_what_pyyaml_s_matches():
    import re

    every_character = "".join(map(chr, range(0x110000)))
    re.purge()  # the cache would hand back ours for PyYAML's pattern
    ours = re.compile(NON_PRINTABLE)
    pyyaml = re.compile(PYYAML_NON_PRINTABLE)
    assert ours.findall(every_character) == pyyaml.findall(every_character)
    assert len(ours.findall(every_character)) > 2000  # the control characters and surrogates, U+FFFE, U+FFFF


def test_pyyaml_s_reader_uses_it_and_still_refuses_what_yaml_cannot_hold():
    # a process of its own: here PyYAML is already imported
    code = (
        "from voicepipe.profile.yamlimport import NON_PRINTABLE, yaml\n"
        "assert yaml.reader.Reader.NON_PRINTABLE.pattern == NON_PRINTABLE, 'PyYAML changed its pattern'\n"
        "try:\n    yaml.load('a: \\x07', Loader=yaml.SafeLoader)\n"
        "except yaml.reader.ReaderError as exc:\n    print(exc.character == 7)\n"
        "print(yaml.load('a: \\u00e9\\U0001F600', Loader=yaml.SafeLoader) == {'a': '\\u00e9\\U0001F600'})\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "True"]
