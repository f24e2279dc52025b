package mailstream.example;

import static java.util.stream.Collectors.toMap;

import java.nio.ByteBuffer;
import java.time.Duration;
import java.time.Instant;
import java.util.EnumSet;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.function.Function;
import mailstream.v1.EmailEvent;
import mailstream.v1.EventType;
import org.apache.kafka.clients.consumer.Consumer;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndTimestamp;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.StringDeserializer;

/**
 * Reads email.events and prints the events of one message until every recipient has reached
 * its terminal event. Exits 0 only if each of them was DELIVERED, 1 if any ended otherwise, 2
 * if the wait timed out.
 */
final class AwaitEvents {
  /** Each recipient of an accepted request reaches exactly one of these (the contract). */
  private static final Set<EventType> TERMINAL =
      EnumSet.of(
          EventType.REJECTED,
          EventType.SUPPRESSED,
          EventType.DELIVERED,
          EventType.BOUNCED,
          EventType.EXPIRED);

  private AwaitEvents() {}

  static int run(Flags flags) throws Exception {
    Connection kafka = Connection.from(flags);
    String tenant = flags.get("tenant");
    String messageId = flags.get("message-id");
    Set<String> waiting = new HashSet<>(flags.list("to"));
    Instant deadline = Instant.now().plusSeconds(Long.parseLong(flags.get("timeout-s", "60")));
    // The message was sent a moment ago: start reading a little before now, not at the start
    // of a topic that keeps weeks of every tenant's events.
    Instant since = Instant.now().minusSeconds(Long.parseLong(flags.get("lookback-s", "600")));

    Set<String> seen = new HashSet<>();
    boolean allDelivered = true;
    try (Consumer<String, byte[]> consumer =
        new KafkaConsumer<>(
            consumerConfig(kafka), new StringDeserializer(), new ByteArrayDeserializer())) {
      assignFrom(consumer, kafka.events(), since);
      while (!waiting.isEmpty()) {
        if (Instant.now().isAfter(deadline)) {
          System.err.println("timed out; no terminal event yet for " + waiting);
          return 2;
        }
        for (ConsumerRecord<String, byte[]> record : consumer.poll(Duration.ofMillis(500))) {
          // Events are keyed by message_id: other messages' are skipped without decoding.
          if (!messageId.equals(record.key())) {
            continue;
          }
          // The single-object decoder checks C3 01 and looks the writer schema up by its
          // fingerprint; it knows the schema EmailEvent was generated from (add older ones
          // with BinaryMessageDecoder.addSchema).
          EmailEvent event = EmailEvent.fromByteBuffer(ByteBuffer.wrap(record.value()));
          // A message_id is its tenant's own; events come at least once, so repeats (the
          // same event_id) are dropped.
          if (!tenant.equals(event.getTenantId()) || !seen.add(event.getEventId())) {
            continue;
          }
          System.out.println(event);
          if (TERMINAL.contains(event.getType())) {
            allDelivered &= event.getType() == EventType.DELIVERED;
            if (event.getRecipient() == null) {
              waiting.clear(); // the whole request was rejected
            } else {
              waiting.remove(event.getRecipient());
            }
          }
        }
      }
    }
    return allDelivered ? 0 : 1;
  }

  /** No consumer group: a reader that joins nothing and commits nothing. */
  private static Properties consumerConfig(Connection kafka) {
    Properties config = kafka.config();
    config.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
    return config;
  }

  /** Assigns every partition of topic, each at its first record written at or after since. */
  private static void assignFrom(Consumer<?, ?> consumer, String topic, Instant since) {
    List<TopicPartition> partitions =
        consumer.partitionsFor(topic).stream()
            .map(info -> new TopicPartition(topic, info.partition()))
            .toList();
    if (partitions.isEmpty()) {
      throw new IllegalStateException("no topic " + topic);
    }
    consumer.assign(partitions);
    // Ends first: a partition with nothing that recent starts at the end it had before the
    // lookup, so a record written in between is still read.
    Map<TopicPartition, Long> ends = consumer.endOffsets(partitions);
    Map<TopicPartition, OffsetAndTimestamp> found =
        consumer.offsetsForTimes(
            partitions.stream().collect(toMap(Function.identity(), p -> since.toEpochMilli())));
    for (TopicPartition partition : partitions) {
      OffsetAndTimestamp first = found.get(partition);
      consumer.seek(partition, first != null ? first.offset() : ends.get(partition));
    }
  }
}
