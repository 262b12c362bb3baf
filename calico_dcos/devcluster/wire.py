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
(set by the tests) compares it with `MessageToDict` on every call.
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


class _Field:
    """What the JSON walk and `to_json` need of one field, looked up once."""

    __slots__ = ("field", "name", "type", "repeated", "required", "message", "map", "out")

    def __init__(self, field: FieldDescriptor) -> None:
        self.field = field
        self.name = field.name
        self.type = field.type
        self.repeated = _repeated(field)
        self.required = _required(field)
        self.message = field.type == FieldDescriptor.TYPE_MESSAGE
        self.map = self.message and field.message_type.GetOptions().map_entry
        self.out: Callable[[Any], Any] = _converter(field)


@cache
def _fields(descriptor: Descriptor) -> dict[str, _Field]:
    """A message type's fields by name."""
    return {name: _Field(field) for name, field in descriptor.fields_by_name.items()}


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
        return to_json(parse_json(value))
    if CHECKS:
        expected = to_json(parse_json(value))
        if plain != expected:
            raise AssertionError(f"wire.call_json {plain} != full parse {expected}")
    return plain


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
