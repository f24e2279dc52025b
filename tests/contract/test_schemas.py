"""The .avsc files are the contract: they parse, their twins match, and they stay compatible."""

from __future__ import annotations

import copy
import dataclasses
import io
import json
import typing
from pathlib import Path
from typing import Any

import pytest
from fastavro import schemaless_reader, schemaless_writer
from fastavro.schema import load_schema, to_parsing_canonical_form
from fastavro.utils import generate_many

from services.common.avro.codec import AvroCodec
from services.common.avro.compat import backward_problems
from services.common.avro.records import RECORD_TYPES, EmailRequested, Recipient
from services.common.avro.registry import SchemaRegistry
from services.common.errors import UndecodableRecord

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
CURRENT = sorted(SCHEMAS.glob("*.avsc"))
RELEASED = sorted((SCHEMAS / "released").glob("*/*.avsc"))
REGISTRY = SchemaRegistry(schemas_dir=SCHEMAS)


def _crc64_avro(data: bytes) -> int:
    """The Avro specification's fingerprint algorithm, written out independently."""
    empty = 0xC15D213AA4D7A795
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (empty & -(fp & 1))
        table.append(fp)
    fp = empty
    for byte in data:
        fp = (fp >> 8) ^ table[(fp ^ byte) & 0xFF]
    return fp


def _parse(path: Path) -> Any:
    return load_schema(str(path), _write_hint=False)


@pytest.mark.parametrize("path", CURRENT + RELEASED, ids=lambda p: str(p.relative_to(SCHEMAS)))
def test_every_schema_parses_and_is_named_by_its_file(path: Path) -> None:
    declared = json.loads(path.read_text())
    assert f"{declared['namespace']}.{declared['name']}" == path.stem
    _parse(path)


def test_contract_records_exist() -> None:
    names = {p.stem for p in CURRENT}
    assert {"mailstream.v1.EmailRequested", "mailstream.v1.EmailEvent"} <= names


@pytest.mark.parametrize("cls", RECORD_TYPES, ids=lambda c: c.__name__)
def test_dataclass_twin_matches_its_schema(cls: type[Any]) -> None:
    schema = json.loads((SCHEMAS / f"{cls.AVRO_NAME}.avsc").read_text())
    twin = {f.name: f for f in dataclasses.fields(cls)}
    assert set(twin) == {f["name"] for f in schema["fields"]}
    hints = typing.get_type_hints(cls)
    for field in schema["fields"]:
        nullable = isinstance(field["type"], list) and "null" in field["type"]
        hint_nullable = type(None) in typing.get_args(hints[field["name"]])
        assert nullable == hint_nullable, field["name"]
        has_default = (
            twin[field["name"]].default is not dataclasses.MISSING
            or twin[field["name"]].default_factory is not dataclasses.MISSING
        )
        assert ("default" in field) == has_default, field["name"]


def test_fingerprint_is_crc64_avro_little_endian_of_the_canonical_form() -> None:
    version = REGISTRY.current("mailstream.v1.EmailRequested")
    pcf = to_parsing_canonical_form(version.parsed)
    assert version.fingerprint == _crc64_avro(pcf.encode()).to_bytes(8, "little")


def test_single_object_encoding_layout() -> None:
    codec = AvroCodec(registry=REGISTRY)
    record = {
        "message_id": "m",
        "tenant_id": "t",
        "from_address": "a@b.c",
        "to": [{"address": "x@y.z", "name": None}],
        "requested_at": 5,
    }
    data = codec.encode("mailstream.v1.EmailRequested", record)
    version = REGISTRY.current("mailstream.v1.EmailRequested")
    assert data[:2] == b"\xc3\x01"
    assert data[2:10] == version.fingerprint
    body = io.BytesIO(data[10:])
    assert schemaless_reader(body, version.parsed, None)["message_id"] == "m"


@pytest.mark.parametrize("at", [0, 2**62, 2**63 - 1, -(2**63)])
def test_every_long_a_timestamp_field_holds_decodes_as_that_long(at: int) -> None:
    """A timestamp-millis is a long on the wire: whatever long a producer wrote (past year
    9999 too, which no datetime holds) decodes, so ingest can refuse it with a reason."""
    from services.common.avro.serde import RecordSerde

    serde = RecordSerde(codec=AvroCodec(registry=REGISTRY))
    request = EmailRequested(
        message_id="m", tenant_id="t", from_address="a@b.c", to=[Recipient("x@y.z")],
        requested_at=at, send_at=at, expires_at=at,
    )  # fmt: skip
    decoded = serde.decode(EmailRequested, serde.encode(request))
    assert (decoded.requested_at, decoded.send_at, decoded.expires_at) == (at, at, at)


@pytest.mark.parametrize(
    "bad", [b"", b"\xc3", b"\xc3\x01" + b"\0" * 8 + b"x", b"{json}", b"\xc3\x01" + bytes(8)]
)
def test_garbage_is_undecodable_not_a_crash(bad: bytes) -> None:
    with pytest.raises(UndecodableRecord):
        AvroCodec(registry=REGISTRY).decode("mailstream.v1.EmailRequested", bad)


def test_truncated_and_trailing_bytes_are_undecodable() -> None:
    from services.common.avro.serde import RecordSerde

    serde = RecordSerde(codec=AvroCodec(registry=REGISTRY))
    data = serde.encode(
        EmailRequested(
            message_id="m",
            tenant_id="t",
            from_address="a@b.c",
            to=[Recipient("x@y.z")],
            requested_at=1,
        )
    )
    codec = AvroCodec(registry=REGISTRY)
    with pytest.raises(UndecodableRecord):
        codec.decode("mailstream.v1.EmailRequested", data[:-3])
    with pytest.raises(UndecodableRecord):
        codec.decode("mailstream.v1.EmailRequested", data + b"\x00")


def _released_records() -> list[Path]:
    return [p for p in RELEASED if json.loads(p.read_text())["type"] == "record"]


@pytest.mark.parametrize("old", _released_records(), ids=lambda p: str(p.relative_to(SCHEMAS)))
def test_current_schema_reads_every_released_version(old: Path) -> None:
    writer = _parse(old)
    reader = _parse(SCHEMAS / old.name)
    assert backward_problems(reader, writer) == []
    # And in practice: random records written with the old schema read with the new one.
    for record in generate_many(writer, 50):
        buf = io.BytesIO()
        schemaless_writer(buf, writer, record)
        buf.seek(0)
        schemaless_reader(buf, writer, reader)


def test_the_compatibility_check_catches_breaking_changes() -> None:
    writer = _parse(SCHEMAS / "mailstream.v1.EmailRequested.avsc")
    no_default = copy.deepcopy(writer)
    no_default["fields"].append({"name": "new_field", "type": "string"})
    assert backward_problems(no_default, writer) == ["/new_field: new field without a default"]
    narrowed = copy.deepcopy(writer)
    narrowed["fields"][0]["type"] = "int"
    assert backward_problems(narrowed, writer)
    event_writer = _parse(SCHEMAS / "mailstream.v1.EmailEvent.avsc")
    fewer_symbols = copy.deepcopy(event_writer)
    type_field = next(f for f in fewer_symbols["fields"] if f["name"] == "type")
    type_field["type"]["symbols"] = type_field["type"]["symbols"][:-1]
    assert backward_problems(fewer_symbols, event_writer)


def test_data_written_with_a_released_version_decodes_through_the_codec() -> None:
    old = _parse(SCHEMAS / "released" / "v1" / "mailstream.v1.EmailRequested.avsc")
    version_fp = [
        v
        for v in REGISTRY.versions()
        if v.source.parent.name == "v1" and v.full_name == "mailstream.v1.EmailRequested"
    ]
    fp = (
        version_fp[0].fingerprint
        if version_fp
        else REGISTRY.current("mailstream.v1.EmailRequested").fingerprint
    )
    record = next(iter(generate_many(old, 1)))
    buf = io.BytesIO()
    buf.write(b"\xc3\x01" + fp)
    schemaless_writer(buf, old, record)
    decoded = AvroCodec(registry=REGISTRY).decode("mailstream.v1.EmailRequested", buf.getvalue())
    assert decoded["message_id"] == record["message_id"]
