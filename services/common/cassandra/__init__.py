"""Cassandra: the session and versioned CQL migrations."""
