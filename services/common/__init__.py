"""The shared kernel every mailstream service is built on."""
