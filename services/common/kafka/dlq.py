"""Dead letters: the original bytes, untouched, with headers saying what went wrong."""

from __future__ import annotations

from collections.abc import Sequence

from services.common.kafka import headers
from services.common.kafka.records import Header, Inbound, Output


def dead_letter(
    inbound: Inbound, error: Exception, *, topic: str, extra: Sequence[Header] = ()
) -> Output:
    return Output(
        topic=topic,
        key=inbound.key,
        value=inbound.value,
        headers=[
            *inbound.headers,
            (headers.ERROR_CLASS, type(error).__name__.encode()),
            (headers.ERROR_MESSAGE, str(error)[:1000].encode("utf-8", "replace")),
            (headers.ORIGINAL_TOPIC, inbound.topic.encode()),
            (headers.ORIGINAL_PARTITION, str(inbound.partition).encode()),
            (headers.ORIGINAL_OFFSET, str(inbound.offset).encode()),
            *extra,
        ],
    )
