"""mailstream: transactional email delivery as Kafka stream services."""
