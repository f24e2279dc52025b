"""A minimal service on the real runner for the crash test: copies ECHO_IN to ECHO_OUT."""

from __future__ import annotations

import asyncio
import os

from services.common.config import CommonSettings
from services.common.kafka.producer import AsyncProducer
from services.common.kafka.records import Inbound, Output
from services.common.kafka.runner import Lane, run_lanes
from services.common.kafka.settings import producer_config
from services.common.lifecycle import run_service
from services.common.logging import configure_logging


async def main(stop: asyncio.Event) -> None:
    settings = CommonSettings()
    configure_logging(level="info", fmt="json")
    out_topic = os.environ["ECHO_OUT"]

    async def echo(inbound: Inbound) -> list[Output]:
        await asyncio.sleep(0.002)  # some work, so kills land mid-stream
        return [Output(topic=out_topic, key=inbound.key, value=inbound.value)]

    producer = AsyncProducer(config=producer_config(settings.kafka))
    producer.start()
    lane = Lane(
        name="echo",
        group_id=os.environ["ECHO_GROUP"],
        topics=[os.environ["ECHO_IN"]],
        handler=echo,
        dlq_topic=out_topic + ".dlq",
        max_in_flight=50,
    )
    try:
        await run_lanes(lanes=[lane], settings=settings.kafka, producer=producer, stop=stop)
    finally:
        await producer.close()


if __name__ == "__main__":
    run_service("echo", main)
