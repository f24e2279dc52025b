.PHONY: demo test lint stack-down

# (1) Install everything, start Kafka, Cassandra, DNS, the inbox and the four services,
#     send a demo email and show it with its timeline.
demo:
	deploy/local/demo

# (2) Run every test: lint, types, unit, contract and integration (against the real stack).
test:
	deploy/local/test

lint:
	.venv/bin/ruff check services tests && .venv/bin/mypy

stack-down:
	deploy/local/stack down
