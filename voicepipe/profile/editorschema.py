"""A JSON Schema (draft 2020-12) of a profile, for editors: completion, hover text, checking as you
type (``# yaml-language-server: $schema=...`` on a profile's first line). ``voicepipe schema``
prints it.

It is made from the same specs as validation and the same descriptions as the reference page
(:mod:`voicepipe.profile.reference`). It cannot say everything ``voicepipe validate`` does (files
that exist, tool handlers that import, cross-key rules), so it may accept a profile ``validate``
refuses, never the other way round for the keys it describes. A value may be a ``${VAR}``
reference anywhere, and a top-level key not in the schema is taken as a plugin's section.
"""

from __future__ import annotations

import json
from typing import Any, Optional

from voicepipe.profile.reference import doc
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


def to_schema(spec: Spec, path: str) -> dict[str, Any]:
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
        array: dict[str, Any] = {"type": "array", "items": to_schema(spec.item, f"{path}[]")}
        if spec.min_len:
            array["minItems"] = spec.min_len
        if spec.max_len is not None:
            array["maxItems"] = spec.max_len
        if spec.unique:
            array["uniqueItems"] = True
        return {"anyOf": [array, to_schema(spec.item, f"{path}[]")]} if spec.single else array
    if isinstance(spec, FreeMap):
        schema = {"type": "object"}
        values = to_schema(spec.values, f"{path}[]")
        if values:
            schema["additionalProperties"] = values
        if spec.max_len is not None:
            schema["maxProperties"] = spec.max_len
        return schema
    if isinstance(spec, Map):
        return _nullable(spec, _object(path, spec.fields | spec.passthrough, spec.required))
    if isinstance(spec, Tagged):
        variants = [
            _object(path, variant.fields | variant.passthrough, (spec.tag, *variant.required), tag=(spec.tag, name))
            for name, variant in spec.variants.items()
        ]
        return _nullable(spec, {"type": "object", "anyOf": variants})
    if isinstance(spec, Either):
        return {"anyOf": [to_schema(option, path) for option in spec.options]}
    if isinstance(spec, Backend):
        return _backend(spec, path)
    raise TypeError(f"{path}: no JSON Schema for {type(spec).__name__}")


def _object(path: str, fields: dict[str, Spec], required: tuple[str, ...] | list[str] = (),
            tag: Optional[tuple[str, str]] = None) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    for key, child in fields.items():
        if tag is not None and key == tag[0]:
            properties[key] = {"const": tag[1], **_describe(f"{path}.{key}")}
        else:
            properties[key] = {**to_schema(child, f"{path}.{key}"), **_describe(f"{path}.{key}")}
    schema: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        schema["required"] = list(required)
    return schema


def _backend(spec: Any, path: str) -> dict[str, Any]:
    """``audio.input`` / ``audio.output``: null, a backend name, or a mapping whose ``backend``
    picks the options (a plugin's backend takes any)."""
    from voicepipe.profile.schema import _REQUIRED_OPTIONS, BACKEND_OPTIONS, BUILTIN_BACKENDS, NULL_BACKEND_NAMES

    names = list(BUILTIN_BACKENDS) + sorted(NULL_BACKEND_NAMES - {""})
    backend_doc = _describe(f"{path}.backend")
    variants: list[dict[str, Any]] = []
    for name, options in BACKEND_OPTIONS[spec.direction].items():
        backend = {"enum": [name, *sorted(NULL_BACKEND_NAMES - {""})] if name == "null" else [name]}
        variant = _object(path, dict(options), ("backend", *_REQUIRED_OPTIONS.get(name, ())))
        variant["properties"] = {"backend": {**backend, **backend_doc}, **variant["properties"]}
        variants.append(variant)
    variants.append({  # a plugin's backend: its options are its own
        "type": "object",
        "properties": {"backend": {"type": "string", "not": {"enum": names}, **backend_doc}},
        "required": ["backend"],
    })
    variants.append({"type": "object", "maxProperties": 0})
    return {"anyOf": [{"type": "null"}, {"type": "string"}, *variants]}


def json_schema() -> dict[str, Any]:
    """The whole profile's JSON Schema."""
    from voicepipe.profile.schema import SECTIONS

    properties: dict[str, Any] = {
        "extends": {"anyOf": [{"type": "string", "minLength": 1},
                              {"type": "array", "items": {"type": "string", "minLength": 1}}],
                    **_describe("extends")},
    }
    for name, spec in SECTIONS.items():
        properties[name] = {**to_schema(spec, name), **_describe(name)}
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
                                "description": "${VAR} or ${VAR:-default}, from the environment."}},
    }


def schema_text() -> str:
    """:func:`json_schema` as the text ``voicepipe schema`` prints and the docs hold."""
    return json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n"
