package mailstream.example;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.time.temporal.ChronoUnit;
import java.util.Locale;
import java.util.Properties;
import java.util.UUID;
import java.util.zip.CRC32;
import mailstream.v1.EmailRequested;
import mailstream.v1.Priority;
import mailstream.v1.Recipient;
import mailstream.v1.TemplateRef;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.Producer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * Publishes one templated EmailRequested as services/client's EmailClient does: the value in
 * Avro single-object encoding, keyed by its message_id, on email.requested.&lt;priority&gt;.
 */
final class SendTemplated {
  private SendTemplated() {}

  /** Returns the message_id once the broker has acknowledged the request. */
  static String run(Flags flags) throws Exception {
    Connection kafka = Connection.from(flags);
    Priority priority =
        Priority.valueOf(flags.get("priority", "transactional").toUpperCase(Locale.ROOT));
    EmailRequested request =
        EmailRequested.newBuilder()
            // The idempotency key: a repeat of (tenant, message_id) is never delivered twice,
            // so a retry after a failed send must reuse it.
            .setMessageId(flags.get("message-id", UUID.randomUUID().toString()))
            .setTenantId(flags.get("tenant"))
            .setFromAddress(flags.get("from"))
            .setTo(
                flags.list("to").stream()
                    .map(address -> Recipient.newBuilder().setAddress(address).build())
                    .toList())
            // No subject or body: the tenant's stored template renders them from the data.
            // A null version means its latest; a null locale, its default locale.
            .setTemplate(
                TemplateRef.newBuilder()
                    .setName(flags.get("template"))
                    .setLocale(flags.get("locale", null))
                    .build())
            .setTemplateDataJson(flags.get("data", "{}"))
            .setRequestedAt(Instant.now().truncatedTo(ChronoUnit.MILLIS))
            .build();

    // Avro's single-object encoding, the contract's wire format: C3 01, the 8-byte
    // little-endian CRC-64-AVRO fingerprint of the schema the class was generated from, then
    // the binary body. mailstream finds the writer schema by that fingerprint.
    ByteBuffer encoded = request.toByteBuffer();
    byte[] value = new byte[encoded.remaining()];
    encoded.get(value);

    String topic = kafka.requested(priority);
    try (Producer<String, byte[]> producer =
        new KafkaProducer<>(
            producerConfig(kafka), new StringSerializer(), new ByteArraySerializer())) {
      // The contract keys requests by message_id, UTF-8 (what StringSerializer writes).
      String key = request.getMessageId();
      int partition = partitionOf(key, producer.partitionsFor(topic).size());
      // get() blocks until the broker has the record, or throws why it does not.
      producer.send(new ProducerRecord<>(topic, partition, key, value)).get();
    }
    return request.getMessageId();
  }

  /**
   * The partition mailstream's own clients (librdkafka's default partitioner) give a key: its
   * CRC-32 modulo the partition count. Java's default partitioner hashes with murmur2 instead;
   * doing as librdkafka does puts a message_id on the same partition whichever client sent it.
   */
  private static int partitionOf(String key, int partitions) {
    CRC32 crc = new CRC32();
    crc.update(key.getBytes(StandardCharsets.UTF_8));
    return (int) (crc.getValue() % partitions);
  }

  /** The settings of mailstream's own producers (services/common/kafka/settings.py). */
  private static Properties producerConfig(Connection kafka) {
    Properties config = kafka.config();
    // Acknowledged by every in-sync replica, and no duplicates from the client's own retries.
    config.put(ProducerConfig.ACKS_CONFIG, "all");
    config.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, true);
    config.put(ProducerConfig.COMPRESSION_TYPE_CONFIG, "lz4");
    // Fail in bounded time rather than retry for ever.
    config.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, 120_000);
    return config;
  }
}
