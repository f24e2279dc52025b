"""SIGKILL a consumer between producing its outputs and committing: nothing is lost."""

from __future__ import annotations

import uuid
from collections import Counter

import pytest
from confluent_kafka import ConsumerGroupTopicPartitions, Producer
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from services.common.config import CommonSettings
from services.common.kafka.settings import admin_config, producer_config
from tests.integration.harness import ServiceProcess, TopicCollector, wait_until

N = 3000
KILLS = 3


def _committed(admin: AdminClient, group: str) -> int:
    futures = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])
    result = next(iter(futures.values())).result()
    return sum(max(tp.offset, 0) for tp in result.topic_partitions)


def test_sigkill_between_produce_and_commit_loses_nothing(
    settings: CommonSettings,
    env: dict[str, str],
    tmp_path: object,
    capsys: pytest.CaptureFixture[str],
) -> None:
    run = uuid.uuid4().hex[:8]
    prefix = settings.kafka.topic_prefix
    in_topic, out_topic, group = f"{prefix}echo.in.{run}", f"{prefix}echo.out.{run}", f"echo-{run}"
    admin = AdminClient(admin_config(settings.kafka))
    for future in admin.create_topics(
        [NewTopic(t, num_partitions=3, replication_factor=1) for t in (in_topic, out_topic)]
    ).values():
        future.result()
    producer = Producer(producer_config(settings.kafka))
    for i in range(N):
        producer.produce(in_topic, key=str(i).encode(), value=f"m-{i}".encode())
        if i % 500 == 0:
            producer.poll(0)
    assert producer.flush(30) == 0

    outputs = TopicCollector(
        kafka=settings.kafka,
        topics=[out_topic],
        group_id=f"read-{run}",
        decode=lambda m: m.value.decode(),
    )
    outputs.start()
    echo_env = env | {
        "ECHO_IN": in_topic,
        "ECHO_OUT": out_topic,
        "ECHO_GROUP": group,
        # Commit rarely, so every kill lands with outputs produced but uncommitted.
        "MAILSTREAM_KAFKA__COMMIT_INTERVAL_S": "3",
    }
    log = tmp_path / "echo.log"  # type: ignore[operator]
    uncommitted_at_kill = []
    try:
        for kill in range(KILLS):
            proc = ServiceProcess(
                module="tests.integration.echo_service", env=echo_env, log_path=log
            )
            proc.start()
            target = (kill + 1) * N // (KILLS + 2)
            wait_until(
                f"{target} distinct outputs",
                lambda t=target: len(set(outputs.items)) >= t,
                90,
                interval=0.05,
            )
            produced = len(outputs.items)
            uncommitted_at_kill.append(produced - _committed(admin, group))
            proc.kill()
        final = ServiceProcess(module="tests.integration.echo_service", env=echo_env, log_path=log)
        final.start()
        wait_until("every input echoed", lambda: len(set(outputs.items)) == N, 120)
        assert final.stop() == 0
    finally:
        outputs.stop()
    counts = Counter(outputs.items)
    lost = N - len(counts)
    duplicates = sum(c - 1 for c in counts.values())
    with capsys.disabled():  # the figures belong in the CI log
        print(
            f"\ncrash test: {N} inputs, {KILLS} SIGKILLs, lost={lost}, duplicates={duplicates}, "
            f"produced-but-uncommitted at each kill={uncommitted_at_kill}"
        )
    assert lost == 0
    assert set(counts) == {f"m-{i}" for i in range(N)}
    # Each kill left produced-but-uncommitted work, which the restart processed again.
    assert all(u > 0 for u in uncommitted_at_kill)
    assert duplicates > 0
