"""The real stack's fixtures (tests/stack.py) serve the integration, chaos and security suites
alike, so one session starts Kafka, Cassandra, DNS and the services once for all of them."""

pytest_plugins = ["tests.stack"]
