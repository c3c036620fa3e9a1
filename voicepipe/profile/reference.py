"""The profile reference: every key the schema knows, with its type, range, default and meaning.

:func:`keys` walks the specs of :mod:`voicepipe.profile.schema`; the defaults and meanings come from
:mod:`voicepipe.profile.keydocs`. ``python -m voicepipe.profile.reference`` writes
``docs/profile-reference.md`` and ``docs/profile.schema.json`` (``--check`` only says whether they
are current; the tests check that too).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional

from voicepipe.profile.keydocs import DOCS, TOP_LEVEL, doc
from voicepipe.profile.spec import Either, ListOf, Map, Spec, Tagged

DOC_FILE = Path("docs") / "profile-reference.md"
SCHEMA_FILE = Path("docs") / "profile.schema.json"


@dataclass
class Key:
    """One key path (``[]`` for a list's items) and the specs that govern it there: several when
    variants of a tagged mapping or backends each declare it. ``only`` says which variants have it
    when not all do (``type: azure_semantic_vad``)."""

    path: str
    specs: list[Spec] = field(default_factory=list)
    only: list[str] = field(default_factory=list)

    def describe(self) -> str:
        texts: list[str] = []
        for spec in self.specs:
            text = spec.describe()
            if getattr(spec, "nullable", False) and "null" not in text:
                text += " or null"
            if text not in texts:
                texts.append(text)
        return "; or ".join(texts)


def _variants(spec: Spec) -> Optional[tuple[str, Spec, dict[str, dict[str, Spec]]]]:
    """A spec whose keys depend on a tag: the tag's name and spec, and each variant's keys."""
    from voicepipe.profile.schema import BACKEND_OPTIONS, BUILTIN_BACKENDS, Backend
    from voicepipe.profile.spec import Str

    if isinstance(spec, Tagged):
        return spec.tag, spec.tag_spec, {name: {**v.fields, **v.passthrough} for name, v in spec.variants.items()}
    if isinstance(spec, Backend):
        name = Str(what=f"one of {', '.join(BUILTIN_BACKENDS)}, or a plugin's backend name")
        return "backend", name, {key: dict(options) for key, options in BACKEND_OPTIONS[spec.direction].items()}
    return None


def children(spec: Spec) -> Iterator[tuple[str, Spec, Optional[str]]]:
    """The keys directly below ``spec``: (key, its spec, the variants that have it, or None when
    all do). A list's items come as key ``[]``."""
    if isinstance(spec, Map):
        for key, child in {**spec.fields, **spec.passthrough}.items():
            yield key, child, None
    elif isinstance(spec, Either):
        for option in spec.options:
            yield from children(option)
    elif isinstance(spec, ListOf):
        yield "[]", spec.item, None
    tagged = _variants(spec)
    if tagged is not None:
        tag, tag_spec, variants = tagged
        yield tag, tag_spec, None
        seen: dict[str, list[str]] = {}
        for name, fields in variants.items():
            for key in fields:
                if key != tag:
                    seen.setdefault(key, []).append(name)
        for key, names in seen.items():
            condition = None if len(names) == len(variants) else f"{tag}: {', '.join(names)}"
            for name in names:
                yield key, variants[name][key], condition


def keys() -> list[Key]:
    """Every key of a profile the schema knows, sections first, in declaration order."""
    from voicepipe.profile.schema import SECTIONS

    found: dict[str, Key] = {}

    def add(path: str, spec: Spec, condition: Optional[str], record: bool = True) -> None:
        if record:
            key = found.setdefault(path, Key(path))
            if all(spec is not other for other in key.specs):
                key.specs.append(spec)
            if condition and condition not in key.only:
                key.only.append(condition)
        for name, child, child_condition in children(spec):
            if name == "[]":  # a list's items: their keys are documented, not the items themselves
                add(f"{path}[]", child, child_condition, record=False)
            else:
                add(f"{path}.{name}", child, child_condition)

    for name, spec in SECTIONS.items():
        add(name, spec, None)
    return list(found.values())


def missing_docs() -> list[str]:
    """What is wrong with the documentation table: a key the schema knows without a default and a
    meaning, or an entry for a key the schema does not know. Empty when all is well."""
    known = [key.path for key in keys()]
    problems = [f"{path}: no default and meaning in voicepipe/profile/keydocs.py" for path in known
                if not all(text.strip() for text in DOCS.get(path, ("", "")))]
    problems += [f"{path}: documented in voicepipe/profile/keydocs.py, but the schema has no such key"
                 for path in DOCS if path not in known]
    return problems


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown() -> str:
    """The reference page, generated: one table per section."""
    lines = [
        "# Profile reference",
        "",
        "<!-- Generated by `python -m voicepipe.profile.reference` from voicepipe/profile/schema.py and",
        "     voicepipe/profile/keydocs.py; edit those, not this file. -->",
        "",
        "Every key a profile can set: its type and range, what happens when it is not set, and what it",
        "does. Keys under `session:` that are not set are left out of `session.update`, so the service's",
        "defaults apply (given where the service documents them). `[]` stands for each item of a list.",
        "A plugin's own settings live in a top-level section named after it (the plugin must be listed",
        "under `plugins:`). Any value can be `${VAR}` or `${VAR:-default}` from the environment.",
        "",
        "For completion and checking while you type, point your editor at the JSON Schema: the first",
        "line `# yaml-language-server: $schema=<path to>/profile.schema.json` works with the YAML",
        "language server (VS Code's YAML extension, Neovim, Helix, ...). `voicepipe schema` prints it,",
        "`voicepipe init` writes it into a starter project, and",
        "[`profile.schema.json`](profile.schema.json) is this repository's copy.",
        "",
    ]
    table = ["| key | type and range | default | meaning |", "|---|---|---|---|"]
    default, meaning = TOP_LEVEL["extends"]
    lines += ["## Top level", "", *table,
              f"| `extends` | a file name or a list of them | {_cell(default)} | {_cell(meaning)} |", ""]
    section = None
    for key in keys():
        top = key.path.split(".")[0].split("[")[0]
        if top != section:
            section = top
            lines += [f"## `{section}`", "", *table]
        default, meaning = doc(key.path)
        if key.only:
            meaning += f" Only with {'; '.join(key.only)}."
        lines.append(f"| `{key.path}` | {_cell(key.describe())} | {_cell(default)} | {_cell(meaning)} |")
    text = "\n".join(lines)
    # a blank line before each section heading that follows a table
    text = text.replace("|\n## ", "|\n\n## ")
    return text + "\n"


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m voicepipe.profile.reference",
                                     description="Write docs/profile-reference.md and docs/profile.schema.json.")
    parser.add_argument("--root", default=".", help="the repository's folder (default: the working directory)")
    parser.add_argument("--check", action="store_true", help="only report whether the files are current (exit 1 if not)")
    args = parser.parse_args(argv)
    from voicepipe.profile.editorschema import schema_text

    root = Path(args.root)
    wanted = {root / DOC_FILE: markdown(), root / SCHEMA_FILE: schema_text()}
    stale = [path for path, text in wanted.items()
             if not path.is_file() or path.read_text(encoding="utf-8") != text]
    if args.check:
        for path in stale:
            print(f"{path}: out of date (run python -m voicepipe.profile.reference)", file=sys.stderr)
        return 1 if stale else 0
    for path in stale:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(wanted[path], encoding="utf-8")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
