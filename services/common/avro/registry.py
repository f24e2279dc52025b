"""Every schema version kept in schemas/, by full name (current) and by fingerprint (all)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fastavro
from fastavro.schema import fingerprint, load_schema, to_parsing_canonical_form

from services.common.errors import ConfigError


@dataclass(frozen=True)
class SchemaVersion:
    full_name: str
    fingerprint: bytes  # 8 bytes, little-endian CRC-64-AVRO of the Parsing Canonical Form
    parsed: Any  # as the codec reads and writes it: logical types are plain (see _plain)
    source: Path
    # `parsed` as fastavro's parse_schema leaves it, marked parsed: given anything else, its
    # reader and writer parse the schema again on every call, half of their cost.
    compiled: Any = None

    def __post_init__(self) -> None:
        if self.compiled is None:
            object.__setattr__(self, "compiled", fastavro.parse_schema(self.parsed))


def schema_fingerprint(parsed: Any) -> bytes:
    # fastavro prints CRC-64-AVRO as the hex of its little-endian bytes: the order the
    # single-object encoding puts on the wire (checked against the spec in tests/contract).
    return bytes.fromhex(fingerprint(to_parsing_canonical_form(parsed), "CRC-64-AVRO"))


def _load_folder(folder: Path) -> list[SchemaVersion]:
    versions = []
    for path in sorted(folder.glob("*.avsc")):
        full_name = path.stem
        declared = json.loads(path.read_text())
        if declared.get("type") != "record":
            continue  # enums and the like are only ever written inside a record
        named: dict[str, Any] = {}
        parsed = load_schema(str(path), named_schemas=named, _write_hint=False)
        versions.append(SchemaVersion(full_name, schema_fingerprint(parsed), _plain(parsed), path))
    return versions


def _plain(schema: Any) -> Any:
    """The schema without its logicalType annotations, which the Parsing Canonical Form (and
    so the fingerprint) leaves out too: a timestamp-millis is read and written as the long it
    is on the wire. Converted, any long past year 9999 made the decoder raise OverflowError,
    so a request of valid Avro could only be dead-lettered; read plain, ingest refuses it
    with a reason (timestamp_invalid), and no decode builds a datetime only to undo it."""
    if isinstance(schema, dict):
        return {k: _plain(v) for k, v in schema.items() if k != "logicalType"}
    if isinstance(schema, list):
        return [_plain(v) for v in schema]
    return schema


class SchemaRegistry:
    def __init__(self, *, schemas_dir: Path) -> None:
        if not schemas_dir.is_dir():
            raise ConfigError(f"schemas folder not found: {schemas_dir}")
        self._current = {v.full_name: v for v in _load_folder(schemas_dir)}
        self._by_fingerprint = {v.fingerprint: v for v in self._current.values()}
        released = schemas_dir / "released"
        folders = sorted(p for p in released.iterdir() if p.is_dir()) if released.is_dir() else []
        for folder in folders:
            for version in _load_folder(folder):
                self._by_fingerprint.setdefault(version.fingerprint, version)

    def current(self, full_name: str) -> SchemaVersion:
        try:
            return self._current[full_name]
        except KeyError:
            raise ConfigError(f"no schema named {full_name}") from None

    def by_fingerprint(self, fp: bytes) -> SchemaVersion | None:
        return self._by_fingerprint.get(fp)

    def versions(self) -> list[SchemaVersion]:
        return list(self._by_fingerprint.values())


def parse_schema(schema: dict[str, Any]) -> Any:
    return fastavro.parse_schema(schema, _write_hint=False)
