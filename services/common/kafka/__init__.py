"""Kafka: settings, the one runner, the producer, topics, headers, dead letters."""
