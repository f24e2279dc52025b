"""Chaos tests: faults injected into the real stack's peers and processes."""
