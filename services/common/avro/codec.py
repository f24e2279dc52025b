"""Avro single-object encoding: C3 01, the writer schema's fingerprint, the binary body."""

from __future__ import annotations

import io
from typing import Any

from fastavro import schemaless_reader, schemaless_writer

from services.common.avro.registry import SchemaRegistry
from services.common.errors import UndecodableRecord

MAGIC = b"\xc3\x01"
HEADER_LEN = 10


class AvroCodec:
    def __init__(self, *, registry: SchemaRegistry) -> None:
        self._registry = registry

    def encode(self, full_name: str, record: dict[str, Any]) -> bytes:
        version = self._registry.current(full_name)
        buf = io.BytesIO()
        buf.write(MAGIC)
        buf.write(version.fingerprint)
        schemaless_writer(buf, version.compiled, record)
        return buf.getvalue()

    def decode(self, full_name: str, data: bytes) -> dict[str, Any]:
        """Reads data written with any kept version of full_name into the current version."""
        if len(data) < HEADER_LEN or data[:2] != MAGIC:
            raise UndecodableRecord("not Avro single-object encoded (no C3 01 marker)")
        writer = self._registry.by_fingerprint(data[2:HEADER_LEN])
        if writer is None:
            raise UndecodableRecord(f"unknown schema fingerprint {data[2:HEADER_LEN].hex()}")
        reader = self._registry.current(full_name)
        if writer.full_name != full_name:
            raise UndecodableRecord(f"expected {full_name}, got a {writer.full_name}")
        buf = io.BytesIO(data)
        buf.seek(HEADER_LEN)
        try:
            record = schemaless_reader(
                buf, writer.compiled, reader.compiled if reader is not writer else None
            )
        except Exception as exc:  # fastavro raises many kinds on malformed bodies
            detail = f"{type(exc).__name__}: {exc}"
            raise UndecodableRecord(f"malformed {full_name} body: {detail}") from exc
        if not isinstance(record, dict):
            raise UndecodableRecord(f"{full_name} body is not a record")
        if buf.tell() != len(data):
            raise UndecodableRecord(f"{len(data) - buf.tell()} trailing bytes after {full_name}")
        return record
