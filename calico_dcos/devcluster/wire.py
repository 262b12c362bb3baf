"""Scheduler calls off the wire, checked against the real Mesos v1 messages.

The master converts a JSON body with stout's `protobuf::parse<v1::scheduler::Call>`
(apache/mesos `3rdparty/stout/include/stout/protobuf.hpp`, `internal::Parser`) and a
protobuf body with `ParseFromString` (`src/master/http.cpp`, `Master::Http::scheduler`).
Here the same messages come from `proto/mesos_v1.desc`, compiled from apache/mesos'
`include/mesos/v1/scheduler/scheduler.proto` and `mesos/v1/mesos.proto` by
`scripts/gen_mesos_descriptors.py`, and the JSON walk repeats stout's rules:

- keys that name no field are ignored; `null` leaves a field unset;
- a JSON type the field cannot take is an error ("Not expecting a JSON string for field
  'value'"), an array for a non-repeated field too; a single value for a repeated field
  is one element;
- strings are accepted for numbers and booleans when they parse as such;
- `bytes` are base64 (standard alphabet; whitespace skipped, `=` ends the data);
- an enum name that does not exist is an error only for a `required` field, otherwise the
  field stays unset (proto2's rule);
- afterwards every `required` field must be set: "Missing required fields: a.b, c".

The result is the call as the master sees it, as JSON again (`MessageToDict` with the
proto field names): unknown keys gone, types normalized (64-bit integers as strings, as the
protobuf JSON mapping writes them), so the handlers never meet a value of the wrong type.

Every call of every size goes through here, so the per-field facts the walk needs (repeated,
required, type, converter) are looked up once per message type (`_fields`), and `to_json`
writes the dictionary itself with `MessageToDict`'s rules for these proto2 messages (it
hands any well-known type or extension to `MessageToDict`); `CALICO_DEVCLUSTER_CHECKS=1`
(set by the tests) compares it with `MessageToDict` on every call. A call made only of the
plain values clients send (objects, ASCII text, booleans, in-range integers, finite
doubles, known enum names, required fields set) is normalized on its JSON directly
(`direct_json`: the same facts, no protobuf message, ~3x faster for an ACCEPT); anything
else takes the full walk, and the checks compare the two, key order included.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import os
import string
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.internal import type_checkers
from google.protobuf.message import DecodeError, Message

DESCRIPTORS = Path(__file__).with_name("proto") / "mesos_v1.desc"
B64_CHARS = frozenset(string.ascii_letters + string.digits + "+/")

_NUMBERS = {
    FieldDescriptor.TYPE_DOUBLE: float,
    FieldDescriptor.TYPE_FLOAT: float,
    **dict.fromkeys(
        (FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_SINT64, FieldDescriptor.TYPE_SFIXED64,
         FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED64, FieldDescriptor.TYPE_INT32,
         FieldDescriptor.TYPE_SINT32, FieldDescriptor.TYPE_SFIXED32, FieldDescriptor.TYPE_UINT32,
         FieldDescriptor.TYPE_FIXED32),
        int,
    ),
}  # fmt: skip


class CallError(ValueError):
    """The body is not a Call; the text is what follows the master's prefix."""


@cache
def _pool() -> descriptor_pool.DescriptorPool:
    files = descriptor_pb2.FileDescriptorSet.FromString(DESCRIPTORS.read_bytes())
    pool = descriptor_pool.DescriptorPool()
    for file in files.file:
        pool.Add(file)
    return pool


def message_class(full_name: str) -> type[Message]:
    """The class of a Mesos message, e.g. `mesos.v1.scheduler.Call`."""
    return message_factory.GetMessageClass(_pool().FindMessageTypeByName(full_name))


def _repeated(field: FieldDescriptor) -> bool:
    flag = getattr(field, "is_repeated", None)
    if flag is not None:
        return bool(flag)
    return field.label == FieldDescriptor.LABEL_REPEATED


def _required(field: FieldDescriptor) -> bool:
    flag = getattr(field, "is_required", None)
    if flag is not None:
        return bool(flag)
    return field.label == FieldDescriptor.LABEL_REQUIRED


# The integer ranges protobuf's setters enforce (`type_checkers`), by C++ type.
_INT_RANGES = {
    FieldDescriptor.CPPTYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.CPPTYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.CPPTYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.CPPTYPE_UINT64: (0, 2**64 - 1),
}


class _Field:
    """What the JSON walk and `to_json` need of one field, looked up once. `fast`: how
    `_direct` takes a value of this field ("string", "bool", "int", "double", "enum",
    "message"), or None when only the full walk may (bytes, floats, maps, enums with JSON
    options, messages of google.protobuf or with a oneof)."""

    __slots__ = ("field", "name", "type", "repeated", "required", "message", "map", "out",
                 "fast", "low", "high", "enum_numbers", "message_type")  # fmt: skip

    def __init__(self, field: FieldDescriptor) -> None:
        self.field = field
        self.name = field.name
        self.type = field.type
        self.repeated = _repeated(field)
        self.required = _required(field)
        self.message = field.type == FieldDescriptor.TYPE_MESSAGE
        self.map = self.message and field.message_type.GetOptions().map_entry
        self.out: Callable[[Any], Any] = _converter(field)
        self.low, self.high = _INT_RANGES.get(field.cpp_type, (0, 0))
        self.enum_numbers: dict[str, int] = {}
        self.fast = _fast_kind(field, self.map)
        self.message_type = field.message_type if self.message else None
        if self.fast == "enum":
            self.enum_numbers = {v.name: v.number for v in field.enum_type.values}


def _fast_kind(field: FieldDescriptor, is_map: bool) -> str | None:
    cpp = field.cpp_type
    if field.type == FieldDescriptor.TYPE_STRING:
        return "string"
    if cpp == FieldDescriptor.CPPTYPE_BOOL:
        return "bool"
    if cpp in _INT_RANGES:
        return "int"
    if cpp == FieldDescriptor.CPPTYPE_DOUBLE:
        return "double"
    if cpp == FieldDescriptor.CPPTYPE_ENUM:
        enum = field.enum_type
        plain = enum.full_name != "google.protobuf.NullValue" and not any(
            v.GetOptions().ListFields() for v in enum.values
        )
        return "enum" if plain else None
    if cpp == FieldDescriptor.CPPTYPE_MESSAGE and not is_map:
        kind = field.message_type
        if not kind.full_name.startswith("google.protobuf.") and not kind.oneofs:
            return "message"
    return None


@cache
def _fields(descriptor: Descriptor) -> dict[str, _Field]:
    """A message type's fields by name."""
    return {name: _Field(field) for name, field in descriptor.fields_by_name.items()}


@cache
def _shape(descriptor: Descriptor) -> tuple[dict[str, int], tuple[str, ...]]:
    """A message type's field order (`ListFields`: by field number) and its required
    fields."""
    fields = sorted(descriptor.fields, key=lambda f: f.number)
    order = {field.name: index for index, field in enumerate(fields)}
    return order, tuple(f.name for f in fields if _required(f))


def stout_base64_decode(text: str) -> bytes:
    """stout's `base64::decode`: standard alphabet, whitespace skipped, `=` ends the data."""
    kept = []
    for char in text:
        if char == "=":
            break
        if char.isspace():
            continue
        if char not in B64_CHARS:
            raise CallError(f"Invalid character '{char}'")
        kept.append(char)
    data = "".join(kept)
    data = data[: len(data) - len(data) % 4] if len(data) % 4 == 1 else data
    # Only alphabet characters, a length not 1 mod 4, padded to a multiple of 4: a string
    # b64decode always takes, so it has no error to turn into CallError.
    return base64.b64decode(data + "=" * (-len(data) % 4))


def _set(message: Message, field: FieldDescriptor, value: Any) -> None:
    if _repeated(field):
        getattr(message, field.name).append(value)
    else:
        setattr(message, field.name, value)


def _from_string(message: Message, field: FieldDescriptor, text: str) -> None:
    kind = field.type
    if kind == FieldDescriptor.TYPE_STRING:
        _set(message, field, text)
    elif kind == FieldDescriptor.TYPE_BYTES:
        try:
            _set(message, field, stout_base64_decode(text))
        except CallError as exc:
            raise CallError(f"Failed to base64 decode bytes field '{field.name}': {exc}") from exc
    elif kind == FieldDescriptor.TYPE_ENUM:
        value = field.enum_type.values_by_name.get(text)
        if value is None:
            if _required(field):
                raise CallError(f"Failed to find enum for '{text}'")
            return
        _set(message, field, value.number)
    elif kind in _NUMBERS:
        try:
            number = json.loads(text)
        except ValueError:
            number = None
        if text in ("Infinity", "-Infinity") and _NUMBERS[kind] is float:
            number = float(text.replace("Infinity", "inf"))
        if isinstance(number, bool) or not isinstance(number, int | float):
            raise CallError(f"Failed to parse '{text}' as a JSON number for field '{field.name}'")
        _from_number(message, field, number)
    elif kind == FieldDescriptor.TYPE_BOOL:
        if text not in ("true", "false"):
            raise CallError(f"Failed to parse '{text}' as a JSON boolean for field '{field.name}'")
        _set(message, field, text == "true")
    else:
        raise CallError(f"Not expecting a JSON string for field '{field.name}'")


def _from_number(message: Message, field: FieldDescriptor, number: int | float) -> None:
    convert = _NUMBERS.get(field.type)
    if convert is None:
        raise CallError(f"Not expecting a JSON number for field '{field.name}'")
    try:
        _set(message, field, convert(number))
    except (ValueError, OverflowError) as exc:
        raise CallError(f"Bad number for field '{field.name}': {exc}") from exc


def _value(message: Message, plan: _Field, value: Any) -> None:
    """`internal::Parser`: one JSON value into the field `plan` of `message`."""
    if value is None:
        return
    field = plan.field
    if isinstance(value, list):
        if not plan.repeated:
            raise CallError(f"Not expecting a JSON array for field '{plan.name}'")
        for item in value:
            _value(message, plan, item)
    elif isinstance(value, dict):
        if not plan.message:
            raise CallError(f"Not expecting a JSON object for field '{plan.name}'")
        if plan.map:
            target = getattr(message, plan.name)
            entries = _fields(field.message_type)
            for key, item in value.items():
                entry = entries["value"]
                holder = message_class(field.message_type.full_name)()
                _value(holder, entries["key"], key)
                _value(holder, entry, item)
                if entry.message:
                    target[holder.key].CopyFrom(holder.value)
                else:
                    target[holder.key] = holder.value
        elif plan.repeated:
            _object(getattr(message, plan.name).add(), value)
        else:
            _object(getattr(message, plan.name), value)
            getattr(message, plan.name).SetInParent()
    elif isinstance(value, bool):
        if plan.type != FieldDescriptor.TYPE_BOOL:
            raise CallError(f"Not expecting a JSON boolean for field '{plan.name}'")
        _set(message, field, value)
    elif isinstance(value, int | float):
        _from_number(message, field, value)
    elif isinstance(value, str):
        if plan.type == FieldDescriptor.TYPE_STRING:
            if plan.repeated:
                getattr(message, plan.name).append(value)
            else:
                setattr(message, plan.name, value)
        else:
            _from_string(message, field, value)


def _object(message: Message, obj: dict) -> None:
    fields = _fields(message.DESCRIPTOR)
    for name, value in obj.items():
        plan = fields.get(name)
        if plan is not None:
            _value(message, plan, value)


def parse_json(value: Any, full_name: str = "mesos.v1.scheduler.Call") -> Message:
    """stout's `protobuf::parse<T>(JSON::Value)`. Raises CallError with stout's text."""
    if not isinstance(value, dict):
        raise CallError("Expecting a JSON object")
    message = message_class(full_name)()
    _object(message, value)
    missing = message.FindInitializationErrors()
    if missing:
        raise CallError(f"Missing required fields: {', '.join(missing)}")
    return message


def parse_protobuf(body: bytes, full_name: str = "mesos.v1.scheduler.Call") -> Message:
    """`Message::ParseFromString`, which also refuses a message missing required fields."""
    message = message_class(full_name)()
    try:
        message.ParseFromString(body)
    except DecodeError as exc:
        raise CallError("Failed to parse body into Call protobuf") from exc
    if not message.IsInitialized():
        raise CallError("Failed to parse body into Call protobuf")
    return message


CHECKS = os.environ.get("CALICO_DEVCLUSTER_CHECKS") == "1"


def call_json(value: Any) -> dict:
    """A JSON scheduler call as the master sees it: `to_json(parse_json(value))`. Raises
    CallError with stout's text.

    An ACKNOWLEDGE (13 of the ~18 calls a framework makes per task-running agent) in the
    plain shape every client sends, IDs of ASCII text and a canonical base64 uuid, parses to
    itself: it is answered without building the protobuf message (`_plain_acknowledge`);
    anything else takes the full walk. `CALICO_DEVCLUSTER_CHECKS=1` compares the two."""
    plain = _plain_acknowledge(value)
    if plain is None:
        plain = direct_json(value)
    if plain is None:
        return to_json(parse_json(value))
    if CHECKS:
        expected = to_json(parse_json(value))
        if json.dumps(plain) != json.dumps(expected):  # key order too, at every depth
            raise AssertionError(f"wire.call_json {plain} != full parse {expected}")
    return plain


class _Unusual(Exception):
    """A value `direct_json` leaves to the full walk."""


def direct_json(value: Any, full_name: str = "mesos.v1.scheduler.Call") -> dict | None:
    """What `to_json(parse_json(value))` gives, computed on the JSON itself with the same
    per-field facts, for a call made only of what clients send: objects, text (ASCII),
    booleans, integers in their field's range, finite doubles, enum names; with every
    required field set. None for anything else (bytes, a string where a number is
    expected, an unknown enum name, null in a list, a missing required field, …): the
    full walk then gives the answer or stout's error. An ACCEPT (1.3 KB, a TaskInfo) takes
    ~40 µs here against ~200 µs through the protobuf message."""
    if not isinstance(value, dict):
        return None
    try:
        return _direct(value, message_class(full_name).DESCRIPTOR)
    except _Unusual:
        return None


def _direct(obj: dict, descriptor: Descriptor) -> dict:
    fields = _fields(descriptor)
    order, required = _shape(descriptor)
    out: dict[str, Any] = {}
    for name, value in obj.items():
        plan = fields.get(name)
        if plan is None or value is None:
            continue
        kind = plan.fast
        if plan.repeated:
            items = value if isinstance(value, list) else [value]
            if kind == "message":  # the common kinds inline, the others in `_direct_value`
                converted = []
                for item in items:
                    if type(item) is not dict:
                        raise _Unusual
                    converted.append(_direct(item, plan.message_type))
            else:
                converted = [_direct_value(plan, item) for item in items]
            if converted:
                out[name] = converted
        elif isinstance(value, list):
            raise _Unusual
        elif kind == "string" and type(value) is str and value.isascii():
            out[name] = value
        elif kind == "message" and type(value) is dict:
            out[name] = _direct(value, plan.message_type)
        else:
            out[name] = _direct_value(plan, value)
    for name in required:
        if name not in out:
            raise _Unusual
    if len(out) > 1:
        names = list(out)
        ordered = sorted(names, key=order.__getitem__)
        if ordered != names:
            out = {name: out[name] for name in ordered}
    return out


def _direct_value(plan: _Field, value: Any) -> Any:
    """One value (not a list, not null) of the field `plan`, as `to_json` writes it."""
    kind = plan.fast
    if kind == "string":
        if type(value) is str and value.isascii():
            return value
    elif kind == "message":
        if type(value) is dict:
            return _direct(value, plan.message_type)
    elif kind == "bool":
        if type(value) is bool:
            return value
    elif kind == "int":
        if type(value) is int and plan.low <= value <= plan.high:
            return plan.out(value)
    elif kind == "double":
        if type(value) is float and math.isfinite(value):
            return value
        if type(value) is int and -(2**53) <= value <= 2**53:
            return float(value)
    elif kind == "enum" and type(value) is str:
        number = plan.enum_numbers.get(value)
        if number is not None:
            return plan.out(number)
    raise _Unusual


def _plain_acknowledge(value: Any) -> dict | None:
    if not isinstance(value, dict) or value.get("type") != "ACKNOWLEDGE" or len(value) != 3:
        return None
    framework_id, body = value.get("framework_id"), value.get("acknowledge")
    if not isinstance(body, dict) or len(body) != 3:
        return None
    agent_id, task_id, uuid = body.get("agent_id"), body.get("task_id"), body.get("uuid")
    ids = (_plain_id(framework_id), _plain_id(agent_id), _plain_id(task_id))
    if None in ids or not isinstance(uuid, str) or not _canonical_base64(uuid):
        return None
    return {
        "framework_id": {"value": ids[0]},
        "type": "ACKNOWLEDGE",
        "acknowledge": {"agent_id": {"value": ids[1]}, "task_id": {"value": ids[2]}, "uuid": uuid},
    }


def _plain_id(value: Any) -> str | None:
    """An `*ID` message's JSON holding only a `value` of ASCII text: the text."""
    if isinstance(value, dict) and len(value) == 1:
        text = value.get("value")
        if isinstance(text, str) and text.isascii():
            return text
    return None


def _canonical_base64(text: str) -> bool:
    """`text` is what base64-encoding its own decoding gives (so stout's decoding and
    MessageToDict's encoding return it unchanged)."""
    if not text.isascii() or len(text) % 4 or not B64_CHARS.issuperset(text.rstrip("=")):
        return False
    try:
        return base64.b64encode(base64.b64decode(text, validate=True)).decode() == text
    except binascii.Error:
        return False


def to_json(message: Message) -> dict:
    """The message as the JSON the master would write (proto field names): what
    `json_format.MessageToDict(message, preserving_proto_field_name=True)` gives."""
    out = _message_json(message)
    if CHECKS:
        expected = json_format.MessageToDict(message, preserving_proto_field_name=True)
        if out != expected:
            raise AssertionError(f"wire.to_json {out} != MessageToDict {expected}")
    return out


def _message_json(message: Message) -> dict:
    descriptor = message.DESCRIPTOR
    if descriptor.full_name.startswith("google.protobuf."):
        return json_format.MessageToDict(message, preserving_proto_field_name=True)
    fields = _fields(descriptor)
    out = {}
    for field, value in message.ListFields():
        plan = fields.get(field.name)
        if plan is None or plan.field is not field:  # an extension
            return json_format.MessageToDict(message, preserving_proto_field_name=True)
        if plan.map:
            value_plan = _fields(field.message_type)["value"]
            out[plan.name] = {_map_key(k): value_plan.out(value[k]) for k in value}
        elif plan.repeated:
            convert = plan.out
            out[plan.name] = [convert(item) for item in value]
        else:
            out[plan.name] = plan.out(value)
    return out


def _map_key(key: Any) -> str:
    if isinstance(key, bool):
        return "true" if key else "false"
    return str(key)


def _identity(value: Any) -> Any:
    return value


def _converter(field: FieldDescriptor) -> Callable[[Any], Any]:
    """`_Printer._FieldToJsonObject` (google/protobuf/json_format.py) for one field."""
    cpp = field.cpp_type
    if cpp == FieldDescriptor.CPPTYPE_MESSAGE:
        return _message_json
    if cpp == FieldDescriptor.CPPTYPE_ENUM:
        enum = field.enum_type
        if enum.full_name == "google.protobuf.NullValue" or any(
            v.GetOptions().ListFields() for v in enum.values
        ):
            return lambda value: _printed(field, value)
        names = {number: value.name for number, value in enum.values_by_number.items()}
        return lambda value: names[value] if value in names else _printed(field, value)
    if cpp == FieldDescriptor.CPPTYPE_STRING:
        if field.type == FieldDescriptor.TYPE_BYTES:
            return lambda value: base64.b64encode(value).decode("utf-8")
        return str
    if cpp == FieldDescriptor.CPPTYPE_BOOL:
        return bool
    if cpp in (FieldDescriptor.CPPTYPE_INT64, FieldDescriptor.CPPTYPE_UINT64):
        return str
    if cpp in (FieldDescriptor.CPPTYPE_DOUBLE, FieldDescriptor.CPPTYPE_FLOAT):
        single = cpp == FieldDescriptor.CPPTYPE_FLOAT
        return lambda value: _float_json(value, single)
    return _identity


def _float_json(value: float, single: bool) -> Any:
    if math.isinf(value):
        return "-Infinity" if value < 0.0 else "Infinity"
    if math.isnan(value):
        return "NaN"
    return type_checkers.ToShortestFloat(value) if single else value


def _printed(field: FieldDescriptor, value: Any) -> Any:
    """A value only `MessageToDict` knows how to print (an enum number without a name, an
    enum with JSON options): ask it, through a message holding just this field."""
    holder = message_class(field.containing_type.full_name)()
    if field.cpp_type == FieldDescriptor.CPPTYPE_ENUM and _repeated(field):
        getattr(holder, field.name).append(value)
        return json_format.MessageToDict(holder, preserving_proto_field_name=True)[field.name][0]
    setattr(holder, field.name, value)
    return json_format.MessageToDict(holder, preserving_proto_field_name=True)[field.name]


def event_to_protobuf(event: dict) -> bytes:
    """A `mesos.v1.scheduler.Event` JSON document as protobuf bytes (for streams that asked
    for `application/x-protobuf`)."""
    message = message_class("mesos.v1.scheduler.Event")()
    json_format.ParseDict(event, message, ignore_unknown_fields=True)
    return message.SerializeToString()
