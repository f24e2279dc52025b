package mailstream.example;

import java.util.Locale;
import java.util.Properties;
import mailstream.v1.Priority;
import org.apache.kafka.clients.CommonClientConfigs;

/**
 * Where mailstream's Kafka is, and the prefix its topics carry (one deployment may share a
 * cluster with others). The names are the contract's, as services/common/kafka/topics.py
 * spells them.
 */
record Connection(String bootstrapServers, String topicPrefix) {
  static Connection from(Flags flags) {
    return new Connection(
        flags.get("bootstrap-servers", "127.0.0.1:19092"), flags.get("topic-prefix", ""));
  }

  /** The topic a request arrives on is its priority: email.requested.critical and so on. */
  String requested(Priority priority) {
    return topicPrefix + "email.requested." + priority.name().toLowerCase(Locale.ROOT);
  }

  String events() {
    return topicPrefix + "email.events";
  }

  Properties config() {
    Properties config = new Properties();
    config.put(CommonClientConfigs.BOOTSTRAP_SERVERS_CONFIG, bootstrapServers);
    config.put(CommonClientConfigs.CLIENT_ID_CONFIG, "mailstream-java-example");
    return config;
  }
}
