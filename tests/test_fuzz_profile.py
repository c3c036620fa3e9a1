"""Hostile profiles: random bytes, random YAML and mutated real profiles, loaded and validated.

The only acceptable outcomes: the profile loads (and its ``session.update`` is JSON), or a
voicepipe error (exit code 2) whose every line names the file it is about. Never another
exception, never a traceback from ``voicepipe validate``.
"""

from __future__ import annotations

import datetime
import json
import shutil
from pathlib import Path
from typing import Any, Iterable

import pytest
import yaml
from fuzzing import fuzz_property, properties, run_randomized
from shipped_files import shipped_profiles
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from voicepipe.cli import main
from voicepipe.errors import ProfileError, UsageError, VoicepipeError
from voicepipe.profile import load_profile, session_update_payload

ROOT = Path(__file__).resolve().parents[1]
REAL_PROFILES = shipped_profiles()
ENVIRON = {"FUZZ_SET": "8765", "FUZZ_EMPTY": ""}

FUZZ = settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """A copy of the project's profiles (with the files they refer to), where fuzzed files go too."""
    root = tmp_path_factory.mktemp("fuzz")
    shutil.copytree(ROOT / "profiles", root / "profiles")
    shutil.copytree(ROOT / "plugins", root / "plugins")
    (root / "profiles" / "loop1.yaml").symlink_to(root / "profiles" / "loop2.yaml")
    (root / "profiles" / "loop2.yaml").symlink_to(root / "profiles" / "loop1.yaml")
    return root / "profiles"


# -- checking one profile -----------------------------------------------------------------------------


def assert_lines_name_a_file(lines: Iterable[str], folder: Path) -> None:
    """Each line (``\\n`` ends one, nothing else does) starts with a file in ``folder`` or a --set."""
    for line in lines:
        line = line.removeprefix("warning: ")
        assert line.startswith((str(folder), "--set ")), f"a line that names no file: {line!r}"


def check_load(path: Path, overrides: Iterable[str] = ()) -> Any:
    """Load ``path``: a profile whose ``session.update`` is JSON, or a voicepipe error naming the file."""
    try:
        profile = load_profile(path, list(overrides), environ=ENVIRON)
    except VoicepipeError as exc:
        assert exc.exit_code == 2
        assert_lines_name_a_file(str(exc).split("\n"), path.parent)
        return None
    json.dumps(session_update_payload(profile), allow_nan=False)  # JSON: no NaN, dates or bytes
    assert_lines_name_a_file(profile.warnings, path.parent)
    return profile


def check_validate(path: Path, capsys: Any, overrides: Iterable[str] = ()) -> int:
    """``voicepipe validate``: exit 0 with ``ok``, or exit 2 with lines that each name a file."""
    capsys.readouterr()
    code = main(["validate", str(path)] + [f"--set={override}" for override in overrides])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    assert code in (0, 2), (code, err)
    if code == 0:
        assert out == f"{path}: ok\n"
    else:
        assert err.strip(), "exit 2 without saying why"
        assert_lines_name_a_file(err.rstrip("\n").split("\n"), path.parent)
    return code


def write(path: Path, content: str | bytes) -> Path:
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8", errors="surrogatepass")
    return path


# -- strategies ----------------------------------------------------------------------------------------

KEYS = [
    "connection", "session", "audio", "plugins", "disable", "logging", "runtime", "console", "transcript", "recorder",
    "metrics", "extends", "endpoint", "model", "api_version", "auth", "agent", "name", "project", "emulator", "speed",
    "connect_timeout_s", "instructions", "modalities", "voice", "type", "temperature", "turn_detection", "threshold",
    "silence_duration_ms", "end_of_utterance_detection", "input_audio_transcription", "tools", "parameters",
    "tool_choice", "max_response_output_tokens", "metadata", "extra", "input", "output", "backend", "file",
    "device", "latency", "chunk_ms", "truncate", "level", "max_plugin_errors", "prometheus_port", "quiet", "<<",
]
#: scalars as written in YAML, in groups drawn from with equal weight
ODD_SCALAR_GROUPS = [
    [".nan", ".NaN", "-.inf", ".inf", "1e400", "-1", "0", "-0.0", "99999999999999999999999999999", "0x1F", "1_000"],
    ["2001-02-30", "2001-01-01", "2001-01-01 10:00:00 +99:00", "~", "null", "true", "no", "''", '""', "'\\u2028'",
     '"\\0"', "x" * 2000],
    ["${FUZZ_SET}", "${FUZZ_UNSET}", "${FUZZ_EMPTY:-3}", "${", "$${x}", "${a b}", "${FUZZ_SET"],
    ["!!timestamp x", "!!bool maybe", "!!int 0x", "!!float abc", "!!binary AAAA", "!!binary '!'", "!!omap x",
     "!!python/object:os.system x", "!!set {a, b}", "!!str 3", "!!null x", "!!merge x"],
    ["&a [1, 2]", "*a", "*missing", "&b {x: 1}", "*b", "[*a, *a]", "{<<: *b}", "&c [*c]", "[" * 200 + "]" * 200,
     "[" * 900 + "]" * 900],
    ["[", "]", "{", "}", "? [a]", "- x", "|", ">-", ":", "a: b: c", "\t", "%YAML 1.1", "---", "...", "#", "@", "`"],
    ["emulator", "wav", "azure-standard", "server_vad", "function", "pcm16", "alloy", "inf", "ava.yaml"],
]
ODD_SCALARS = [scalar for group in ODD_SCALAR_GROUPS for scalar in group]
odd_scalars = st.one_of(*(st.sampled_from(group) for group in ODD_SCALAR_GROUPS))
VALUES = [
    None, True, False, 0, 1, 0.5, "", "x", "emulator", "wav", "null", "pcm16", "server_vad", "azure-standard",
    "function", "alloy", "${FUZZ_SET}", "${FUZZ_UNSET}", "${", "ava.yaml", "missing.yaml", "fuzz.yaml", [], {},
    ["text", "audio"], {"type": "server_vad"},
]
ODD_VALUES = [-1, -(2**80), 2**80, 1e308, -1e308, float("nan"), float("inf"), -float("inf"), datetime.date(2001, 1, 1),
              datetime.datetime(2001, 1, 1, 10), b"\x00\xff", "\x00", "\u2028", "x" * 2000]


def nested(depth: int) -> Any:
    """A list inside a list ... ``depth`` levels deep."""
    value: Any = []
    for _ in range(depth):
        value = [value]
    return value


def repeated(levels: int) -> Any:
    """A list of ten of the same list of ten ..., which YAML writes with anchors and aliases."""
    value: Any = "x"
    for _ in range(levels):
        value = [value] * 10
    return value


odd_values = st.one_of(st.sampled_from(ODD_VALUES), st.sampled_from(ODD_VALUES),
                       st.integers(1, 5).map(repeated), st.integers(50, 150).map(nested))
keys = st.one_of(st.sampled_from(KEYS), st.sampled_from(KEYS), st.text(max_size=4))
plain_values = st.recursive(
    st.one_of(st.sampled_from(VALUES), odd_values, st.text(max_size=6), st.integers(), st.floats()),
    lambda children: st.one_of(st.lists(children, max_size=3), st.dictionaries(keys, children, max_size=4)),
    max_leaves=10,
)


@st.composite
def yaml_lines(draw: Any) -> str:
    """Text that is nearly YAML: keys the schema knows, odd scalars, tags, anchors and aliases,
    merge keys, unbalanced brackets and stray indentation."""
    lines = []
    for _ in range(draw(st.integers(1, 12))):
        indent = "  " * draw(st.integers(0, 3))
        key = draw(st.sampled_from(KEYS))
        value = draw(st.one_of(odd_scalars, st.sampled_from(KEYS), st.just("")))
        form = draw(st.sampled_from(["{k}: {v}", "{k}: &{a} {v}", "{k}: *{a}", "- {v}", "<<: *{a}", "{k}:", "{v}"]))
        lines.append(indent + form.format(k=key, v=value, a=draw(st.sampled_from(["a", "b"]))))
    return "\n".join(lines) + draw(st.sampled_from(["\n", "", "\r\n"]))


def containers(value: Any) -> list:
    """Every dict and list inside ``value`` (itself included), each once however often it is shared."""
    found, seen, stack = [], set(), [value]
    while stack:
        item = stack.pop()
        if isinstance(item, (dict, list)) and id(item) not in seen:
            seen.add(id(item))
            found.append(item)
            stack.extend(item.values() if isinstance(item, dict) else item)
    return found


def slots(data: Any, leaves: bool) -> list[tuple[Any, Any]]:
    """``(container, key)`` of every value in ``data``: the scalars only, or every one."""
    return [(container, key) for container in containers(data)
            for key in (list(container) if isinstance(container, dict) else range(len(container)))
            if not leaves or not isinstance(container[key], (dict, list))]


@st.composite
def mutated_data(draw: Any, data: Any) -> Any:
    """``data`` (a profile read as plain YAML) with values replaced (scalars by odd ones: NaN, dates,
    huge numbers ...), keys deleted or misspelt."""
    for _ in range(draw(st.integers(1, 5))):
        operation = draw(st.sampled_from(["leaf", "leaf", "replace", "delete", "misspell"]))
        places = slots(data, leaves=operation == "leaf")
        if not places:
            break
        container, key = draw(st.sampled_from(places))
        if operation == "leaf":
            container[key] = draw(odd_values)
        elif operation == "replace":
            container[key] = draw(plain_values)
        elif operation == "delete":
            del container[key]
        elif isinstance(container, dict):
            container[str(key) + draw(st.sampled_from(["s", "_", " ", "X"]))] = container.pop(key)
    return data


@st.composite
def mutated_text(draw: Any, text: str) -> str:
    """``text`` with lines deleted, repeated (duplicate keys), swapped, cut or with odd scalars put in."""
    lines = text.splitlines()
    for _ in range(draw(st.integers(1, 4))):
        if not lines:
            break
        index = draw(st.integers(0, len(lines) - 1))
        operation = draw(st.sampled_from(["delete", "repeat", "swap", "value", "insert", "cut"]))
        if operation == "delete":
            del lines[index]
        elif operation == "repeat":
            lines.insert(index, lines[index])
        elif operation == "swap":
            other = draw(st.integers(0, len(lines) - 1))
            lines[index], lines[other] = lines[other], lines[index]
        elif operation == "value" and ":" in lines[index]:
            lines[index] = lines[index].split(":", 1)[0] + ": " + draw(odd_scalars)
        elif operation == "insert":
            lines.insert(index, draw(yaml_lines()).rstrip("\n"))
        elif operation == "cut":
            lines[index] = lines[index][: draw(st.integers(0, len(lines[index])))]
    return "\n".join(lines) + "\n"


SMALL_PROFILES = [
    "session:\n  voice: alloy\n  temperature: 0.8\n",
    "connection: {endpoint: emulator}\nsession:\n  turn_detection: {type: server_vad, threshold: 0.5}\n",
    "extends: ava.yaml\nsession:\n  tools:\n    - {type: function, name: f, parameters: {type: object}}\n",
    "audio:\n  input: {backend: wav, file: audio/question.wav}\n  output: null\nmetrics: {table: false}\n",
    "session:\n  extra: {a: 1}\n  metadata: {k: v}\n  max_response_output_tokens: inf\n",
    "session:\n  extra: {a: [x, 2.5], b: {c: d}}\n  turn_detection: {type: server_vad, extra: {k: 1}}\n",
]
SOURCES = [path.read_text(encoding="utf-8") for path in REAL_PROFILES] + SMALL_PROFILES
OVERRIDE_KEYS = ["session.voice", "session.temperature", "session.tools.0.name", "session.tools.²", "session.extra.a",
                 "audio.input.backend", "connection.api_key", "plugins", "a..b", "", "session", "logging.level"]
overrides = st.lists(
    st.builds(lambda key, sep, value: key + sep + value, st.one_of(st.sampled_from(OVERRIDE_KEYS), st.text(max_size=4)),
              st.sampled_from(["=", ""]),
              st.one_of(odd_scalars, st.text(max_size=6))),
    max_size=3,
)


@st.composite
def extends_family(draw: Any) -> dict[str, str]:
    """Up to four profiles that extend each other (cycles included), files that are missing, and
    ``extends`` values of the wrong type."""
    names = ["fuzz.yaml", "f1.yaml", "f2.yaml", "f3.yaml"][: draw(st.integers(1, 4))]
    targets = st.one_of(st.sampled_from(names + ["missing.yaml", "ava.yaml", ".", "", "sub/../fuzz.yaml"]),
                        st.sampled_from([None, 3, [], {}, "a\x00b.yaml", "loop1.yaml", "x" * 300, "${FUZZ_SET}"]))
    family = {}
    for name in names:
        parents = draw(st.lists(targets, max_size=3))
        body = draw(st.sampled_from(SMALL_PROFILES)).replace("extends: ava.yaml\n", "")
        family[name] = yaml.safe_dump({"extends": parents if len(parents) != 1 else parents[0]}) + body
    return family


# -- properties -----------------------------------------------------------------------------------------


@fuzz_property(FUZZ, content=st.one_of(st.binary(max_size=200), st.text(max_size=200)))
def test_arbitrary_bytes_and_text(folder, content):
    check_load(write(folder / "fuzz.yaml", content))


@fuzz_property(FUZZ, text=yaml_lines())
def test_nearly_yaml_text(folder, text):
    check_load(write(folder / "fuzz.yaml", text))


@fuzz_property(FUZZ, data=plain_values)
def test_valid_yaml_of_any_structure(folder, data):
    check_load(write(folder / "fuzz.yaml", yaml.safe_dump(data, allow_unicode=True)))


@fuzz_property(FUZZ, where=st.sampled_from(["session.extra", "session.turn_detection.extra", "session.tools.0.parameters"]),
               value=plain_values)
def test_values_sent_to_the_service_as_written(folder, where, value):
    session: dict = {"turn_detection": {"type": "server_vad"}, "tools": [{"type": "function", "name": "f"}]}
    *parents, last = where.split(".")[1:]
    target: Any = session
    for key in parents:
        target = target[int(key)] if key.isdigit() else target[key]
    target[last] = {"value": value}
    check_load(write(folder / "fuzz.yaml", yaml.safe_dump({"session": session}, allow_unicode=True)))


@fuzz_property(FUZZ, source=st.sampled_from(SOURCES), data=st.data())
def test_mutated_profiles_read_as_data(folder, source, data):
    mutated = data.draw(mutated_data(yaml.safe_load(source)))
    check_load(write(folder / "fuzz.yaml", yaml.safe_dump(mutated, allow_unicode=True, sort_keys=False)))


@fuzz_property(FUZZ, source=st.sampled_from(SOURCES), data=st.data())
def test_mutated_profiles_as_text(folder, source, data):
    check_load(write(folder / "fuzz.yaml", data.draw(mutated_text(source))))


@fuzz_property(FUZZ, family=extends_family(), sets=overrides)
def test_extends_families_and_overrides(folder, family, sets):
    for name, text in family.items():
        write(folder / name, text)
    check_load(folder / "fuzz.yaml", sets)


@fuzz_property(settings(FUZZ, max_examples=30), source=st.sampled_from(SOURCES), data=st.data(), sets=overrides)
def test_validate_command_never_shows_a_traceback(folder, capsys, source, data, sets):
    text = data.draw(st.one_of(mutated_text(source), st.just(source)))
    check_validate(write(folder / "fuzz.yaml", text), capsys, sets)


@pytest.mark.fuzz
@pytest.mark.parametrize("prop", properties(globals()), ids=lambda prop: prop.__name__)
def test_properties_on_random_examples(prop, folder, capsys):
    """``-m fuzz`` only: each property above on new random examples, for a bounded time."""
    run_randomized(prop, folder=folder, capsys=capsys)


def test_the_real_profiles_still_validate(folder, capsys):
    for path in sorted(folder.glob("*.yaml")):
        if path.name in {profile.name for profile in REAL_PROFILES}:
            assert check_validate(path, capsys) == 0, path


# -- the defects these properties found, as plain examples --------------------------------------------------


def only_problem(path: Path, overrides: Iterable[str] = ()) -> str:
    with pytest.raises(ProfileError) as error:
        load_profile(path, list(overrides), environ=ENVIRON)
    assert len(error.value.problems) == 1, error.value.problems
    return error.value.problems[0]


@pytest.mark.parametrize("tagged, tag", [("!!timestamp x", "!!timestamp"), ("!!bool maybe", "!!bool")])
def test_a_tagged_value_pyyaml_cannot_construct_is_one_problem(tmp_path, tagged, tag):
    path = write(tmp_path / "p.yaml", f"session:\n  instructions: {tagged}\n")
    assert only_problem(path) == f"{path}:2:17: session.instructions: cannot read this value (not a valid {tag})"


@pytest.mark.parametrize("setting, value, shown", [
    ("session:\n  temperature", ".nan", "a number from 0 to 2, got nan"),
    ("connection:\n  connect_timeout_s", ".inf", "a number of seconds > 0, got inf"),
    ("session:\n  voice: {type: azure-standard, name: x, temperature", ".NaN}", "a number from 0 to 1, got nan"),
])
def test_nan_and_infinity_are_not_numbers(tmp_path, setting, value, shown):
    path = write(tmp_path / "p.yaml", f"{setting}: {value}\n")
    assert only_problem(path).endswith(f": expected {shown}")


@pytest.mark.parametrize("value, shown", [(".nan", "nan"), ("2001-01-01", "datetime.date(2001, 1, 1)"),
                                          ("!!binary AAAA", "b'\\x00\\x00\\x00'")])
def test_values_sent_verbatim_must_be_json(tmp_path, value, shown):
    path = write(tmp_path / "p.yaml", f"session:\n  tools:\n    - type: function\n      name: f\n"
                                      f"      parameters: {{type: object, default: [{value}]}}\n")
    assert only_problem(path) == (f"{path}:5:44: session.tools[0].parameters.default[0]: expected a JSON value "
                                  f"(text, a finite number, true, false, null, a list or a mapping), got {shown}")


def test_json_values_sent_verbatim_still_load(tmp_path):
    path = write(tmp_path / "p.yaml", "session:\n  extra: {a: [1, 2.5, null, true, x, {b: c}]}\n")
    assert session_update_payload(load_profile(path))["session"]["a"] == [1, 2.5, None, True, "x", {"b": "c"}]


def billion_laughs(levels: int = 9) -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{n}: &a{n} [{', '.join([f'*a{n - 1}'] * 10)}]" for n in range(1, levels)]
    return "session:\n  extra:\n" + "".join(f"    {line}\n" for line in lines)


def test_aliases_repeating_aliases_are_refused_before_they_expand(tmp_path):
    path = write(tmp_path / "p.yaml", billion_laughs())
    assert only_problem(path) == f"{path}: more than 20000 values (aliases that repeat aliases?)"


@pytest.mark.parametrize("text", [
    "session:\n  extra:\n    a: " + "[" * 100 + "]" * 100 + "\n",
    "".join(f"a{n}: &a{n} {{<<: *a{n - 1}, k{n}: 1}}\n" if n else "a0: &a0 {k: 1}\n" for n in range(300)),
])
def test_nesting_deeper_than_the_limit_is_a_problem(tmp_path, text):
    path = write(tmp_path / "p.yaml", text)
    with pytest.raises(ProfileError) as error:
        load_profile(path)
    assert any("nested deeper than 64 levels" in line for line in error.value.problems)


def test_extends_with_a_nul_character_is_a_problem(tmp_path):
    path = write(tmp_path / "p.yaml", 'extends: "a\\0b.yaml"\n')
    assert only_problem(path).startswith(f"{path}:1:10: extends: cannot read ")


def test_extends_through_a_symlink_loop_is_a_problem(tmp_path):
    (tmp_path / "loop1.yaml").symlink_to(tmp_path / "loop2.yaml")
    (tmp_path / "loop2.yaml").symlink_to(tmp_path / "loop1.yaml")
    path = write(tmp_path / "p.yaml", "extends: loop1.yaml\n")
    assert only_problem(path).startswith(f"{path}:1:10: extends: cannot read ")


def test_a_profile_path_with_a_nul_character_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="not a usable file name"):
        load_profile(str(tmp_path / "a\0b.yaml"))


@pytest.mark.parametrize("override, problem", [
    ("session.tools.²=x", "--set session.tools.²: unknown key"),
    ("session.extra.a=" + "[" * 100 + "]" * 100, "nested deeper than 64 levels"),
    ("session.extra.a=[&a [1,1,1,1,1,1,1,1,1,1], " + ", ".join(["&b [" + ", ".join(["*a"] * 10) + "]"]
                                                                 + ["[" + ", ".join(["*b"] * 10) + "]"] * 30) + "]",
     "more than 20000 values"),
    ("session.instructions=\udcff", "cannot read the value"),
    ("session.extra={a: 1, a: 2}", "duplicate key 'a'"),
])
def test_bad_override_values_are_problems(tmp_path, override, problem):
    path = write(tmp_path / "p.yaml", "session:\n  tools: [{type: function, name: f}]\n")
    assert problem in only_problem(path, [override])


def test_validate_reports_an_unreadable_tagged_value_without_a_traceback(tmp_path, capsys):
    path = write(tmp_path / "p.yaml", "session:\n  instructions: !!bool maybe\n")
    assert check_validate(path, capsys) == 2
