"""Server frames to the SDK's typed server events: what ``connection.recv()`` does, for less CPU.

The SDK's ``recv()`` parses a frame's JSON, then builds the typed event with its generic model
code: for every field a linear search for the field's descriptor, then a ``_serialize`` that tries
two conversions by raising and catching ``AttributeError``, and for every nested object (the
``response`` of ``response.done``, its ``output`` items, their ``content`` parts) the same again
after working out its deserializer from the type annotation by reflection. That is four fifths of
its time per frame (about 40 of 47 µs a frame on the overhead benchmark's stream; the JSON parse
is about 6.5). :class:`EventParser` builds the same objects directly:

* a field holding a JSON scalar (text, a number, ``true``/``false``, ``null``) is kept as it is,
  which is what the SDK's code does with it; an event whose fields are all scalars (audio and text
  deltas: nine events in ten) becomes its parsed dict in the class its ``type`` names;
* a field the model types as a model, an optional model or a list of models (the only shapes the
  server events use) is built the same way, class by class, with the SDK's discriminators
  (``type`` picks ``ServerEventResponseDone``, an item's ``type`` its item class); a nested object
  the SDK cannot build stays the raw value, as in the SDK;
* anything else (a list or an object in a field that is not a model, a number the model encodes
  as text, a deserializer of another shape, a class with its own ``_deserialize``) is handed to
  the SDK's own function for that value, errors included.

What a class's ``__init__`` sets (the constant ``type`` of ``ServerEventResponseDone``) is read
once from an instance built without arguments and set the same way. The shortcut trusts nothing
it has not seen: the first instance of each class in a process is built by the SDK and the short
way, and compared (class, data with its key order, instance attributes, all the way down); a class
the SDK builds differently keeps going through the SDK for the life of the process. Anything
unexpected on the short way falls back to the SDK for that object. If the SDK's internals this
relies on are missing, every frame goes through the SDK.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Optional

from voicepipe import framejson

#: the SDK's ConnectionError message prefix for a frame it cannot parse (the runtime skips those)
PARSE_ERROR_PREFIX = "Failed to parse message"

#: the close reason :func:`receive` gives a server message over the client's size limit
INCOMING_TOO_BIG = "a server message over the client's size limit"

_new = object.__new__
_MISSING = object()
# what the short way does with a field's value
_KEEP = 0  # scalars as they are; a list or an object through the SDK's _serialize(value, format)
_SDK = 1  # the SDK's _create_value(field, value)
_MODEL = 2  # a compiled model deserializer


class _Plan:
    """How to build instances of one SDK model class without the SDK's per-field code."""

    __slots__ = ("cls", "fields", "special", "defaults", "sets", "terminal", "checked", "fast")

    def __init__(self, cls: type, fast: bool = True):
        self.cls = cls
        #: JSON name -> (what to do, the field or its compiled deserializer)
        self.fields: dict[str, tuple] = {}
        #: fields whose scalar value the SDK would change or wrap (models, text-encoded numbers)
        self.special: frozenset = frozenset()
        #: (JSON name, field) of the fields with a client default, filled in when absent
        self.defaults: tuple = ()
        #: (JSON name, value) the class's own ``__init__`` sets after the fields
        self.sets: tuple = ()
        #: a server event class that no second discriminator refines: its ``type`` alone names it
        self.terminal = False
        #: whether the shortcut has been compared with the SDK (on the class's first instance)
        self.checked = not fast
        #: whether the shortcut builds what the SDK builds
        self.fast = fast


class _Fallback(Exception):
    """The short way met something it does not build: the SDK builds that object."""


class EventParser:
    """:meth:`parse` turns a frame's bytes into the SDK's typed event, as ``recv()`` does."""

    def __init__(self) -> None:
        from azure.ai.voicelive.models import ServerEvent

        self._server_event = ServerEvent
        self._plans: dict[type, _Plan] = {}
        self._discriminators: dict[tuple, Any] = {}
        try:
            from azure.ai.voicelive._utils import model_base

            self._mapping = ServerEvent.__mapping__
            self._unset = model_base._UNSET
            self._create_value = model_base._create_value
            self._serialize = model_base._serialize
            self._model_base = model_base
            self._model_deserialize = model_base.Model._deserialize.__func__
            self._model_init = model_base.Model.__init__
            self._error: Callable[[], Exception] = model_base.DeserializationError
            self.enabled = True
        except (ImportError, AttributeError):  # an SDK without these internals: always its own way
            self.enabled = False

    def parse(self, raw: bytes) -> Any:
        """The typed event of one frame; raises the SDK's ``ConnectionError`` for a frame that is
        not JSON or that the SDK cannot build, as ``recv()`` does."""
        try:
            return self.build(framejson.loads(raw))
        except (ValueError, TypeError) as exc:
            from azure.ai.voicelive.aio import ConnectionError as SDKConnectionError

            raise SDKConnectionError(f"{PARSE_ERROR_PREFIX}: {exc}") from exc

    def build(self, payload: Any) -> Any:
        """The typed event for a parsed frame (``ServerEvent._deserialize(payload, [])``). The
        payload is the caller's no more: a flat one becomes the event's data."""
        if self.enabled and type(payload) is dict:
            kind = payload.get("type")
            if type(kind) is str:
                plan = self._plans.get(self._mapping.get(kind, self._server_event))
                if plan is not None and plan.fast and plan.checked and plan.terminal:
                    for value in payload.values():
                        if type(value) is dict or type(value) is list:
                            break
                    else:
                        if plan.special.isdisjoint(payload):
                            return self._finish(plan, payload)  # the parsed dict is the event's data
            try:
                return self._model(self._server_event, payload)
            except Exception:  # the SDK's own way, with its own errors (the payload is untouched)
                pass
        return self._server_event._deserialize(payload, [])

    # -- models ------------------------------------------------------------------------------------

    def _model(self, cls: type, data: dict) -> Any:
        """``cls._deserialize(data, [])`` for a dict ``data``, which is left as it is."""
        exist: list = []
        while True:
            if getattr(cls._deserialize, "__func__", None) is not self._model_deserialize:
                raise _Fallback(cls)  # a class with its own way of being built
            if not hasattr(cls, "__mapping__"):
                break
            key = (cls, tuple(exist))
            discriminator = self._discriminators.get(key, _MISSING)
            if discriminator is _MISSING:
                discriminator = self._discriminators[key] = cls._get_discriminator(exist)
            if discriminator is None:
                break
            exist.append(discriminator._rest_name)
            cls = cls.__mapping__.get(data.get(discriminator._rest_name), cls)
        plan = self._plans.get(cls)
        if plan is None or not plan.checked:
            return self._first(cls, data, plan)
        if not plan.fast:
            return cls(data)
        return self._construct(plan, data)

    def _first(self, cls: type, data: dict, plan: Optional[_Plan]) -> Any:
        """The first instance of ``cls``: built by the SDK and the short way, compared."""
        made = cls(data)  # also has the SDK work out the class's fields, once
        if plan is None:
            plan = self._plans[cls] = self._plan(cls)
        if plan.fast:
            try:
                short = self._construct(plan, data)
            except Exception:
                short = None
            plan.fast = short is not None and _same(short, made)
        plan.checked = True
        return made

    def _construct(self, plan: _Plan, data: dict) -> Any:
        """``cls(data)`` for a checked class: its fields value by value, then what its ``__init__`` sets."""
        out = {}
        fields = plan.fields
        for key, value in data.items():
            what, how = fields.get(key, (_KEEP, None))
            if what == _KEEP:
                if type(value) is dict or type(value) is list:
                    value = self._serialize(value, how)
            elif what == _MODEL:
                if value is not None:
                    try:
                        value = how(value)
                    except Exception as exc:  # as the SDK's _deserialize_with_callable reports it
                        raise self._error() from exc
            else:
                value = self._create_value(how, value)
            out[key] = value
        return self._finish(plan, out)

    def _finish(self, plan: _Plan, data: dict) -> Any:
        for name, field in plan.defaults:
            if name not in data:
                data[name] = self._create_value(field, field._default)
        for name, value in plan.sets:
            data[name] = value
        made = _new(plan.cls)
        made._data = data
        return made

    def _plan(self, cls: type) -> _Plan:
        plan = _Plan(cls)
        try:
            rest_fields = list(cls._attr_to_rest_field.values())
            by_name: dict[str, Any] = {}
            for field in rest_fields:
                by_name.setdefault(field._rest_name, field)  # the SDK takes the first match too
            for name, field in by_name.items():
                if field._is_model:
                    compiled = self._compile(field._type)
                    plan.fields[name] = (_SDK, field) if compiled is None else (_MODEL, compiled)
                elif field._format == "str" or field._is_multipart_file_input:
                    plan.fields[name] = (_SDK, field)
                else:
                    plan.fields[name] = (_KEEP, field._format)
            plan.special = frozenset(name for name, (what, _) in plan.fields.items() if what != _KEEP)
            plan.defaults = tuple((field._rest_name, field) for field in rest_fields if field._default is not self._unset)
            plan.sets = self._sets(cls, {name for name, _ in plan.defaults})
            if issubclass(cls, self._server_event):
                first = self._server_event._get_discriminator([])
                plan.terminal = first is not None and cls._get_discriminator([first._rest_name]) is None
        except Exception:  # a class this does not understand: the SDK builds it
            return _Plan(cls, fast=False)
        return plan

    def _sets(self, cls: type, defaults: set) -> tuple:
        """What ``cls.__init__`` sets beyond the fields and their defaults (a constant ``type``)."""
        if cls.__init__ is self._model_init:
            return ()
        bare = self._model_init.__get__(_new(cls))  # Model.__init__ alone: the defaults
        probe = _new(cls)
        bare()
        cls.__init__(probe)
        reference = dict(bare.__self__._data)
        sets = tuple((name, value) for name, value in probe._data.items() if reference.get(name, _MISSING) != value)
        if any(name in defaults for name, _ in sets) or any(type(value) in (dict, list) for _, value in sets):
            raise _Fallback(cls)
        return sets

    def _compile(self, deserializer: Any) -> Optional[Callable[[Any], Any]]:
        """The SDK's deserializer of a model field as a function of a value that is not ``None``,
        for the shapes the server events use; ``None`` for any other shape."""
        if not isinstance(deserializer, functools.partial) or deserializer.keywords:
            return None
        function, args = deserializer.func, deserializer.args
        base = self._model_base
        if function is base._deserialize_model and len(args) == 1 and isinstance(args[0], type) \
                and issubclass(args[0], base.Model):
            return functools.partial(self._model_value, args[0])
        if function is base._deserialize_with_optional and len(args) == 1:
            return self._compile(args[0])  # None is handled by the caller, as the SDK does
        if function is base._deserialize_sequence and len(args) == 2:
            inner = self._compile(args[0])
            if inner is None:
                return None
            return functools.partial(self._sequence_value, inner, deserializer)
        return None

    def _model_value(self, cls: type, value: Any) -> Any:
        """``_deserialize_model(cls, value)``: the model, or the value itself if it cannot be one."""
        if type(value) is dict:
            try:
                return self._model(cls, value)
            except Exception:
                pass  # the SDK decides: the model, or the raw value
        elif getattr(value, "_is_model", False):
            return value
        try:
            return cls._deserialize(value, [])
        except Exception:
            return value

    def _sequence_value(self, inner: Callable[[Any], Any], deserializer: Any, value: Any) -> Any:
        """``_deserialize_sequence(...)(value)``: a list of models (a ``None`` entry stays ``None``)."""
        if type(value) is not list:
            return deserializer(value)  # the SDK's own, for anything else
        items = []
        for entry in value:
            if entry is not None:
                try:
                    entry = inner(entry)
                except Exception as exc:
                    raise self._error() from exc
            items.append(entry)
        return items


def _same(short: Any, made: Any) -> bool:
    """Whether two SDK objects are the same all the way down: classes, data in order, attributes."""
    if type(short) is not type(made):
        return False
    if hasattr(made, "_data") and hasattr(made, "_attr_to_rest_field"):
        if vars(short).keys() != vars(made).keys() or list(short._data) != list(made._data):
            return False
        return all(_same(short._data[key], made._data[key]) for key in made._data)
    if type(made) is list:
        return len(short) == len(made) and all(_same(a, b) for a, b in zip(short, made))
    if type(made) is dict:
        return list(short) == list(made) and all(_same(short[key], made[key]) for key in made)
    return short is made or short == made


_PARSER: Optional[EventParser] = None


def parser() -> EventParser:
    """The process's parser (its plans are learnt once per process)."""
    global _PARSER
    if _PARSER is None:
        _PARSER = EventParser()
    return _PARSER


async def receive(connection: Any) -> Any:
    """``await connection.recv()``, with the event built by :func:`parser`: the frame's bytes from
    ``connection.recv_bytes()`` (which raises ``ConnectionClosed`` as ``recv()`` does), an empty
    frame a ``ConnectionClosed(1006)``, a frame that cannot be parsed the SDK's
    ``ConnectionError("Failed to parse message: ...")``. A connection without ``recv_bytes``
    (a test double) is asked for ``recv()``."""
    recv_bytes = getattr(connection, "recv_bytes", None)
    if recv_bytes is None:
        return await connection.recv()
    try:
        raw = await recv_bytes()
    except Exception as exc:
        _raise_abnormal_close(exc, connection)
        raise
    if not raw:
        from azure.ai.voicelive.aio import ConnectionClosed

        raise ConnectionClosed(1006, "Empty WebSocket frame")
    return parser().parse(raw)


def _raise_abnormal_close(exc: BaseException, connection: Any) -> None:
    """The close code the WebSocket underneath knows, where the SDK reports another: a socket that
    ended without a close frame is a normal close (1000) to the SDK, but abnormal (1006) to the
    socket: a lost network, not a goodbye; a frame over the size limit is a 1006 to the SDK, but
    1009 (message too big) to the socket: not something reconnecting cures."""
    from azure.ai.voicelive.aio import ConnectionClosed

    if not isinstance(exc, ConnectionClosed) or exc.code not in (1000, 1006):
        return
    socket_code = getattr(getattr(connection, "_connection", None), "close_code", None)
    if exc.code == 1000 and isinstance(socket_code, int) and socket_code != 1000:
        raise ConnectionClosed(socket_code, "the connection ended without a close frame") from None
    if exc.code == 1006 and socket_code == 1009:
        raise ConnectionClosed(1009, INCOMING_TOO_BIG) from None
