"""Avro: the schema registry of schemas/*.avsc, the codec and the record twins."""
