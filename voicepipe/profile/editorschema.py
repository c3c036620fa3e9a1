"""A JSON Schema (draft 2020-12) of a profile, for editors: completion, hover text, checking as you
type (``# yaml-language-server: $schema=...`` on a profile's first line). ``voicepipe schema``
prints it.

It is made from the same specs as validation and the same descriptions as the reference page
(:mod:`voicepipe.profile.reference`). It sees one file without its ``extends:`` parents, so no key
is required, and it cannot say everything ``voicepipe validate`` does (files that exist, tool
handlers that import, cross-key rules): it may accept a profile ``validate`` refuses, never the
other way round for the keys it describes. A value may be a ``${VAR}``
reference anywhere, and a top-level key not in the schema is taken as a plugin's section.
"""

from __future__ import annotations

import json
from typing import Any, Optional

from voicepipe.profile.keydocs import doc
from voicepipe.profile.sdkenums import SdkEnum
from voicepipe.profile.spec import (
    Anything,
    Bool,
    Either,
    Enum,
    FreeMap,
    Json,
    ListOf,
    Map,
    Number,
    Spec,
    Str,
    Tagged,
)

DIALECT = "https://json-schema.org/draft/2020-12/schema"
#: a whole value that is one ``${VAR}`` reference: its type is known only after substitution
REFERENCE = {"$ref": "#/$defs/reference"}


def _describe(path: str) -> dict[str, Any]:
    default, meaning = doc(path)
    return {"description": f"{meaning} Default: {default}."}


def _enum(values: list[Any], fold_case: bool = False) -> dict[str, Any]:
    if fold_case:
        spelled: list[Any] = []
        for value in values:
            for variant in (value, str(value).lower(), str(value).capitalize()):
                if variant not in spelled:
                    spelled.append(variant)
        values = spelled
    return {"enum": list(values)}


def _or_reference(schema: dict[str, Any]) -> dict[str, Any]:
    """A non-string value may also be written as a ``${VAR}`` reference."""
    return {"anyOf": [schema, REFERENCE]}


def _nullable(spec: Spec, schema: dict[str, Any]) -> dict[str, Any]:
    if not spec.nullable or isinstance(spec, (Anything, Json)):
        return schema
    return {"anyOf": [schema, {"type": "null"}]}


class _Builder:
    """Builds the schema; a key that several variants declare alike (the turn detectors'
    ``threshold``, the backends' ``device``) is written once under ``$defs`` and referenced."""

    def __init__(self) -> None:
        self.defs: dict[str, Any] = {}
        self._names: dict[tuple[str, str], str] = {}

    def shared(self, spec: Spec, path: str) -> dict[str, Any]:
        schema = {**self.to_schema(spec, path), **_describe(path)}
        key = (path, json.dumps(schema, sort_keys=True))
        name = self._names.get(key)
        if name is None:
            name = path.replace("[]", ".items")  # [ and ] are not allowed in a URI fragment
            while name in self.defs:
                name += "'"
            self._names[key] = name
            self.defs[name] = schema
        return {"$ref": f"#/$defs/{name}"}

    def to_schema(self, spec: Spec, path: str) -> dict[str, Any]:
        """The JSON Schema of ``spec`` at key path ``path`` (descriptions are added by the caller)."""
        from voicepipe.profile.schema import Backend

        if isinstance(spec, (Anything, Json)):
            return {}
        if isinstance(spec, Bool):
            return _or_reference({"type": "boolean"})
        if isinstance(spec, SdkEnum):
            return _or_reference(_enum(spec.all_values()))
        if isinstance(spec, Enum):
            return _or_reference(_enum(spec.values, spec.fold_case))
        if isinstance(spec, Str):
            from voicepipe.profile.schema import _OPENAI_VOICE, _bare_voice

            if spec.validator is _bare_voice:
                return _or_reference(_enum(_OPENAI_VOICE.all_values()))
            schema: dict[str, Any] = {"type": ["string", "number"] if spec.numbers_as_text else "string"}
            if spec.non_empty:
                schema["minLength"] = 1
            return schema
        if isinstance(spec, Number):
            schema = {"type": "integer" if spec.integer else "number"}
            if spec.low is not None:
                schema["minimum"] = spec.low
            if spec.high is not None:
                schema["maximum"] = spec.high
            if spec.above is not None:
                schema["exclusiveMinimum"] = spec.above
            return _or_reference(schema)
        if isinstance(spec, ListOf):
            array: dict[str, Any] = {"type": "array", "items": self.to_schema(spec.item, f"{path}[]")}
            if spec.min_len:
                array["minItems"] = spec.min_len
            if spec.max_len is not None:
                array["maxItems"] = spec.max_len
            if spec.unique:
                array["uniqueItems"] = True
            return {"anyOf": [array, self.to_schema(spec.item, f"{path}[]")]} if spec.single else array
        if isinstance(spec, FreeMap):
            schema = {"type": "object"}
            values = self.to_schema(spec.values, f"{path}[]")
            if values:
                schema["additionalProperties"] = values
            if spec.max_len is not None:
                schema["maxProperties"] = spec.max_len
            return schema
        if isinstance(spec, Map):
            return _nullable(spec, self._object(path, spec.fields | spec.passthrough))
        if isinstance(spec, Tagged):
            variants = {name: variant.fields | variant.passthrough for name, variant in spec.variants.items()}
            return _nullable(spec, self._tagged(path, spec.tag, {name: {"const": name} for name in variants}, variants))
        if isinstance(spec, Either):
            return {"anyOf": [self.to_schema(option, path) for option in spec.options]}
        if isinstance(spec, Backend):
            return self._backend(spec, path)
        raise TypeError(f"{path}: no JSON Schema for {type(spec).__name__}")


    def _object(self, path: str, fields: dict[str, Spec]) -> dict[str, Any]:
        """A mapping with known keys. Required keys are not required here: a profile that extends
        another may set a few keys of a mapping its parent started."""
        properties = {key: {**self.to_schema(child, f"{path}.{key}"), **_describe(f"{path}.{key}")}
                      for key, child in fields.items()}
        return {"type": "object", "properties": properties, "additionalProperties": False}

    def _tagged(self, path: str, tag: str, tags: dict[str, dict[str, Any]],
                variants: dict[str, dict[str, Spec]], *, other: Optional[dict[str, Any]] = None) -> dict[str, Any]:
        """A mapping whose ``tag`` key picks the variant and so the other keys; without the tag (an
        override of a parent's mapping), the keys of any variant."""
        tag_doc = _describe(f"{path}.{tag}")
        choices: list[dict[str, Any]] = []
        union: dict[str, list[dict[str, Any]]] = {}
        for name, fields in variants.items():
            properties = {tag: {**tags[name], **tag_doc}}
            for key, child in fields.items():
                if key != tag:
                    properties[key] = self.shared(child, f"{path}.{key}")
                    if properties[key] not in union.setdefault(key, []):
                        union[key].append(properties[key])
            choices.append({"properties": properties, "required": [tag], "additionalProperties": False})
        if other is not None:
            choices.append(other)
        untagged = {key: schemas[0] if len(schemas) == 1 else {"anyOf": schemas} for key, schemas in union.items()}
        choices.append({"properties": untagged, "not": {"required": [tag]}, "additionalProperties": False})
        return {"type": "object", "anyOf": choices}

    def _backend(self, spec: Any, path: str) -> dict[str, Any]:
        """``audio.input`` / ``audio.output``: null, a backend name, or a mapping whose ``backend``
        picks the options (a plugin's backend takes any)."""
        from voicepipe.profile.schema import BACKEND_OPTIONS, BUILTIN_BACKENDS, NULL_BACKEND_NAMES

        variants = BACKEND_OPTIONS[spec.direction]
        nulls = sorted(NULL_BACKEND_NAMES - {""})
        tags = {name: {"enum": [name, *nulls, None] if name == "null" else [name]} for name in variants}
        plugin = {  # a plugin's backend: its options are its own
            "properties": {"backend": {"type": "string", "not": {"enum": [*BUILTIN_BACKENDS, *nulls]},
                                       **_describe(f"{path}.backend")}},
            "required": ["backend"],
        }
        return {"anyOf": [{"type": "null"}, {"type": "string"}, self._tagged(path, "backend", tags, variants, other=plugin)]}


def json_schema() -> dict[str, Any]:
    """The whole profile's JSON Schema."""
    from voicepipe.profile.schema import SECTIONS

    properties: dict[str, Any] = {
        "extends": {"anyOf": [{"type": "string", "minLength": 1},
                              {"type": "array", "items": {"type": "string", "minLength": 1}}],
                    **_describe("extends")},
    }
    builder = _Builder()
    for name, spec in SECTIONS.items():
        section = builder.to_schema(spec, name)
        if section.get("type") == "object":  # `session:` with nothing under it yet is an empty section
            section["type"] = ["object", "null"]
        properties[name] = {**section, **_describe(name)}
    return {
        "$schema": DIALECT,
        "title": "voicepipe profile",
        "description": "A voicepipe profile: the connection, the Voice Live session, audio, plugins and "
                       "their settings. Every key is described in docs/profile-reference.md of the voicepipe repository.",
        "type": "object",
        "properties": properties,
        "additionalProperties": {"type": ["object", "null"],
                                 "description": "A plugin's own settings (list the plugin under plugins:)."},
        "$defs": {"reference": {"type": "string", "pattern": r"^\$\{[^}]*\}$",
                                "description": "${VAR} or ${VAR:-default}, from the environment."},
                  **builder.defs},
    }


def schema_text() -> str:
    """:func:`json_schema` as the text ``voicepipe schema`` prints and the docs hold."""
    return json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n"
