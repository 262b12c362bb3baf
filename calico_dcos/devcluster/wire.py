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
"""

from __future__ import annotations

import base64
import binascii
import json
import string
from functools import cache
from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
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
    try:
        return base64.b64decode(data + "=" * (-len(data) % 4))
    except binascii.Error as exc:  # pragma: no cover - alphabet checked above
        raise CallError(str(exc)) from exc


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


def _value(message: Message, field: FieldDescriptor, value: Any) -> None:
    """`internal::Parser`: one JSON value into `field` of `message`."""
    if value is None:
        return
    if isinstance(value, list):
        if not _repeated(field):
            raise CallError(f"Not expecting a JSON array for field '{field.name}'")
        for item in value:
            _value(message, field, item)
    elif isinstance(value, dict):
        if field.type != FieldDescriptor.TYPE_MESSAGE:
            raise CallError(f"Not expecting a JSON object for field '{field.name}'")
        if field.message_type.GetOptions().map_entry:
            target = getattr(message, field.name)
            for key, item in value.items():
                entry = field.message_type.fields_by_name["value"]
                holder = message_class(field.message_type.full_name)()
                _value(holder, field.message_type.fields_by_name["key"], key)
                _value(holder, entry, item)
                if entry.type == FieldDescriptor.TYPE_MESSAGE:
                    target[holder.key].CopyFrom(holder.value)
                else:
                    target[holder.key] = holder.value
        elif _repeated(field):
            _object(getattr(message, field.name).add(), value)
        else:
            _object(getattr(message, field.name), value)
            getattr(message, field.name).SetInParent()
    elif isinstance(value, bool):
        if field.type != FieldDescriptor.TYPE_BOOL:
            raise CallError(f"Not expecting a JSON boolean for field '{field.name}'")
        _set(message, field, value)
    elif isinstance(value, int | float):
        _from_number(message, field, value)
    elif isinstance(value, str):
        _from_string(message, field, value)


def _object(message: Message, obj: dict) -> None:
    descriptor: Descriptor = message.DESCRIPTOR
    for name, value in obj.items():
        field = descriptor.fields_by_name.get(name)
        if field is not None:
            _value(message, field, value)


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


def to_json(message: Message) -> dict:
    """The message as the JSON the master would write (proto field names)."""
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def event_to_protobuf(event: dict) -> bytes:
    """A `mesos.v1.scheduler.Event` JSON document as protobuf bytes (for streams that asked
    for `application/x-protobuf`)."""
    message = message_class("mesos.v1.scheduler.Event")()
    json_format.ParseDict(event, message, ignore_unknown_fields=True)
    return message.SerializeToString()
