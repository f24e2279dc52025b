"""Typed encode/decode of record twins through the codec."""

from __future__ import annotations

from typing import Any, TypeVar

from services.common.avro.codec import AvroCodec
from services.common.avro.records import from_avro, to_avro

R = TypeVar("R")


class RecordSerde:
    def __init__(self, *, codec: AvroCodec) -> None:
        self._codec = codec

    def encode(self, record: Any) -> bytes:
        return self._codec.encode(record.AVRO_NAME, to_avro(record))

    def decode(self, cls: type[R], data: bytes) -> R:
        name: str = cls.AVRO_NAME  # type: ignore[attr-defined]
        return from_avro(cls, self._codec.decode(name, data))
